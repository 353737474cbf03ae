//! Wire types of the Cloud Manager Public API v1.0 subset that Rewind speaks, plus the
//! few Rewind-only payloads under `/api/rewind/v1`.
//!
//! These structs are shared by the server, the CLI and the agent so that both sides of
//! every call agree on field names. Fields are declared in alphabetical order, as the
//! real server emits them, and optional fields are omitted rather than sent as `null`.

use serde::{Deserialize, Serialize};

/// The Cloud Manager error body: `{"detail","error","errorCode","parameters","reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub detail: String,
    pub error: u16,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(default)]
    pub parameters: Vec<String>,
    #[serde(default)]
    pub reason: String,
}

/// One RFC 5988 web link as the API renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub rel: String,
}

/// A list response page: `{"links","results","totalCount"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    #[serde(default)]
    pub links: Vec<Link>,
    pub results: Vec<T>,
    #[serde(
        rename = "totalCount",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub total_count: Option<u64>,
}

/// A BSON timestamp as the API renders it: an ISO-8601 date plus the ordinal within that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BsonTimestamp {
    /// ISO-8601 UTC second (`2018-09-15T15:53:00Z`), kept as seconds since the epoch.
    #[serde(with = "iso_seconds")]
    pub date: i64,
    pub increment: u32,
}

/// Serde helper rendering Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub mod iso_seconds {
    use chrono::{DateTime, NaiveDate, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_iso(*secs))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        parse_iso(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an ISO-8601 date: {text}")))
    }

    /// Formats Unix seconds as an ISO-8601 UTC timestamp with a `Z` suffix.
    pub fn format_iso(secs: i64) -> String {
        match DateTime::<Utc>::from_timestamp(secs, 0) {
            Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            None => "invalid-date".to_owned(),
        }
    }

    /// Parses an RFC 3339 timestamp (any offset; fractions of a second are dropped) or a bare
    /// `YYYY-MM-DD` date (midnight UTC, as the Go client sends for snapshot expiry).
    pub fn parse_iso(text: &str) -> Option<i64> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(t.timestamp());
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
    }
}

/// A project (`group` in the API's paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub created: String,
    pub id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    pub name: String,
    #[serde(rename = "orgId")]
    pub org_id: String,
}

/// An organization (`GET /orgs`, `GET /orgs/{ORG-ID}`), as the Go client's fixtures show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    #[serde(rename = "isDeleted", skip_serializing_if = "Option::is_none", default)]
    pub is_deleted: Option<bool>,
    #[serde(default)]
    pub links: Vec<Link>,
    pub name: String,
}

/// One role held by an API key: org-wide (`orgId`) or on one project (`groupId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    #[serde(rename = "groupId", skip_serializing_if = "Option::is_none", default)]
    pub group_id: Option<String>,
    #[serde(rename = "orgId", skip_serializing_if = "Option::is_none", default)]
    pub org_id: Option<String>,
    #[serde(rename = "roleName")]
    pub role_name: String,
}

/// A programmatic API key. `privateKey` is present only in the response that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub desc: String,
    pub id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(
        rename = "privateKey",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub private_key: Option<String>,
    #[serde(rename = "publicKey")]
    pub public_key: String,
    pub roles: Vec<RoleAssignment>,
}

/// One entry of an API key's access list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessListEntry {
    #[serde(rename = "cidrBlock")]
    pub cidr_block: String,
    pub created: String,
    #[serde(rename = "ipAddress", skip_serializing_if = "Option::is_none", default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub links: Vec<Link>,
}

/// A cluster as Cloud Manager lists it: a replica set, a sharded cluster, or a config server replica set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    #[serde(rename = "clusterName")]
    pub cluster_name: String,
    #[serde(rename = "groupId")]
    pub group_id: String,
    pub id: String,
    #[serde(
        rename = "lastHeartbeat",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_heartbeat: Option<String>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(
        rename = "replicaSetName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub replica_set_name: Option<String>,
    #[serde(rename = "shardName", skip_serializing_if = "Option::is_none", default)]
    pub shard_name: Option<String>,
    #[serde(rename = "typeName")]
    pub type_name: String,
}

/// Body of `POST /api/rewind/v1/groups/{G}/clusters`: registers a replica set, or a sharded
/// cluster with `shards` shards and a config server replica set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRegistration {
    #[serde(rename = "clusterName")]
    pub cluster_name: String,
    #[serde(
        rename = "featureCompatibilityVersion",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub feature_compatibility_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shards: Option<u32>,
}

