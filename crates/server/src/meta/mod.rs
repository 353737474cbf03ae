//! The metadata store: organizations, projects, keys, clusters, and (one module per area)
//! snapshots, restore jobs, the oplog and checkpoints. One trait per area, one module per
//! backend; the domain talks only to the traits.

pub mod agents;
pub mod checkpoints;
pub mod oplog;
pub mod restore;
pub mod snapshots;
mod sqlite;

use async_trait::async_trait;

pub use agents::AgentMeta;
pub use checkpoints::CheckpointMeta;
pub use oplog::OplogMeta;
pub use restore::RestoreMeta;
pub use snapshots::SnapshotMeta;
pub use sqlite::SqliteMetaStore;

use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::model::{
    AccessEntry, ApiKeyRecord, ClusterRecord, GroupRecord, OrgRecord, PageOf, PageRequest,
};

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
    AccountMeta + SnapshotMeta + RestoreMeta + AgentMeta + OplogMeta + CheckpointMeta
{
}

impl<T: AccountMeta + SnapshotMeta + RestoreMeta + AgentMeta + OplogMeta + CheckpointMeta> MetaStore
    for T
{
}

/// Organizations, projects, API keys, clusters and server secrets.
#[async_trait]
pub trait AccountMeta: Send + Sync + 'static {
    /// Returns the named server secret, creating it from `fresh` if absent. Concurrent
    /// callers (even on other nodes) all get the same value.
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> MetaResult<Vec<u8>>;

    /// Writes the first organization, project and key. Returns `false`, writing nothing,
    /// when the store already holds an organization.
    async fn bootstrap(&self, records: &BootstrapRecords) -> MetaResult<bool>;

    async fn get_org(&self, id: OrgId) -> MetaResult<Option<OrgRecord>>;

    /// Fails with `Conflict` if the organization already has a project of that name.
    async fn insert_group(&self, group: &GroupRecord) -> MetaResult<()>;
    async fn get_group(&self, id: GroupId) -> MetaResult<Option<GroupRecord>>;
    async fn list_groups(
        &self,
        scope: &GroupScope,
        page: PageRequest,
    ) -> MetaResult<PageOf<GroupRecord>>;

    /// Fails with `Conflict` if the public key is taken.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()>;
    async fn get_api_key_by_public(&self, public_key: &str) -> MetaResult<Option<ApiKeyRecord>>;
    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<Option<ApiKeyRecord>>;
    async fn list_api_keys(
        &self,
        org: OrgId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ApiKeyRecord>>;
    async fn delete_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<bool>;
    /// Adds entries, keeping the existing ones (re-adding an entry is not an error).
    async fn add_access_entries(&self, key: ApiKeyId, entries: &[AccessEntry]) -> MetaResult<()>;
    async fn delete_access_entry(&self, key: ApiKeyId, cidr: &ipnet::IpNet) -> MetaResult<bool>;

    /// Inserts a cluster and its members in one transaction; `Conflict` when the project
    /// already has a cluster of that name.
    async fn insert_clusters(&self, clusters: &[ClusterRecord]) -> MetaResult<()>;
    async fn list_clusters(
        &self,
        group: GroupId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ClusterRecord>>;
}
