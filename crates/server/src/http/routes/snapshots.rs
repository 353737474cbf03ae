//! Snapshots: Cloud Manager's `GET/PATCH/DELETE …/clusters/{C}/snapshots[/{S}]`, and Rewind's
//! import endpoints (chunk upload, snapshot creation, part commit) and verification.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use rewind_api_types::iso_seconds::parse_iso;
use rewind_api_types::{BsonTimestamp, ChunkQuery, MissingChunks, PartManifest, SnapshotCreate};

use super::{views, ApiPath, PUBLIC, REWIND};
use crate::domain::snapshots::import::NewSnapshot;
use crate::domain::{ErrorCode, Principal};
use crate::http::auth::BackupAdmin;
use crate::http::body::{read_json, read_limited, require_content_type, Fields, JsonBody};
use crate::http::conventions::{json_response, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::model::OplogTs;

/// Largest chunk upload batch, in bytes.
pub const MAX_UPLOAD_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Largest part manifest, in bytes (about 1.5 million chunk references).
pub const MAX_MANIFEST_BYTES: usize = 128 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    let one = format!("{PUBLIC}/groups/{{group}}/clusters/{{cluster}}/snapshots/{{snapshot}}");
    let rewind_one =
        format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/snapshots/{{snapshot}}");
    Router::new()
        .route(
            &format!("{PUBLIC}/groups/{{group}}/clusters/{{cluster}}/snapshots"),
            get(list),
        )
        .route(&one, get(get_one).patch(patch).delete(delete_one))
        .route(
            &format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/snapshots"),
            post(create),
        )
        .route(
            &format!("{rewind_one}/parts/{{replica_set}}"),
            put(commit_part),
        )
        .route(&format!("{rewind_one}/verify"), post(verify))
        .route(
            &format!("{REWIND}/groups/{{group}}/chunks/missing"),
            post(missing),
        )
        .route(&format!("{REWIND}/groups/{{group}}/chunks"), post(upload))
        .route(&format!("{REWIND}/verify"), post(verify_store))
}

type SnapshotPath = ApiPath<(GroupId, ClusterId, SnapshotId)>;

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .list_snapshots(&principal, group, cluster, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|s| views::snapshot(&state.links, s))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, snapshot)): SnapshotPath,
) -> Result<Response, ApiError> {
    let record = state
        .services
        .get_snapshot(&principal, group, cluster, snapshot)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::snapshot(&state.links, &record),
    ))
}

async fn patch(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster, snapshot)): SnapshotPath,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut fields = Fields::from_body(body)?;
    let expires = match fields.opt_str("expires")? {
        None => None,
        Some(text) => Some(parse_iso(&text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidJsonAttribute,
                format!("Received JSON for the expires attribute does not match expected format: {text:?} is not an ISO-8601 date."),
                vec!["expires".into()],
            )
        })?),
    };
    let do_not_delete = fields.opt_bool("doNotDelete")?;
    fields.finish()?;
    let record = state
        .services
        .update_snapshot_retention(&principal, group, cluster, snapshot, expires, do_not_delete)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::snapshot(&state.links, &record),
    ))
}

async fn delete_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, snapshot)): SnapshotPath,
) -> Result<Response, ApiError> {
    state
        .services
        .delete_snapshot(&principal, group, cluster, snapshot)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn oplog_ts(ts: BsonTimestamp, field: &str) -> Result<OplogTs, ApiError> {
    let secs = u32::try_from(ts.date).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute {field} specified."),
            vec![field.into()],
        )
    })?;
    Ok(OplogTs {
        secs,
        inc: ts.increment,
    })
}

async fn create(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
    req: Request,
) -> Result<Response, ApiError> {
    let body: SnapshotCreate = read_json(req, crate::http::body::MAX_JSON_BODY_BYTES).await?;
    let spec = NewSnapshot {
        created: oplog_ts(body.created, "created")?,
        last_oplog_applied: body
            .last_oplog_applied_timestamp
            .map(|t| oplog_ts(t, "lastOplogAppliedTimestamp"))
            .transpose()?,
        mongod_version: body.mongod_version,
        storage_engine: body.storage_engine,
    };
    let record = state
        .services
        .create_snapshot(&principal, group, cluster, spec)
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &views::snapshot(&state.links, &record),
    ))
}

async fn commit_part(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath((group, cluster, snapshot, replica_set)): ApiPath<(
        GroupId,
        ClusterId,
        SnapshotId,
        String,
    )>,
    req: Request,
) -> Result<Response, ApiError> {
    let manifest: PartManifest = read_json(req, MAX_MANIFEST_BYTES).await?;
    let record = state
        .services
        .commit_part(&principal, group, cluster, snapshot, &replica_set, manifest)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::snapshot(&state.links, &record),
    ))
}

async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, snapshot)): SnapshotPath,
) -> Result<Response, ApiError> {
    let report = state
        .services
        .verify_snapshot(&principal, group, cluster, snapshot)
        .await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn verify_store(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let report = state.services.verify_store(&principal).await?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn missing(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath(group): ApiPath<GroupId>,
    req: Request,
) -> Result<Response, ApiError> {
    let query: ChunkQuery = read_json(req, 2 * 1024 * 1024).await?;
    let missing = state
        .services
        .missing_chunks(&principal, group, &query.ids)
        .await?;
    Ok(json_response(StatusCode::OK, &MissingChunks { missing }))
}

async fn upload(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath(group): ApiPath<GroupId>,
    req: Request,
) -> Result<Response, ApiError> {
    require_content_type(&req, "application/octet-stream")?;
    let body = read_limited(req, MAX_UPLOAD_BATCH_BYTES).await?;
    let summary = state.services.store_chunks(&principal, group, body).await?;
    Ok(json_response(StatusCode::OK, &summary))
}