/// A registered cluster with the Rewind-only details (FCV and members of a sharded cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredCluster {
    #[serde(rename = "featureCompatibilityVersion")]
    pub feature_compatibility_version: String,
    /// The top-level cluster first, then its shards and config server replica set.
    pub members: Vec<Cluster>,
}

impl RegisteredCluster {
    /// The names of the cluster's replica sets: itself, or its shards and config server.
    pub fn replica_set_names(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.type_name != "SHARDED_REPLICA_SET")
            .filter_map(|m| m.replica_set_name.clone())
            .collect()
    }
}

/// `text` as one URL path segment: everything but RFC 3986's unreserved characters
/// percent-encoded (replica set names may hold spaces).
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What `rewind init --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapCredentials {
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(rename = "orgId")]
    pub org_id: String,
    #[serde(rename = "privateKey")]
    pub private_key: String,
    #[serde(rename = "publicKey")]
    pub public_key: String,
}

#[cfg(test)]
mod tests {
    use super::iso_seconds::{format_iso, parse_iso};

    #[test]
    fn iso_dates_round_trip_across_leap_years_and_epoch() {
        for secs in [0, 951_782_400, 1_536_610_288, 4_102_444_799, -1] {
            assert_eq!(parse_iso(&format_iso(secs)), Some(secs));
        }
        assert_eq!(format_iso(1_536_610_288), "2018-09-10T20:11:28Z");
        assert_eq!(parse_iso("2018-09-20T15:00:00.123Z"), Some(1_537_455_600));
        assert_eq!(parse_iso("2018-09-20T16:00:00+01:00"), Some(1_537_455_600));
        assert_eq!(parse_iso("2018-12-01"), Some(1_543_622_400));
    }

    #[test]
    fn iso_parser_rejects_malformed_dates() {
        for bad in [
            "",
            "2018-02-30T00:00:00Z",
            "2018-09-20T15:00:00",
            "2018-09-20T24:00:00Z",
            "２018-09-20T15:00:00Z",
            "yesterday",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }
}

/// A snapshot as Cloud Manager renders it (`GET …/clusters/{C}/snapshots`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    pub complete: bool,
    pub created: BsonTimestamp,
    #[serde(rename = "doNotDelete")]
    pub do_not_delete: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
    #[serde(rename = "groupId")]
    pub group_id: String,
    pub id: String,
    /// Present on sharded clusters' snapshots only.
    #[serde(
        rename = "isPossiblyInconsistent",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub is_possibly_inconsistent: Option<bool>,
    #[serde(
        rename = "lastOplogAppliedTimestamp",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_oplog_applied_timestamp: Option<BsonTimestamp>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(
        rename = "namespaceFilterList",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub namespace_filter_list: Option<NamespaceFilterList>,
    #[serde(default)]
    pub parts: Vec<SnapshotPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceFilterList {
    #[serde(rename = "filterList")]
    pub filter_list: Vec<String>,
    #[serde(rename = "filterType")]
    pub filter_type: String,
}

/// One replica set's share of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPart {
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    #[serde(rename = "compressionSetting")]
    pub compression_setting: String,
    #[serde(rename = "dataSizeBytes")]
    pub data_size_bytes: u64,
    #[serde(rename = "encryptionEnabled")]
    pub encryption_enabled: bool,
    #[serde(rename = "fileSizeBytes")]
    pub file_size_bytes: u64,
    #[serde(rename = "mongodVersion")]
    pub mongod_version: String,
    #[serde(rename = "replicaSetName")]
    pub replica_set_name: String,
    #[serde(rename = "storageSizeBytes")]
    pub storage_size_bytes: u64,
    #[serde(rename = "typeName")]
    pub type_name: String,
}

/// A checkpoint of a sharded cluster (`GET …/clusters/{C}/checkpoints[/{ID}]`): a moment
/// every shard and the config server can be restored to together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    /// ISO-8601.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub completed: Option<String>,
    #[serde(rename = "groupId")]
    pub group_id: String,
    pub id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parts: Vec<CheckpointPart>,
    pub restorable: bool,
    /// ISO-8601.
    pub started: String,
    /// The moment the checkpoint restores to, ISO-8601.
    pub timestamp: String,
}

/// One replica set's share of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPart {
    #[serde(rename = "replicaSetName")]
    pub replica_set_name: String,
    /// Present for shards only.
    #[serde(rename = "shardName", skip_serializing_if = "Option::is_none", default)]
    pub shard_name: Option<String>,
    #[serde(rename = "tokenDiscovered")]
    pub token_discovered: bool,
    /// The replica set's newest oplog entry at or before the checkpoint.
    #[serde(rename = "tokenTimestamp")]
    pub token_timestamp: BsonTimestamp,
    /// `REPLICA_SET` (a shard) or `CONFIG_SERVER_REPLICA_SET`.
    #[serde(rename = "typeName")]
    pub type_name: String,
}

/// Body of `POST /api/rewind/v1/groups/{G}/clusters/{C}/snapshots`: opens an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotCreate {
    /// The oplog position the files correspond to.
    pub created: BsonTimestamp,
    #[serde(
        rename = "lastOplogAppliedTimestamp",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_oplog_applied_timestamp: Option<BsonTimestamp>,
    #[serde(rename = "mongodVersion")]
    pub mongod_version: String,
    #[serde(
        rename = "storageEngine",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub storage_engine: Option<String>,
}

/// One file of a part manifest: where it goes, its metadata and its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// `(chunk id hex, plaintext length)` in file order.
    pub chunks: Vec<(String, u32)>,
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Relative path with `/` separators, no `.` or `..` components.
    pub path: String,
    pub size: u64,
}

/// One directory of a part manifest (any directory below the data directory, empty or
/// not), so that restores bring back empty directories and every directory's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDirectory {
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Relative path with `/` separators, no `.` or `..` components, no trailing `/`.
    pub path: String,
}

/// Body of `PUT …/snapshots/{S}/parts/{replicaSetName}`: commits one replica set's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    /// Absent from manifests of clients that list only files: their directories are then
    /// implied by the files' paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<ManifestDirectory>,
    pub files: Vec<ManifestFile>,
}

/// `POST /api/rewind/v1/groups/{G}/chunks/missing`: which of these chunks does the server lack?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkQuery {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingChunks {
    pub missing: Vec<String>,
}

/// Answer to a chunk upload batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkUploadSummary {
    #[serde(rename = "bytesNewlyStored")]
    pub bytes_newly_stored: u64,
    #[serde(rename = "bytesReceived")]
    pub bytes_received: u64,
    #[serde(rename = "chunksNewlyStored")]
    pub chunks_newly_stored: u64,
    #[serde(rename = "chunksReceived")]
    pub chunks_received: u64,
}

/// What `rewind snapshot import --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportSummary {
    #[serde(rename = "bytesNewlyStored")]
    pub bytes_newly_stored: u64,
    #[serde(rename = "bytesScanned")]
    pub bytes_scanned: u64,
    #[serde(rename = "bytesUploaded")]
    pub bytes_uploaded: u64,
    /// `bytesScanned / bytesUploaded`: bytes read per byte sent; `null` when nothing needed
    /// uploading.
    #[serde(rename = "dedupRatio")]
    pub dedup_ratio: Option<f64>,
    #[serde(rename = "snapshotId")]
    pub snapshot_id: String,
}

