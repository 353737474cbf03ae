//! Checkpoints: Cloud Manager's `GET …/clusters/{C}/checkpoints[/{ID}]`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{views, ApiPath, PUBLIC};
use crate::domain::Principal;
use crate::http::conventions::{json_response, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::{CheckpointId, ClusterId, GroupId};

pub fn routes() -> Router<AppState> {
    let list = format!("{PUBLIC}/groups/{{group}}/clusters/{{cluster}}/checkpoints");
    Router::new()
        .route(&list, get(list_all))
        .route(&format!("{list}/{{checkpoint}}"), get(get_one))
}

async fn list_all(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    ApiPath((group, cluster)): ApiPath<(GroupId, ClusterId)>,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .list_checkpoints(&principal, group, cluster, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|c| views::checkpoint(&state.links, c))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((group, cluster, checkpoint)): ApiPath<(GroupId, ClusterId, CheckpointId)>,
) -> Result<Response, ApiError> {
    let view = state
        .services
        .get_checkpoint(&principal, group, cluster, checkpoint)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::checkpoint(&state.links, &view),
    ))
}
