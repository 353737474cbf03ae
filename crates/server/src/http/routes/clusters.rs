//! `GET /groups/{G}/clusters[/{C}]` and Rewind's `POST /api/rewind/v1/groups/{G}/clusters`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use rewind_api_types::RegisteredCluster;

use super::{views, ApiPath, PUBLIC, REWIND};
use crate::domain::clusters::ClusterSpec;
use crate::domain::{ErrorCode, Principal};
use crate::http::auth::BackupAdmin;
use crate::http::body::{Fields, JsonBody};
use crate::http::conventions::{json_response, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{ClusterId, GroupId};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{PUBLIC}/groups/{{group}}/clusters"), get(list))
        .route(
            &format!("{PUBLIC}/groups/{{group}}/clusters/{{cluster}}"),
            get(get_one),
        )
        .route(
            &format!("{REWIND}/groups/{{group}}/clusters"),
            post(register),
        )
        .route(
            &format!("{REWIND}/groups/{{group}}/clusters/{{cluster}}"),
            get(get_registered),
        )
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath(group): ApiPath<GroupId>,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .list_clusters(&principal, group, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|c| views::cluster(&state.links, c))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let record = state
        .services
        .get_cluster(&principal, group, cluster)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::cluster(&state.links, &record),
    ))
}

async fn register(
    State(state): State<AppState>,
    BackupAdmin(principal): BackupAdmin,
    ApiPath(group): ApiPath<GroupId>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut fields = Fields::from_body(body)?;
    let name = fields.req_str("clusterName")?;
    let fcv = fields.opt_str("featureCompatibilityVersion")?;
    let shards = match fields.opt_int("shards")? {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidAttribute,
                "Invalid attribute shards specified.",
                vec!["shards".into()],
            )
        })?),
    };
    fields.finish()?;
    let spec = ClusterSpec { name, shards, fcv };
    let rows = state
        .services
        .register_cluster(&principal, group, &spec)
        .await?;
    let fcv = rows.first().map(|r| r.fcv.clone()).unwrap_or_default();
    let body = RegisteredCluster {
        feature_compatibility_version: fcv,
        members: rows
            .iter()
            .map(|c| views::cluster(&state.links, c))
            .collect(),
    };
    Ok(json_response(StatusCode::CREATED, &body))
}

async fn get_registered(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let members = state
        .services
        .get_cluster_members(&principal, group, cluster)
        .await?;
    let body = RegisteredCluster {
        feature_compatibility_version: members.first().map(|r| r.fcv.clone()).unwrap_or_default(),
        members: members
            .iter()
            .map(|c| views::cluster(&state.links, c))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &body))
}