/// Result of re-reading chunks (`rewind snapshot verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VerifyReport {
    #[serde(rename = "bytesChecked")]
    pub bytes_checked: u64,
    #[serde(rename = "chunksChecked")]
    pub chunks_checked: u64,
    /// Chunks whose stored bytes fail verification.
    pub corrupt: Vec<String>,
    /// Chunks a manifest names that the store does not hold.
    pub missing: Vec<String>,
}

/// `delivery` of a restore job as the API renders it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreDelivery {
    #[serde(
        rename = "expirationHours",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub expiration_hours: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
    #[serde(
        rename = "maxDownloads",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_downloads: Option<u32>,
    #[serde(rename = "methodName")]
    pub method_name: String,
    #[serde(
        rename = "statusName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub status_name: Option<String>,
    #[serde(
        rename = "targetClusterId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub target_cluster_id: Option<String>,
    #[serde(
        rename = "targetGroupId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub target_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
}

/// The hash of a downloaded archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveHash {
    #[serde(rename = "fileName")]
    pub file_name: String,
    pub hash: String,
    #[serde(rename = "typeName")]
    pub type_name: String,
}

/// A restore job as Cloud Manager renders it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreJob {
    #[serde(rename = "batchId", skip_serializing_if = "Option::is_none", default)]
    pub batch_id: Option<String>,
    /// The replica set the job's archive holds: a sharded batch's jobs each name their
    /// shard or config server here.
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    /// The name of the cluster restored (for a shard, its sharded cluster's).
    #[serde(
        rename = "clusterName",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub cluster_name: Option<String>,
    pub created: String,
    pub delivery: RestoreDelivery,
    #[serde(rename = "encryptionEnabled")]
    pub encryption_enabled: bool,
    /// Rewind's extension: why a BROKEN job broke.
    #[serde(
        rename = "failureReason",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub failure_reason: Option<String>,
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hashes: Option<Vec<ArchiveHash>>,
    pub id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(rename = "pointInTime")]
    pub point_in_time: bool,
    #[serde(
        rename = "snapshotId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub snapshot_id: Option<String>,
    #[serde(rename = "statusName")]
    pub status_name: String,
    pub timestamp: BsonTimestamp,
}

