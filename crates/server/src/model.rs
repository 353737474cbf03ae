//! Plain records shared by the domain services and the metadata store.
//!
//! They carry no behaviour that depends on HTTP or SQL: the store persists them, the domain
//! decides with them, and the HTTP layer renders them into wire types.

/// Defined beside the entry format that yields it, which clients share.
pub use rewind_formats::OplogTs;

use crate::blocks::{ChunkId, Placement};
use crate::ids::{
    ApiKeyId, BatchId, CheckpointId, ClusterId, GroupId, JobId, OplogSliceId, OrgId, SnapshotId,
};

/// Seconds since the Unix epoch, UTC. The whole server keeps time at this resolution,
/// as the API's ISO-8601 timestamps do.
pub type UnixSeconds = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub id: OrgId,
    pub name: String,
    pub created: UnixSeconds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub org_id: OrgId,
    pub name: String,
    pub created: UnixSeconds,
}

/// The roles an API key can hold, spelled as the API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    OrgOwner,
    OrgReadOnly,
    GroupOwner,
    GroupBackupAdmin,
    GroupReadOnly,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::OrgOwner,
        Role::OrgReadOnly,
        Role::GroupOwner,
        Role::GroupBackupAdmin,
        Role::GroupReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgOwner => "ORG_OWNER",
            Role::OrgReadOnly => "ORG_READ_ONLY",
            Role::GroupOwner => "GROUP_OWNER",
            Role::GroupBackupAdmin => "GROUP_BACKUP_ADMIN",
            Role::GroupReadOnly => "GROUP_READ_ONLY",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Org roles apply to every project of the organization; group roles to one project.
    pub fn is_org_role(self) -> bool {
        matches!(self, Role::OrgOwner | Role::OrgReadOnly)
    }
}

/// One role held by a key: org-wide when `group_id` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub group_id: Option<GroupId>,
    pub role: Role,
}

/// One API access list entry, always normalised to CIDR form (`10.0.0.1/32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub cidr: ipnet::IpNet,
    pub created: UnixSeconds,
}

/// A programmatic API key. The private key itself is never stored: only the Digest HA1
/// (`MD5(publicKey:realm:privateKey)`), which is all that verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub public_key: String,
    pub desc: String,
    pub digest_ha1: String,
    pub created: UnixSeconds,
    pub roles: Vec<RoleGrant>,
    pub access_list: Vec<AccessEntry>,
}

/// The topology role of a registered cluster row, as `typeName` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterType {
    ReplicaSet,
    ShardedReplicaSet,
    ConfigServerReplicaSet,
}

impl ClusterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterType::ReplicaSet => "REPLICA_SET",
            ClusterType::ShardedReplicaSet => "SHARDED_REPLICA_SET",
            ClusterType::ConfigServerReplicaSet => "CONFIG_SERVER_REPLICA_SET",
        }
    }

    pub fn parse(text: &str) -> Option<ClusterType> {
        [
            ClusterType::ReplicaSet,
            ClusterType::ShardedReplicaSet,
            ClusterType::ConfigServerReplicaSet,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// A cluster row. A sharded cluster is one `ShardedReplicaSet` row plus one `ReplicaSet` row
/// per shard and one `ConfigServerReplicaSet` row, the latter two pointing at it by `parent_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRecord {
    pub id: ClusterId,
    pub group_id: GroupId,
    pub cluster_name: String,
    pub type_name: ClusterType,
    pub replica_set_name: Option<String>,
    pub shard_name: Option<String>,
    pub parent_id: Option<ClusterId>,
    /// Feature compatibility version, `MAJOR.MINOR`.
    pub fcv: String,
    pub last_heartbeat: Option<UnixSeconds>,
    pub created: UnixSeconds,
}

/// Which slice of a list to return: `offset` items skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u64,
}

/// One page of a list plus the total number of items across all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// One replica set's oplog as Rewind keeps it: the cluster it is pushed for (the replica set
/// itself, or the sharded cluster a shard or config server belongs to) and the replica set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OplogStream {
    pub cluster: ClusterId,
    pub replica_set: String,
}

