//! The metadata store: organizations, projects, keys, clusters, and (one module per area)
//! snapshots, restore jobs, the oplog, checkpoints, the Digest replay ledger and the console's sessions. One trait
//! per area, one module per backend; the domain talks only to the traits.

pub mod accounts;
pub mod agents;
pub mod checkpoints;
#[cfg(test)]
pub(crate) mod conformance;
mod group_commit;
pub mod leases;
pub mod nonces;
pub mod oplog;
mod postgres;
pub mod restore;
mod rows;
pub mod sessions;
pub mod snapshots;
mod sqlite;

pub use accounts::AccountMeta;
pub use agents::AgentMeta;
pub use checkpoints::CheckpointMeta;
pub use leases::{LeaseToken, TaskLeaseMeta};
pub use nonces::{NonceMeta, NonceUse};
pub use oplog::OplogMeta;
pub use postgres::PostgresMetaStore;
pub use restore::RestoreMeta;
pub use sessions::{ConsoleSessionMeta, ConsoleSessionRecord};
pub use snapshots::SnapshotMeta;
pub use sqlite::SqliteMetaStore;

use crate::ids::{GroupId, OrgId};
use crate::model::{ApiKeyRecord, GroupRecord, OrgRecord};

/// Errors of the metadata store. Backend details stay inside `Backend` and are logged, never
/// shown to API clients.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A uniqueness rule was violated (duplicate project name, cluster name, public key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The stored data cannot be read back as a valid record.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The backend ran out of storage space; the write did not happen.
    #[error("metadata store out of storage space: {0}")]
    StorageFull(String),
    #[error("metadata backend error: {0}")]
    Backend(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// Which projects a listing may show: those of the given organizations plus the given projects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupScope {
    pub org_ids: Vec<OrgId>,
    pub group_ids: Vec<GroupId>,
}

/// The bootstrap identity written atomically on first start.
#[derive(Debug, Clone)]
pub struct BootstrapRecords {
    pub org: OrgRecord,
    pub group: GroupRecord,
    pub key: ApiKeyRecord,
}

/// The whole metadata store: one backend implements every area's trait.
pub trait MetaStore:
    AccountMeta
    + SnapshotMeta
    + RestoreMeta
    + AgentMeta
    + OplogMeta
    + CheckpointMeta
    + TaskLeaseMeta
    + NonceMeta
    + ConsoleSessionMeta
{
}

impl<
        T: AccountMeta
            + SnapshotMeta
            + RestoreMeta
            + AgentMeta
            + OplogMeta
            + CheckpointMeta
            + TaskLeaseMeta
            + NonceMeta
            + ConsoleSessionMeta,
    > MetaStore for T
{
}