/// One element of `POST …/restoreJobs/restorableTimeRanges` (a bare array, ordered by
/// `start`): a stretch of moments, both ends included, that a point-in-time or oplog
/// restore can reach from `snapshotId`. Sharded clusters add `shardCount` and
/// `configServerType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorableTimeRange {
    #[serde(
        rename = "configServerType",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub config_server_type: Option<String>,
    pub end: BsonTimestamp,
    #[serde(
        rename = "shardCount",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub shard_count: Option<u32>,
    #[serde(rename = "snapshotId")]
    pub snapshot_id: String,
    pub start: BsonTimestamp,
}

/// Rewind-only payloads of `rewind agent` (under `/api/rewind/v1`).
pub mod agent {
    use serde::{Deserialize, Serialize};

    /// What an agent says about itself on every heartbeat and poll.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AgentHello {
        /// Stable name of the agent (the same after a restart), e.g. its host name.
        #[serde(rename = "agentId")]
        pub agent_id: String,
        /// The members of the replica set this agent applies restores to, e.g. `host:27017`.
        pub members: Vec<String>,
        #[serde(rename = "replicaSetName")]
        pub replica_set_name: String,
    }

    /// Answer to a heartbeat.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct HeartbeatAck {
        #[serde(rename = "lastHeartbeat")]
        pub last_heartbeat: String,
    }

    /// A long-poll for work: the agent's identity and how long it may wait (seconds).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WorkRequest {
        #[serde(flatten)]
        pub hello: AgentHello,
        #[serde(rename = "waitSecs", default)]
        pub wait_secs: u64,
    }

    /// What the agent is to do with one member for one job.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum TaskAction {
        /// Stop the member, put the archive in place, start it, report `APPLIED`.
        Apply,
        /// The job finished: drop the kept previous data directory, report `COMMITTED`.
        Commit,
        /// The job was cancelled or broke: put the previous data back, report `ROLLED_BACK`.
        Rollback,
    }

    /// One (job, member) assignment.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AgentTask {
        pub action: TaskAction,
        #[serde(rename = "fileName")]
        pub file_name: String,
        #[serde(rename = "jobId")]
        pub job_id: String,
        #[serde(rename = "memberName")]
        pub member_name: String,
        /// SHA-1 (hex) of the whole archive.
        pub sha1: String,
        #[serde(rename = "sizeBytes")]
        pub size_bytes: u64,
        pub url: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WorkResponse {
        pub tasks: Vec<AgentTask>,
    }

    /// Where one member is in one job, as the agent reports it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum MemberState {
        /// Planned, not yet claimed by an agent.
        Pending,
        /// Claimed; stopping, downloading, extracting, swapping or starting.
        Applying,
        /// The restored data is in place and the member started.
        Applied,
        /// Applying failed; the previous data was put back.
        Failed,
        /// The job ended without finishing; the previous data was put back.
        RolledBack,
        /// The job finished; the previous data directory was removed.
        Committed,
    }

    impl MemberState {
        pub fn as_str(self) -> &'static str {
            match self {
                MemberState::Pending => "PENDING",
                MemberState::Applying => "APPLYING",
                MemberState::Applied => "APPLIED",
                MemberState::Failed => "FAILED",
                MemberState::RolledBack => "ROLLED_BACK",
                MemberState::Committed => "COMMITTED",
            }
        }

        pub fn parse(text: &str) -> Option<MemberState> {
            [
                MemberState::Pending,
                MemberState::Applying,
                MemberState::Applied,
                MemberState::Failed,
                MemberState::RolledBack,
                MemberState::Committed,
            ]
            .into_iter()
            .find(|s| s.as_str() == text)
        }
    }

    /// A progress or outcome report for one (job, member).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MemberReport {
        #[serde(rename = "agentId")]
        pub agent_id: String,
        #[serde(rename = "jobId")]
        pub job_id: String,
        #[serde(rename = "memberName")]
        pub member_name: String,
        /// Archive bytes downloaded so far.
        #[serde(rename = "progressBytes", default)]
        pub progress_bytes: u64,
        /// Why applying failed (with `FAILED`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub reason: Option<String>,
        pub state: MemberState,
    }

    /// One member of an automated restore, as operators see it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MemberStatus {
        #[serde(rename = "agentId", skip_serializing_if = "Option::is_none", default)]
        pub agent_id: Option<String>,
        /// Archive bytes its agent downloaded (as last reported; zero once rolled back).
        #[serde(rename = "bytesDelivered", default)]
        pub bytes_delivered: u64,
        /// The archive's size, once known.
        #[serde(
            rename = "bytesExpected",
            skip_serializing_if = "Option::is_none",
            default
        )]
        pub bytes_expected: Option<u64>,
        #[serde(
            rename = "failureReason",
            skip_serializing_if = "Option::is_none",
            default
        )]
        pub failure_reason: Option<String>,
        #[serde(rename = "memberName")]
        pub member_name: String,
        #[serde(rename = "progressBytes")]
        pub progress_bytes: u64,
        pub state: MemberState,
        /// When its agent last claimed, reported or polled for it (ISO-8601).
        pub updated: String,
    }

    /// `GET /api/rewind/v1/groups/{G}/clusters/{C}/restoreJobs/{JOB}/members`: where a
    /// restore job stands, for operators watching it (`rewind restore watch`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RestoreProgress {
        /// Archive bytes the members' agents downloaded, in all (automated restores only).
        #[serde(
            rename = "bytesDelivered",
            skip_serializing_if = "Option::is_none",
            default
        )]
        pub bytes_delivered: Option<u64>,
        /// The archive's size: exact once prepared, as laid out while being prepared.
        #[serde(
            rename = "bytesExpected",
            skip_serializing_if = "Option::is_none",
            default
        )]
        pub bytes_expected: Option<u64>,
        /// Archive bytes read and verified by the preparation.
        #[serde(rename = "bytesPrepared", default)]
        pub bytes_prepared: u64,
        #[serde(
            rename = "failureReason",
            skip_serializing_if = "Option::is_none",
            default
        )]
        pub failure_reason: Option<String>,
        #[serde(rename = "jobId")]
        pub job_id: String,
        /// The members of an automated restore, in name order (none for HTTP delivery).
        pub results: Vec<MemberStatus>,
        /// The job's `statusName`: `IN_PROGRESS`, `FINISHED`, `BROKEN` or `KILLED`.
        #[serde(rename = "statusName")]
        pub status_name: String,
    }

    /// Answer to a report: the job's `statusName`, so an agent learns of a cancel at once.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReportAck {
        #[serde(rename = "statusName")]
        pub status_name: String,
    }
}