/// A closed stretch of oplog within which every entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplogRange {
    pub first: OplogTs,
    pub last: OplogTs,
}

/// What the metadata store knows of one stored oplog slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogSliceRecord {
    pub id: OplogSliceId,
    pub first: OplogTs,
    pub last: OplogTs,
    pub entry_count: u64,
    /// Bytes of the entries, uncompressed.
    pub raw_bytes: u64,
    /// Bytes of the stored object.
    pub stored_bytes: u64,
    pub recorded: UnixSeconds,
}

/// What a project set of its backup settings; `None` where it kept the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSettingsRecord {
    pub pit_window_hours: Option<u32>,
    pub checkpoint_interval_minutes: Option<u32>,
    pub snapshot_interval_hours: Option<u32>,
    pub snapshot_retention_days: Option<u32>,
    pub daily_retention_days: Option<u32>,
    pub weekly_retention_weeks: Option<u32>,
    pub monthly_retention_months: Option<u32>,
    pub reference_hour_of_day: Option<u32>,
    pub reference_minute_of_hour: Option<u32>,
    /// Minutes east of UTC.
    pub reference_offset_minutes: Option<i32>,
}

/// A replica set's stored oplog in totals, with its ranges oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogStreamSummary {
    pub replica_set: String,
    pub slices: u64,
    pub entries: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub ranges: Vec<OplogRange>,
}

/// One replica set's share of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPartRecord {
    /// The replica set's own cluster row (a shard, the config server, or the replica set).
    pub cluster_id: ClusterId,
    pub replica_set_name: String,
    pub type_name: ClusterType,
    pub committed: bool,
    /// Object name of the committed manifest (`None` until committed).
    pub manifest_name: Option<String>,
    pub file_count: u64,
    pub file_size_bytes: u64,
    pub data_size_bytes: u64,
    pub storage_size_bytes: u64,
}

impl SnapshotPartRecord {
    /// A part as a new import opens it: not committed, nothing counted yet.
    pub fn uncommitted(
        cluster_id: ClusterId,
        replica_set_name: String,
        type_name: ClusterType,
    ) -> Self {
        SnapshotPartRecord {
            cluster_id,
            replica_set_name,
            type_name,
            committed: false,
            manifest_name: None,
            file_count: 0,
            file_size_bytes: 0,
            data_size_bytes: 0,
            storage_size_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    pub group_id: GroupId,
    pub cluster_id: ClusterId,
    /// The oplog position the files correspond to.
    pub created: OplogTs,
    pub last_oplog_applied: Option<OplogTs>,
    /// True once every part is committed.
    pub complete: bool,
    pub expires: Option<UnixSeconds>,
    pub do_not_delete: bool,
    /// When the snapshot was deleted (by a user or by retention); its chunks stay until
    /// no restore reads them.
    pub deleted_at: Option<UnixSeconds>,
    pub mongod_version: String,
    pub storage_engine: String,
    /// When the import began (wall clock), for cleaning up abandoned imports.
    pub recorded: UnixSeconds,
    pub parts: Vec<SnapshotPartRecord>,
}

/// One replica set's share of a checkpoint: where its oplog stood at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPartRecord {
    pub replica_set_name: String,
    /// Set for shards; `None` for the config server.
    pub shard_name: Option<String>,
    pub type_name: ClusterType,
    /// The replica set's newest stored oplog entry at or before the checkpoint.
    pub token: OplogTs,
}

/// A moment of a sharded cluster (FCV 4.0 or earlier) that every replica set's stored oplog
/// reaches past, so that all of them can be restored to it consistently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub id: CheckpointId,
    pub group_id: GroupId,
    pub cluster_id: ClusterId,
    /// The moment restored to, in seconds since the epoch (a multiple of the interval).
    pub timestamp: u32,
    /// When Rewind recorded it (its `started` and `completed`).
    pub recorded: UnixSeconds,
    /// Shards first, in member order, then the config server.
    pub parts: Vec<CheckpointPartRecord>,
}

