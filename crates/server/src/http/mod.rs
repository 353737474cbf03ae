//! The HTTP layer: routing, authentication, the API's conventions and error format. Thin by
//! design: handlers parse and render, and call domain services for everything else.

pub mod auth;
pub mod body;
pub mod conventions;
pub mod digest;
pub mod error;
mod listener;
pub mod path;
pub(crate) mod routes;
mod telemetry;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::domain::{ErrorCode, Services};
use conventions::Links;
use digest::NonceService;
use error::ApiError;
pub use listener::{serve, DEFAULT_HEADER_TIMEOUT};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub nonces: Arc<NonceService>,
    pub links: Links,
    pub trusted_proxy: Option<IpAddr>,
    pub require_access_list: bool,
    /// How long an automated restore waits for its agents (see `ServerConfig`).
    pub agent_timeout: std::time::Duration,
    /// The web console's sessions: their lifetime and the sign-in throttle.
    pub console_sessions: Arc<crate::domain::sessions::ConsoleSessions>,
}

/// The full application: the authenticated APIs plus the unauthenticated health and metrics,
/// and `pages` (the web console, which authenticates by its own sessions) under the same
/// request-target limit and telemetry.
pub fn router(state: AppState, pages: Router<AppState>) -> Router {
    let api = routes::api_routes()
        .layer(from_fn(conventions::output_conventions))
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .merge(api)
        .merge(routes::unauthenticated_routes())
        .merge(pages)
        .route("/health", get(health))
        .route("/metrics", get(telemetry::render_metrics))
        .fallback(not_found)
        .layer(from_fn(limit_request_target))
        .layer(from_fn(telemetry::track_requests))
        .with_state(state)
}

/// What a `worker` node serves: `/health` and `/metrics`, for its supervisor and its
/// scraper. Every other path answers `404 RESOURCE_NOT_FOUND` with the API's error body and
/// a detail naming the node's role: a request sent here was routed to the wrong node, and a
/// 404 (not a 503) keeps a load balancer from retrying it as if the node were unhealthy.
pub fn worker_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(telemetry::render_metrics))
        .fallback(not_served_by_worker)
        .layer(from_fn(telemetry::track_requests))
        .with_state(state)
}

/// Longest request target (path and query) accepted, in bytes. A Digest client repeats the
/// target in its `Authorization` header, which may hold at most
/// [`digest::MAX_AUTHORIZATION_BYTES`]; this leaves room for the other directives, so a
/// target that could never be signed is told so instead of answered `401`.
pub const MAX_REQUEST_TARGET_BYTES: usize = 3072;

/// Answers `414 REQUEST_URI_TOO_LONG` for a target over [`MAX_REQUEST_TARGET_BYTES`],
/// before authentication and before the body is read.
async fn limit_request_target(req: Request, next: axum::middleware::Next) -> Response {
    let length = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if length <= MAX_REQUEST_TARGET_BYTES {
        return next.run(req).await;
    }
    body::discard_body(req.into_body());
    ApiError::new(
        ErrorCode::RequestUriTooLong,
        format!(
            "The request target is {length} bytes long; at most {MAX_REQUEST_TARGET_BYTES} are accepted."
        ),
        vec![length.to_string()],
    )
    .into_response()
}

async fn health() -> Response {
    conventions::json_response(StatusCode::OK, &serde_json::json!({ "status": "OK" }))
}

async fn not_found(req: Request) -> ApiError {
    let path = req.uri().path().to_owned();
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!("Cannot find resource {path}."),
        vec![path],
    )
}

async fn not_served_by_worker(req: Request) -> ApiError {
    let path = req.uri().path().to_owned();
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!(
            "Cannot find resource {path}: this node's role is worker, which serves only /health and /metrics."
        ),
        vec![path],
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("Method {method} is not allowed for resource {path}."),
        vec![method, path],
    )
}

impl IntoResponse for crate::domain::DomainError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