/// A stretch of oplog stored completely: every entry from `first` to `last` is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OplogRange {
    pub first: BsonTimestamp,
    pub last: BsonTimestamp,
}

/// A gap in a replica set's stored oplog: entries strictly between `start` (the last stored
/// entry before it) and `end` (the first stored entry after it) may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OplogGap {
    pub end: BsonTimestamp,
    pub start: BsonTimestamp,
}

/// One replica set's stored oplog (`GET /api/rewind/v1/groups/{G}/clusters/{C}/oplog[/{rs}]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OplogStatus {
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    /// Bytes of the stored entries, uncompressed.
    #[serde(rename = "dataSizeBytes")]
    pub data_size_bytes: u64,
    #[serde(rename = "entryCount")]
    pub entry_count: u64,
    #[serde(
        rename = "firstTimestamp",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub first_timestamp: Option<BsonTimestamp>,
    pub gaps: Vec<OplogGap>,
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(
        rename = "lastTimestamp",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_timestamp: Option<BsonTimestamp>,
    #[serde(default)]
    pub links: Vec<Link>,
    pub ranges: Vec<OplogRange>,
    #[serde(rename = "replicaSetName")]
    pub replica_set_name: String,
    #[serde(rename = "sliceCount")]
    pub slice_count: u64,
    /// Bytes of the stored slice objects (compressed).
    #[serde(rename = "storageSizeBytes")]
    pub storage_size_bytes: u64,
}