/// What the metadata store knows of a stored chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    pub id: ChunkId,
    pub raw_bytes: u32,
    /// Bytes of the stored payload (compressed, or raw).
    pub stored_bytes: u32,
    pub is_deflate: bool,
    /// Where the chunk's object bytes are.
    pub placement: Placement,
}

/// Sizes recorded when a part is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartStats {
    pub file_count: u64,
    pub file_size_bytes: u64,
    pub data_size_bytes: u64,
    pub storage_size_bytes: u64,
}

/// `statusName` of a restore job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    InProgress,
    Finished,
    Broken,
    Killed,
}

/// `delivery.statusName` of a restore job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    NotStarted,
    InProgress,
    Ready,
    Failed,
    Interrupted,
    Expired,
    MaxDownloadsExceeded,
}

macro_rules! wire_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text,)* }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

wire_enum!(JobStatus { InProgress => "IN_PROGRESS", Finished => "FINISHED", Broken => "BROKEN", Killed => "KILLED" });
wire_enum!(DeliveryStatus {
    NotStarted => "NOT_STARTED",
    InProgress => "IN_PROGRESS",
    Ready => "READY",
    Failed => "FAILED",
    Interrupted => "INTERRUPTED",
    Expired => "EXPIRED",
    MaxDownloadsExceeded => "MAX_DOWNLOADS_EXCEEDED",
});

/// How a job's data reaches its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMethod {
    /// A download link with a download budget and an expiry.
    Http {
        max_downloads: u32,
        /// Hours the link lives once the job finishes (when no absolute `expires` was given).
        expiration_hours: Option<u32>,
    },
    /// Pulled by the target cluster's agents.
    Automated {
        target_group: GroupId,
        target_cluster: ClusterId,
    },
}

/// One restore job: one replica set's archive (a sharded restore is a batch of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreJobRecord {
    pub id: JobId,
    pub batch_id: Option<BatchId>,
    pub group_id: GroupId,
    /// The cluster the restore was requested for (for a batch: the sharded cluster).
    pub cluster_id: ClusterId,
    pub snapshot_id: SnapshotId,
    /// The replica set this job's archive holds.
    pub replica_set_name: String,
    pub part_type: ClusterType,
    pub created: UnixSeconds,
    pub status: JobStatus,
    pub delivery_status: DeliveryStatus,
    pub method: DeliveryMethod,
    /// Absolute link expiry: given at creation, or computed when the job finishes.
    pub expires: Option<UnixSeconds>,
    pub point_in_time: bool,
    /// The restore point: the snapshot's timestamp (or the point-in-time target).
    pub timestamp: OplogTs,
    /// Base name of the archive, without `.tar.gz`.
    pub file_name: String,
    pub archive_bytes: Option<u64>,
    pub archive_sha1: Option<String>,
    pub downloads_started: u32,
    pub downloads_completed: u32,
    /// Where the last interrupted transfer stopped, while a resume may continue it.
    pub resume_offset: Option<u64>,
    /// Bytes that resumes have sent a second time, over the link's life.
    pub resent_bytes: u64,
    pub finished_at: Option<UnixSeconds>,
    /// Why the job broke, when it did.
    pub failure: Option<String>,
    pub attempts: u32,
}

/// The download accounting of an HTTP link: what the store keeps and compares as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryLedger {
    pub status: DeliveryStatus,
    pub downloads_started: u32,
    pub downloads_completed: u32,
    pub resume_offset: Option<u64>,
    pub resent_bytes: u64,
}

impl RestoreJobRecord {
    pub fn ledger(&self) -> DeliveryLedger {
        DeliveryLedger {
            status: self.delivery_status,
            downloads_started: self.downloads_started,
            downloads_completed: self.downloads_completed,
            resume_offset: self.resume_offset,
            resent_bytes: self.resent_bytes,
        }
    }
}
