//! The API's routes. Paths are spelled out in full so that each one reads as the API
//! documents it.

mod agents;
mod checkpoints;
mod clusters;
mod delivery;
mod groups;
mod keys;
mod oplog;
mod orgs;
pub(crate) mod restore;
mod schedule;
mod snapshots;
pub(crate) mod views;

use axum::Router;

use super::path::ApiPath;
use super::AppState;

/// Prefix of the Cloud Manager compatible API.
pub const PUBLIC: &str = "/api/public/v1.0";
/// Prefix of Rewind's own endpoints (same authentication and error format).
pub const REWIND: &str = "/api/rewind/v1";

/// Every authenticated route.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .merge(groups::routes())
        .merge(keys::routes())
        .merge(clusters::routes())
        .merge(snapshots::routes())
        .merge(checkpoints::routes())
        .merge(restore::routes())
        .merge(agents::routes())
        .merge(oplog::routes())
        .merge(orgs::routes())
        .merge(schedule::routes())
}

/// Routes that authenticate by other means (download tokens) or not at all.
pub fn unauthenticated_routes() -> Router<AppState> {
    delivery::routes()
}
