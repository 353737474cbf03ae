//! Rewind's oplog endpoints: pushing a replica set's oplog entries, their coverage, and the
//! project's backup settings (the point-in-time window and the checkpoint interval).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{views, ApiPath, REWIND};
use crate::domain::oplog::MAX_PUSH_BYTES;
use crate::domain::settings::BackupSettingsChange;
use crate::domain::Principal;
use crate::http::auth::BackupAdmin;
use crate::http::body::{discard_body, read_limited, require_content_type, Fields, JsonBody};
use crate::http::conventions::{json_response, query_opt_u64, query_pairs, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId};
use crate::model::OplogTs;

pub fn routes() -> Router<AppState> {
    let oplog = format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}/oplog");
    Router::new()
        .route(&oplog, get(status))
        .route(
            &format!("{oplog}/{{replica_set}}"),
            get(replica_set_status).post(push),
        )
        .route(
            &format!("{REWIND}/groups/{{group}}/backupSettings"),
            get(settings).patch(patch_settings),
        )
}

/// `afterTs` and `afterInc`: the entry the push continues from (both or neither).
fn continues_from(req: &Request) -> Result<Option<OplogTs>, ApiError> {
    let pairs = query_pairs(req.uri().query());
    let max = u64::from(u32::MAX);
    let secs = query_opt_u64(&pairs, "afterTs", max)?;
    let inc = query_opt_u64(&pairs, "afterInc", max)?;
    match (secs, inc) {
        (None, None) => Ok(None),
        (Some(secs), Some(inc)) => Ok(Some(OplogTs {
            secs: secs as u32,
            inc: inc as u32,
        })),
        _ => Err(ApiError::invalid_query(
            "afterTs",
            "Invalid query parameters: afterTs and afterInc must be given together.",
        )),
    }
}

/// `POST …/oplog/{replicaSetName}` with a body of concatenated BSON oplog entries.
async fn push(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    // Taken as a `Result` so that a refused path still drains the body, as other refusals do.
    path: Result<ApiPath<(GroupId, ClusterId, String)>, ApiError>,
    req: Request,
) -> Result<Response, ApiError> {
    let checked = path
        .and_then(|ApiPath(ids)| Ok((ids, continues_from(&req)?)))
        .and_then(|found| {
            require_content_type(&req, "application/octet-stream")?;
            Ok(found)
        });
    let ((group, cluster, replica_set), after) = match checked {
        Ok(found) => found,
        Err(refusal) => {
            discard_body(req.into_body());
            return Err(refusal);
        }
    };
    let body = read_limited(req, MAX_PUSH_BYTES).await?;
    let outcome = state
        .services
        .push_oplog(&principal, group, cluster, &replica_set, after, body)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::oplog_push(&state.links, group, cluster, &outcome),
    ))
}

async fn status(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let all = state
        .services
        .oplog_status(&principal, group, cluster)
        .await?
        .iter()
        .map(|s| views::oplog_status(&state.links, group, cluster, s))
        .collect();
    Ok(paging.respond_from_all(all))
}

async fn replica_set_status(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, replica_set)): ApiPath<(GroupId, ClusterId, String)>,
) -> Result<Response, ApiError> {
    let summary = state
        .services
        .replica_set_oplog_status(&principal, group, cluster, &replica_set)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::oplog_status(&state.links, group, cluster, &summary),
    ))
}

async fn settings(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(group): ApiPath<GroupId>,
) -> Result<Response, ApiError> {
    let settings = state.services.backup_settings(&principal, group).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::backup_settings(&state.links, &settings),
    ))
}

/// `PATCH …/backupSettings`: the fields given are changed, the others kept.
async fn patch_settings(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath(group): ApiPath<GroupId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut fields = Fields::from_body(body)?;
    let change = BackupSettingsChange {
        checkpoint_interval_minutes: fields.opt_int("checkpointIntervalMinutes")?,
        pit_window_hours: fields.opt_int("pointInTimeWindowHours")?,
    };
    fields.finish()?;
    let settings = state
        .services
        .update_backup_settings(&principal, group, change)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::backup_settings(&state.links, &settings),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorCode;

    fn request(query: &str) -> Request {
        Request::builder()
            .uri(format!("/x?{query}"))
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn after_needs_both_halves_within_range() {
        assert_eq!(continues_from(&request("")).unwrap(), None);
        assert_eq!(
            continues_from(&request("afterTs=5&afterInc=2")).unwrap(),
            Some(OplogTs { secs: 5, inc: 2 })
        );
        for bad in [
            "afterTs=5",
            "afterInc=1",
            "afterTs=x&afterInc=1",
            "afterTs=4294967296&afterInc=0",
        ] {
            let err = continues_from(&request(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidQueryParameter, "{bad}");
        }
    }
}
