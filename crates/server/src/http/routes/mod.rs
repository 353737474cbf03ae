//! The API's routes. Paths are spelled out in full so that each one reads as the API
//! documents it.

mod agents;
mod checkpoints;
mod clusters;
mod delivery;
mod groups;
mod keys;
mod oplog;
mod restore;
mod snapshots;
mod views;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::request::Parts;
use axum::Router;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::domain::ErrorCode;
use crate::ids::{ApiKeyId, CheckpointId, ClusterId, GroupId, JobId, OrgId, SnapshotId};

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

/// `Path`, answering with the API's error body when a segment cannot be decoded.
///
/// axum's own `Path` answers a segment that percent-decodes to invalid UTF-8 (`%A0`) with a
/// plain-text 400; such a segment is a malformed id like any other.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(parts, rejection)),
        }
    }
}

fn path_rejection(parts: &Parts, rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let path = parts.uri.path().to_owned();
    let key = match &rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(key) = key else {
        tracing::error!(error = %rejection, "path parameters do not fit the route");
        return ApiError::new(ErrorCode::UnexpectedError, "Unexpected error.", vec![]);
    };
    // The raw segment is the one at the position of `{key}` in the route's template.
    let raw = parts.extensions.get::<MatchedPath>().and_then(|template| {
        let at = template
            .as_str()
            .split('/')
            .position(|s| s == format!("{{{key}}}"))?;
        path.split('/').nth(at).map(str::to_owned)
    });
    let raw = raw.unwrap_or_default();
    let invalid = match key.as_str() {
        "org" => parse_org(&raw).err(),
        "group" => parse_group(&raw).err(),
        "cluster" => parse_cluster(&raw).err(),
        "key" => parse_api_key(&raw).err(),
        "checkpoint" => parse_checkpoint(&raw).err(),
        _ => None,
    };
    invalid.unwrap_or_else(|| {
        ApiError::new(
            ErrorCode::ResourceNotFound,
            format!("Cannot find resource {path}."),
            vec![path],
        )
    })
}
id_parser!(parse_snapshot, SnapshotId, InvalidSnapshotId, "snapshot");
id_parser!(
    parse_checkpoint,
    CheckpointId,
    InvalidCheckpointId,
    "checkpoint"
);
id_parser!(parse_job, JobId, InvalidJobId, "restore job");

/// The ids of a `…/groups/{group}/clusters/{cluster}/restoreJobs/{job}` path.
pub fn parse_job_path(
    (group, cluster, job): (String, String, String),
) -> Result<(GroupId, ClusterId, JobId), ApiError> {
    Ok((
        parse_group(&group)?,
        parse_cluster(&cluster)?,
        parse_job(&job)?,
    ))
}
