//! Domain services: what Rewind does, independent of HTTP and of any storage backend.

pub mod agents;
pub mod bootstrap;
mod cache;
pub mod checkpoints;
pub mod clusters;
mod error;
pub mod garbage;
pub mod keys;
pub mod leases;
pub mod oplog;
pub mod organizations;
pub mod projects;
pub mod replay;
pub mod restore;
pub mod sessions;
pub mod settings;
pub mod snapshots;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use error::block_error;
pub use error::{DomainError, DomainResult, ErrorCode};

use crate::blocks::BlockStore;
use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::meta::MetaStore;
use crate::model::{
    ClusterRecord, GroupRecord, OplogStream, PageRequest, Role, RoleGrant, UnixSeconds,
};

/// Where the services read the time. Injected so tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixSeconds;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        chrono::Utc::now().timestamp()
    }
}

/// The authenticated caller of an API request: an API key and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: ApiKeyId,
    pub org_id: OrgId,
    pub public_key: String,
    pub roles: Vec<RoleGrant>,
}

/// What a request intends to do inside one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAccess {
    /// Any role in the project (or an org role on its organization).
    Read,
    /// Backup administration: `GROUP_OWNER`, `GROUP_BACKUP_ADMIN` or `ORG_OWNER`.
    BackupAdmin,
    /// Planning a restore (reading its restorable time ranges): backup administration, or
    /// `ORG_READ_ONLY`, the roles Cloud Manager documents for it.
    PlanRestore,
}

impl Principal {
    fn has_org_role(&self, org: OrgId, accepted: &[Role]) -> bool {
        org == self.org_id
            && self
                .roles
                .iter()
                .any(|g| g.group_id.is_none() && accepted.contains(&g.role))
    }

    fn has_group_role(&self, group: GroupId, accepted: &[Role]) -> bool {
        self.roles
            .iter()
            .any(|g| g.group_id == Some(group) && accepted.contains(&g.role))
    }

    /// Whether the key holds any role that lets it see the project at all.
    pub fn is_member_of(&self, group: &GroupRecord) -> bool {
        self.has_org_role(group.org_id, &[Role::OrgOwner, Role::OrgReadOnly])
            || self.has_group_role(
                group.id,
                &[
                    Role::GroupOwner,
                    Role::GroupBackupAdmin,
                    Role::GroupReadOnly,
                ],
            )
    }

    pub fn may(&self, group: &GroupRecord, access: GroupAccess) -> bool {
        match access {
            GroupAccess::Read => self.is_member_of(group),
            GroupAccess::BackupAdmin => {
                self.has_org_role(group.org_id, &[Role::OrgOwner])
                    || self.has_group_role(group.id, &[Role::GroupOwner, Role::GroupBackupAdmin])
            }
            GroupAccess::PlanRestore => {
                self.may(group, GroupAccess::BackupAdmin)
                    || self.has_org_role(group.org_id, &[Role::OrgReadOnly])
            }
        }
    }

    pub fn may_read_org(&self, org: OrgId) -> bool {
        self.has_org_role(org, &[Role::OrgOwner, Role::OrgReadOnly])
    }

    pub fn may_administer_org(&self, org: OrgId) -> bool {
        self.has_org_role(org, &[Role::OrgOwner])
    }
}

/// Everything a request handler or background job needs, shared behind one `Arc`.
pub struct Services {
    pub meta: Arc<dyn MetaStore>,
    pub blocks: Arc<dyn BlockStore>,
    pub clock: Arc<dyn Clock>,
    pub keys: keys::KeyService,
    /// Uploads and commits hold it shared; garbage collection holds it exclusively while it
    /// removes chunks, so a chunk can never be collected between being found present and
    /// being referenced (or between being re-uploaded and indexed) on this node.
    pub gc_lock: Arc<tokio::sync::RwLock<()>>,
    /// Signs download tokens; shared by every node of a deployment.
    pub token_secret: Vec<u8>,
    /// Archive layouts of recently downloaded jobs.
    pub plans: restore::PlanCache,
    /// Work that outlives the request that started it (a download body recording how far
    /// it got): the server waits for these at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// Wakes the restore worker when a job is created.
    pub work_available: tokio::sync::Notify,
    /// Wakes agents' long-polls when an automated job becomes ready, ends or is reported on.
    pub agent_news: tokio::sync::Notify,
    /// Wakes the checkpointer when a push stored new oplog entries.
    pub oplog_stored: tokio::sync::Notify,
    /// Projects by id (`None`: no such project), read by every authorization.
    groups: cache::TtlCache<GroupId, Option<GroupRecord>>,
    /// Each project's cluster rows, read by most requests.
    clusters: cache::TtlCache<GroupId, Arc<Vec<ClusterRecord>>>,
    /// One lock per replica set, serializing its oplog pushes and retention on this node.
    oplog_locks: std::sync::Mutex<HashMap<OplogStream, Arc<tokio::sync::Mutex<()>>>>,
}

/// How long project and cluster metadata may be served from memory. Writes through this
/// node apply at once; writes through another node within this delay.
const METADATA_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Services {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blocks: Arc<dyn BlockStore>,
        clock: Arc<dyn Clock>,
        token_secret: Vec<u8>,
    ) -> Self {
        Services {
            keys: keys::KeyService::new(meta.clone(), clock.clone()),
            meta,
            blocks,
            clock,
            gc_lock: Arc::new(tokio::sync::RwLock::new(())),
            token_secret,
            plans: restore::PlanCache::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            work_available: tokio::sync::Notify::new(),
            agent_news: tokio::sync::Notify::new(),
            oplog_stored: tokio::sync::Notify::new(),
            groups: cache::TtlCache::new(METADATA_CACHE_TTL, 10_000),
            clusters: cache::TtlCache::new(METADATA_CACHE_TTL, 10_000),
            oplog_locks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A project, from the metadata cache.
    pub async fn cached_group(&self, id: GroupId) -> DomainResult<Option<GroupRecord>> {
        let meta = self.meta.clone();
        let load = async move { Ok::<_, DomainError>(meta.get_group(id).await?) };
        self.groups.get_or_load(&id, load).await
    }

    /// All cluster rows of a project, from the metadata cache, in id order.
    pub async fn cached_clusters(&self, group: GroupId) -> DomainResult<Arc<Vec<ClusterRecord>>> {
        let meta = self.meta.clone();
        let load = async move {
            let all = PageRequest {
                offset: 0,
                limit: u64::MAX,
            };
            Ok::<_, DomainError>(Arc::new(meta.list_clusters(group, all).await?.items))
        };
        self.clusters.get_or_load(&group, load).await
    }

    /// Forgets a project's cached cluster rows after they changed.
    pub fn clusters_changed(&self, group: GroupId) {
        self.clusters.invalidate(&group);
    }

    /// Loads a project and checks the caller may act on it as `access` says.
    ///
    /// A project that does not exist is indistinguishable from one the key has no role in
    /// (`NOT_IN_GROUP`, 401), so keys cannot probe for other organizations' projects.
    pub async fn authorize_group(
        &self,
        principal: &Principal,
        group: GroupId,
        access: GroupAccess,
    ) -> DomainResult<GroupRecord> {
        let record = self.cached_group(group).await?;
        let record = match record {
            Some(r) if principal.is_member_of(&r) => r,
            _ => return Err(DomainError::not_in_group(&group.to_hex())),
        };
        if !principal.may(&record, access) {
            return Err(DomainError::unauthorized());
        }
        Ok(record)
    }
}