/// Answer to an oplog push (`POST /api/rewind/v1/groups/{G}/clusters/{C}/oplog/{rs}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OplogPushSummary {
    #[serde(rename = "bytesReceived")]
    pub bytes_received: u64,
    /// Bytes of the entries newly stored, uncompressed.
    #[serde(rename = "bytesStored")]
    pub bytes_stored: u64,
    /// The replica set's stored oplog after the push.
    pub coverage: OplogStatus,
    /// Entries identical to stored ones (a re-push), not stored again.
    #[serde(rename = "entriesAlreadyStored")]
    pub entries_already_stored: u64,
    #[serde(rename = "entriesReceived")]
    pub entries_received: u64,
    #[serde(rename = "entriesStored")]
    pub entries_stored: u64,
    /// The push joined no stored range: a gap is recorded before it.
    #[serde(rename = "gapOpened")]
    pub gap_opened: bool,
    #[serde(rename = "slicesWritten")]
    pub slices_written: u64,
}

/// A project's backup settings (`GET/PATCH /api/rewind/v1/groups/{G}/backupSettings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSettings {
    /// Minutes between two checkpoints of a sharded cluster with FCV 4.0 or earlier: 15,
    /// 30 or 60, counted from the epoch.
    #[serde(rename = "checkpointIntervalMinutes")]
    pub checkpoint_interval_minutes: u32,
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    /// Hours back from now within which point-in-time restores are possible; the oplog
    /// needed for them is kept.
    #[serde(rename = "pointInTimeWindowHours")]
    pub point_in_time_window_hours: u32,
}

/// A cluster's snapshot schedule (`GET/PATCH /groups/{G}/backupConfigs/{C}/snapshotSchedule`)
/// with the Go client's `SnapshotSchedule` fields; unset ones are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSchedule {
    /// Sharded clusters only.
    #[serde(
        rename = "clusterCheckpointIntervalMin",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub cluster_checkpoint_interval_min: Option<u32>,
    #[serde(rename = "clusterId")]
    pub cluster_id: String,
    #[serde(
        rename = "dailySnapshotRetentionDays",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub daily_snapshot_retention_days: Option<u32>,
    #[serde(rename = "groupId")]
    pub group_id: String,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(
        rename = "monthlySnapshotRetentionMonths",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub monthly_snapshot_retention_months: Option<u32>,
    #[serde(rename = "pointInTimeWindowHours")]
    pub point_in_time_window_hours: u32,
    #[serde(
        rename = "referenceHourOfDay",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub reference_hour_of_day: Option<u32>,
    #[serde(
        rename = "referenceMinuteOfHour",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub reference_minute_of_hour: Option<u32>,
    #[serde(
        rename = "referenceTimeZoneOffset",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub reference_time_zone_offset: Option<String>,
    #[serde(
        rename = "snapshotIntervalHours",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub snapshot_interval_hours: Option<u32>,
    #[serde(
        rename = "snapshotRetentionDays",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub snapshot_retention_days: Option<u32>,
    #[serde(
        rename = "weeklySnapshotRetentionWeeks",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub weekly_snapshot_retention_weeks: Option<u32>,
}

/// What `rewind oplog push --json` prints: the sums over the push's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OplogPushReport {
    #[serde(rename = "bytesPushed")]
    pub bytes_pushed: u64,
    #[serde(rename = "bytesStored")]
    pub bytes_stored: u64,
    /// The replica set's stored oplog afterwards.
    pub coverage: OplogStatus,
    #[serde(rename = "entriesAlreadyStored")]
    pub entries_already_stored: u64,
    #[serde(rename = "entriesPushed")]
    pub entries_pushed: u64,
    #[serde(rename = "entriesStored")]
    pub entries_stored: u64,
    #[serde(rename = "gapOpened")]
    pub gap_opened: bool,
    pub requests: u64,
    #[serde(rename = "slicesWritten")]
    pub slices_written: u64,
}
