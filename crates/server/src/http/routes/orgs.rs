//! `GET /orgs`, `GET /orgs/{ORG-ID}`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{views, ApiPath, PUBLIC};
use crate::domain::Principal;
use crate::http::conventions::{json_response, query_bool, query_pairs, Paging};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ids::OrgId;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{PUBLIC}/orgs"), get(list))
        .route(&format!("{PUBLIC}/orgs/{{org}}"), get(get_one))
}

/// The list takes the Go client's `name` filter and `includeDeletedOrgs` (checked, and
/// without effect: Rewind deletes no organization).
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
    req: Request,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(req.uri().query());
    query_bool(&pairs, "includeDeletedOrgs", false)?;
    let name = pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str());
    let page = state
        .services
        .list_orgs(&principal, name, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|o| views::organization(&state.links, o))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(org): ApiPath<OrgId>,
) -> Result<Response, ApiError> {
    let record = state.services.get_org(&principal, org).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::organization(&state.links, &record),
    ))
}
