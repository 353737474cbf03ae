//! `ApiError`: the one place where failures become the Cloud Manager error body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rewind_api_types::ErrorBody;

use crate::domain::{DomainError, ErrorCode};

/// An error on its way to the client: an error code plus the words that explain it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub parameters: Vec<String>,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The HTTP status each error code travels with.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidJson
        | InvalidJsonAttribute
        | MissingAttribute
        | InvalidAttribute
        | AttributeNegativeOrZero
        | InvalidEnumValue
        | UnsupportedDeliveryMethod
        | InvalidQueryParameter
        | ChunkHashMismatch
        | InvalidOplogEntry
        | InvalidRange
        | OplogEntriesOutOfOrder
        | GroupMismatch
        | InvalidSnapshotInterval
        | InvalidSnapshotRetentionPeriod
        | InvalidDailySnapshotRetentionPeriod
        | InvalidWeeklySnapshotRetentionPeriod
        | InvalidMonthlySnapshotRetentionPeriod
        | InvalidReferenceHourOfDay
        | InvalidReferenceMinuteOfHour
        | InvalidReferenceTimezoneOffset
        | InvalidClusterCheckpointInterval
        | CannotSetClusterCheckpointIntervalForReplicaSet => StatusCode::BAD_REQUEST,
        UserUnauthorized | NotInGroup => StatusCode::UNAUTHORIZED,
        IpAddressNotOnAccessList => StatusCode::FORBIDDEN,
        InvalidOrgId
        | InvalidGroupId
        | InvalidClusterId
        | InvalidSnapshotId
        | InvalidCheckpointId
        | InvalidJobId
        | InvalidApiKeyId
        | GroupNotFound
        | OrgNotFound
        | ClusterNotFound
        | SnapshotNotFound
        | CheckpointNotFound
        | RestoreJobNotFound
        | ApiKeyNotFound
        | AccessListEntryNotFound
        | ReplicaSetNotFound
        | ResourceNotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        GroupAlreadyExists
        | DuplicateClusterName
        | CannotStartRestoreJobForDeletedSnapshot
        | CannotStartRestoreJobForIncompleteClusterSnapshot
        | NoCheckpointForPitRestore
        | SnapshotPartAlreadyCommitted
        | SnapshotMarkedDoNotDelete
        | CannotCancelRestoreJob
        | RestoreMemberNotClaimed
        | OplogEntryConflict
        | OplogContinuityMismatch
        | ConcurrentOplogPush => StatusCode::CONFLICT,
        DownloadNotAvailable | DownloadExpired | MaxDownloadsExceeded => StatusCode::GONE,
        RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RequestUriTooLong => StatusCode::URI_TOO_LONG,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        StorageRefused | StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        UnexpectedError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>, parameters: Vec<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            parameters,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn invalid_query(param: &str, detail: impl Into<String>) -> Self {
        ApiError::new(
            ErrorCode::InvalidQueryParameter,
            detail,
            vec![param.to_owned()],
        )
    }

    pub fn body(&self) -> ErrorBody {
        let status = status_of(self.code);
        ErrorBody {
            detail: self.detail.clone(),
            error: status.as_u16(),
            error_code: self.code.as_str().to_owned(),
            parameters: self.parameters.clone(),
            reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Rejected {
                code,
                detail,
                parameters,
            } => ApiError::new(code, detail, parameters),
            DomainError::StorageFull(cause) => {
                tracing::error!(error = %cause, "a request ran out of storage space; what it wrote was removed");
                ApiError::new(
                    ErrorCode::InsufficientStorage,
                    "The server ran out of storage space while storing this request; nothing of \
                     this request was kept. Retry once space has been freed on the server.",
                    vec![],
                )
            }
            DomainError::StorageRefused(cause) => {
                tracing::error!(error = %cause, "the storage refused a request's access");
                ApiError::new(
                    ErrorCode::StorageRefused,
                    "The block store refused the server's access (permissions or credentials); \
                     nothing of this request was kept. The server's log has the details.",
                    vec![],
                )
            }
            DomainError::StorageUnavailable(cause) => {
                tracing::error!(error = %cause, "the block store was unavailable to a request");
                ApiError::new(
                    ErrorCode::StorageUnavailable,
                    "The block store could not be reached, or its requests kept failing until the \
                     server's retry bound; nothing of this request was kept. Retry later; the \
                     server's log has the details.",
                    vec![],
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("30"))
            }
            other => {
                // Logged here, once; the client sees only that something went wrong.
                tracing::error!(error = %other, "request failed unexpectedly");
                ApiError::new(ErrorCode::UnexpectedError, "Unexpected error.", vec![])
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.code);
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}
