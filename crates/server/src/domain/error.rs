//! The domain's error type and the API's error codes.
//!
//! Error codes are part of the public contract (clients switch on them), so the domain names
//! them; the HTTP layer alone decides which status line each one travels with.

use crate::blocks::BlockError;
use crate::meta::MetaError;

macro_rules! error_codes {
    ($($variant:ident => $code:literal,)*) => {
        /// Every `errorCode` Rewind can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }
        }
    };
}

error_codes! {
    InvalidJson => "INVALID_JSON",
    InvalidJsonAttribute => "INVALID_JSON_ATTRIBUTE",
    MissingAttribute => "MISSING_ATTRIBUTE",
    InvalidAttribute => "INVALID_ATTRIBUTE",
    AttributeNegativeOrZero => "ATTRIBUTE_NEGATIVE_OR_ZERO",
    InvalidEnumValue => "INVALID_ENUM_VALUE",
    UnsupportedDeliveryMethod => "UNSUPPORTED_DELIVERY_METHOD",
    InvalidQueryParameter => "INVALID_QUERY_PARAMETER",
    UserUnauthorized => "USER_UNAUTHORIZED",
    NotInGroup => "NOT_IN_GROUP",
    IpAddressNotOnAccessList => "IP_ADDRESS_NOT_ON_ACCESS_LIST",
    InvalidOrgId => "INVALID_ORG_ID",
    InvalidGroupId => "INVALID_GROUP_ID",
    InvalidClusterId => "INVALID_CLUSTER_ID",
    InvalidSnapshotId => "INVALID_SNAPSHOT_ID",
    InvalidCheckpointId => "INVALID_CHECKPOINT_ID",
    InvalidJobId => "INVALID_JOB_ID",
    InvalidApiKeyId => "INVALID_API_KEY_ID",
    GroupNotFound => "GROUP_NOT_FOUND",
    OrgNotFound => "ORG_NOT_FOUND",
    ClusterNotFound => "CLUSTER_NOT_FOUND",
    SnapshotNotFound => "SNAPSHOT_NOT_FOUND",
    CheckpointNotFound => "CHECKPOINT_NOT_FOUND",
    RestoreJobNotFound => "RESTORE_JOB_NOT_FOUND",
    ApiKeyNotFound => "API_KEY_NOT_FOUND",
    AccessListEntryNotFound => "ACCESS_LIST_ENTRY_NOT_FOUND",
    ResourceNotFound => "RESOURCE_NOT_FOUND",
    MethodNotAllowed => "METHOD_NOT_ALLOWED",
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
    GroupAlreadyExists => "GROUP_ALREADY_EXISTS",
    DuplicateClusterName => "DUPLICATE_CLUSTER_NAME",
    CannotStartRestoreJobForDeletedSnapshot => "CANNOT_START_RESTORE_JOB_FOR_DELETED_SNAPSHOT",
    CannotStartRestoreJobForIncompleteClusterSnapshot => "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
    NoCheckpointForPitRestore => "NO_CHECKPOINT_FOR_PIT_RESTORE",
    DownloadNotAvailable => "DOWNLOAD_NOT_AVAILABLE",
    DownloadExpired => "DOWNLOAD_EXPIRED",
    MaxDownloadsExceeded => "MAX_DOWNLOADS_EXCEEDED",
    ChunkHashMismatch => "CHUNK_HASH_MISMATCH",
    SnapshotPartAlreadyCommitted => "SNAPSHOT_PART_ALREADY_COMMITTED",
    SnapshotMarkedDoNotDelete => "CANNOT_DELETE_SNAPSHOT_MARKED_DO_NOT_DELETE",
    CannotCancelRestoreJob => "CANNOT_CANCEL_RESTORE_JOB",
    RestoreMemberNotClaimed => "RESTORE_MEMBER_NOT_CLAIMED",
    ReplicaSetNotFound => "REPLICA_SET_NOT_FOUND",
    InvalidOplogEntry => "INVALID_OPLOG_ENTRY",
    OplogEntriesOutOfOrder => "OPLOG_ENTRIES_OUT_OF_ORDER",
    OplogEntryConflict => "OPLOG_ENTRY_CONFLICT",
    OplogContinuityMismatch => "OPLOG_CONTINUITY_MISMATCH",
    ConcurrentOplogPush => "CONCURRENT_OPLOG_PUSH",
    InvalidRange => "INVALID_RANGE",
    RangeNotSatisfiable => "RANGE_NOT_SATISFIABLE",
    RequestTooLarge => "REQUEST_TOO_LARGE",
    RequestUriTooLong => "REQUEST_URI_TOO_LONG",
    RateLimited => "RATE_LIMITED",
    InsufficientStorage => "INSUFFICIENT_STORAGE",
    StorageRefused => "STORAGE_REFUSED",
    StorageUnavailable => "STORAGE_UNAVAILABLE",
    UnexpectedError => "UNEXPECTED_ERROR",
    GroupMismatch => "GROUP_MISMATCH",
    InvalidSnapshotInterval => "INVALID_SNAPSHOT_INTERVAL",
    InvalidSnapshotRetentionPeriod => "INVALID_SNAPSHOT_RETENTION_PERIOD",
    InvalidDailySnapshotRetentionPeriod => "INVALID_DAILY_SNAPSHOT_RETENTION_PERIOD",
    InvalidWeeklySnapshotRetentionPeriod => "INVALID_WEEKLY_SNAPSHOT_RETENTION_PERIOD",
    InvalidMonthlySnapshotRetentionPeriod => "INVALID_MONTHLY_SNAPSHOT_RETENTION_PERIOD",
    InvalidReferenceHourOfDay => "INVALID_REFERENCE_HOUR_OF_DAY",
    InvalidReferenceMinuteOfHour => "INVALID_REFERENCE_MINUTE_OF_HOUR",
    InvalidReferenceTimezoneOffset => "INVALID_REFERENCE_TIMEZONE_OFFSET",
    InvalidClusterCheckpointInterval => "INVALID_CLUSTER_CHECKPOINT_INTERVAL",
    CannotSetClusterCheckpointIntervalForReplicaSet => "CANNOT_SET_CLUSTER_CHECKPOINT_INTERVAL_FOR_REPLICA_SET",
}

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request is refused for a reason the client can act on; `detail` is safe to show.
    #[error("{code:?}: {detail}")]
    Rejected {
        code: ErrorCode,
        detail: String,
        parameters: Vec<String>,
    },
    #[error(transparent)]
    Meta(MetaError),
    /// A store ran out of space (no space left, a quota reached). The operation stored
    /// nothing, or removed what it had stored; the text is for the log.
    #[error("out of storage space: {0}")]
    StorageFull(String),
    /// A store refused access (permissions, credentials); the text is for the log.
    #[error("storage refused access: {0}")]
    StorageRefused(String),
    /// A store could not be reached, or its requests kept failing until the retry bound;
    /// the text is for the log.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// A fault inside the server; logged, and shown to clients only as `UNEXPECTED_ERROR`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn rejected(code: ErrorCode, detail: impl Into<String>, parameters: Vec<String>) -> Self {
        DomainError::Rejected {
            code,
            detail: detail.into(),
            parameters,
        }
    }

    /// The standard "you are not authorized" refusal, with the detail text clients look for.
    pub fn unauthorized() -> Self {
        Self::rejected(
            ErrorCode::UserUnauthorized,
            "You are not authorized for this resource.",
            vec![],
        )
    }

    pub fn not_in_group(group: &str) -> Self {
        Self::rejected(
            ErrorCode::NotInGroup,
            format!("The current user is not in the group, or the group does not exist: {group}."),
            vec![group.to_owned()],
        )
    }

    /// The error code: the client's fault, the storage's state, or `UNEXPECTED_ERROR`.
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::Rejected { code, .. } => *code,
            DomainError::StorageFull(_) => ErrorCode::InsufficientStorage,
            DomainError::StorageRefused(_) => ErrorCode::StorageRefused,
            DomainError::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
            DomainError::Meta(_) | DomainError::Internal(_) => ErrorCode::UnexpectedError,
        }
    }

    /// Whether the failure is a full store: a write refused for that reason certainly did
    /// not happen, so what the request wrote before it may be removed.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, DomainError::StorageFull(_))
    }
}

impl From<MetaError> for DomainError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::StorageFull(_) => DomainError::StorageFull(err.to_string()),
            other => DomainError::Meta(other),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

/// A block store failure, as the domain reports it: a full or refusing store as such,
/// anything else internal (the details are logged, and never reach a client).
pub(crate) fn block_error(err: BlockError) -> DomainError {
    match err {
        BlockError::StorageFull(_) => DomainError::StorageFull(format!("block store: {err}")),
        BlockError::Refused(_) => DomainError::StorageRefused(format!("block store: {err}")),
        BlockError::Unavailable(_) => {
            DomainError::StorageUnavailable(format!("block store: {err}"))
        }
        other => DomainError::Internal(format!("block store: {other}")),
    }
}
