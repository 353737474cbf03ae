//! The API's routes. Paths are spelled out in full so that each one reads as the API
//! documents it.

mod clusters;
mod delivery;
mod groups;
mod keys;
mod restore;
mod snapshots;
mod views;

use axum::Router;

use super::error::ApiError;
use super::AppState;
use crate::domain::ErrorCode;
use crate::ids::{ApiKeyId, ClusterId, GroupId, OrgId, SnapshotId};

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
        .merge(restore::routes())
}

/// Routes that authenticate by other means (download tokens) or not at all.
pub fn unauthenticated_routes() -> Router<AppState> {
    delivery::routes()
}

macro_rules! id_parser {
    ($fn:ident, $ty:ty, $code:ident, $what:literal) => {
        /// Parses a path id; a malformed one is `404` with its own `INVALID_*_ID` code.
        pub fn $fn(text: &str) -> Result<$ty, ApiError> {
            <$ty>::parse(text).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::$code,
                    format!(concat!("An invalid ", $what, " ID {} was specified."), text),
                    vec![text.to_owned()],
                )
            })
        }
    };
}

id_parser!(parse_org, OrgId, InvalidOrgId, "organization");
id_parser!(parse_group, GroupId, InvalidGroupId, "group");
id_parser!(parse_cluster, ClusterId, InvalidClusterId, "cluster");
id_parser!(parse_api_key, ApiKeyId, InvalidApiKeyId, "API key");
id_parser!(parse_snapshot, SnapshotId, InvalidSnapshotId, "snapshot");
