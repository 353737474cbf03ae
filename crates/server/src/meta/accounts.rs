//! Accounts: organizations, projects and their backup settings, API keys with their roles
//! and access lists, clusters, and the server's shared secrets.

use async_trait::async_trait;

use super::{BootstrapRecords, GroupScope, MetaResult};
use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::model::{
    AccessEntry, ApiKeyRecord, BackupSettingsRecord, ClusterRecord, GroupRecord, OrgRecord, PageOf,
    PageRequest,
};

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

    /// What the project set of its backup settings (all `None` when it set nothing).
    async fn backup_settings(&self, group: GroupId) -> MetaResult<BackupSettingsRecord>;
    /// Writes the fields of `change` that are `Some`, keeping the others, in one
    /// transaction; returns the record as stored afterwards.
    async fn update_backup_settings(
        &self,
        group: GroupId,
        change: &BackupSettingsRecord,
    ) -> MetaResult<BackupSettingsRecord>;
}
