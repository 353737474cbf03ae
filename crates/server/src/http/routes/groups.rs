//! `GET/POST /groups`, `GET /groups/{G}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{views, ApiPath, PUBLIC};
use crate::domain::Principal;
use crate::http::body::{Fields, JsonBody};
use crate::http::conventions::{json_response, Paging};
use crate::http::error::ApiError;
use crate::http::path::parse_id;
use crate::http::AppState;
use crate::ids::{GroupId, OrgId};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{PUBLIC}/groups"), get(list).post(create))
        .route(&format!("{PUBLIC}/groups/{{group}}"), get(get_one))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    paging: Paging,
) -> Result<Response, ApiError> {
    let page = state
        .services
        .list_groups(&principal, paging.request())
        .await?;
    let items = page
        .items
        .iter()
        .map(|g| views::group(&state.links, g))
        .collect();
    Ok(paging.respond(items, page.total))
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut fields = Fields::from_body(body)?;
    let name = fields.req_str("name")?;
    let org = fields
        .opt_str("orgId")?
        .map(|o| parse_id::<OrgId>(&o))
        .transpose()?;
    fields.finish()?;
    let group = state.services.create_group(&principal, &name, org).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &views::group(&state.links, &group),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(group): ApiPath<GroupId>,
) -> Result<Response, ApiError> {
    let record = state.services.get_group(&principal, group).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::group(&state.links, &record),
    ))
}
