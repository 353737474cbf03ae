//! Plain records shared by the domain services and the metadata store.
//!
//! They carry no behaviour that depends on HTTP or SQL: the store persists them, the domain
//! decides with them, and the HTTP layer renders them into wire types.

use crate::ids::{ApiKeyId, ClusterId, GroupId, OrgId};

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
