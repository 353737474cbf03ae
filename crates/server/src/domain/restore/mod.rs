//! Restore jobs: creation with every rule of the contract, the job lifecycle, archive
//! preparation, and HTTP delivery with a download budget and an expiry.

pub mod archive;
pub mod download;
pub mod pit;
pub mod preparation;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::clusters::parse_fcv;
use super::snapshots::manifest::StoredManifest;
use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::blocks::{ChunkId, Placement};
use crate::ids::{BatchId, CheckpointId, ClusterId, GroupId, JobId, SnapshotId};
use crate::model::{
    ClusterRecord, ClusterType, DeliveryMethod, DeliveryStatus, JobStatus, OplogStream, OplogTs,
    PageOf, PageRequest, RestoreJobRecord, SnapshotRecord, UnixSeconds,
};
use archive::ArchivePlan;

/// `maxDownloads` when the request omits it: unlimited, as Cloud Manager answers (Java's
/// `Integer.MAX_VALUE`).
pub const UNLIMITED_DOWNLOADS: u32 = i32::MAX as u32;
/// Link lifetime when neither `expires` nor `expirationHours` is given.
pub const DEFAULT_EXPIRATION_HOURS: u32 = 48;
/// Longest `expirationHours` accepted (one year).
pub const MAX_EXPIRATION_HOURS: u32 = 24 * 366;
/// Archive plans kept in memory for downloads.
const PLAN_CACHE_ENTRIES: usize = 16;

/// What a restore request restores to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    Snapshot(SnapshotId),
    OplogTimestamp(OplogTs),
    PointInTime { millis: i64 },
    Checkpoint(CheckpointId),
}

/// What a request restores: a snapshot, and for a restore to a moment the oplog cut.
struct RestorePoint {
    snapshot: SnapshotRecord,
    cut: Option<pit::OplogCut>,
}

/// How the link of an HTTP delivery expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkExpiry {
    /// Hours after the job finishes.
    Hours(u32),
    /// An absolute time.
    At(UnixSeconds),
}

/// Where the target of an automated restore is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCluster {
    Id(ClusterId),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryRequest {
    Http {
        max_downloads: u32,
        expiry: LinkExpiry,
    },
    Automated {
        target_group: GroupId,
        target_cluster: TargetCluster,
    },
}

/// A parsed, syntactically valid create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    pub target: RestoreTarget,
    pub delivery: DeliveryRequest,
}

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::rejected(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

/// Point-in-time and oplog restores of a sharded cluster need FCV 4.2 or later (earlier
/// ones restore to checkpoints).
fn check_pit_topology(sharded: bool, fcv: (u32, u32), field: &str) -> DomainResult<()> {
    if sharded && fcv < (4, 2) {
        return Err(invalid(
            field,
            "Point-in-time and oplog restores of a sharded cluster need a feature compatibility version of 4.2 or later; use a checkpoint.",
        ));
    }
    Ok(())
}

fn job_not_found(id: JobId, cluster: ClusterId) -> DomainError {
    DomainError::rejected(
        ErrorCode::RestoreJobNotFound,
        format!("No restore job with ID {id} exists for cluster {cluster}."),
        vec![id.to_hex(), cluster.to_hex()],
    )
}

/// How the jobs of one cluster name themselves, as the Go client's fixtures show: every job
/// carries the cluster's name (`clusterName`), and its `clusterId` is the replica set its
/// archive holds (a sharded batch's jobs each name their shard or config server; a replica
/// set's job, the replica set itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobNaming {
    pub cluster_name: String,
    cluster: ClusterId,
    /// The cluster's replica sets by name, with their own cluster rows.
    parts: Vec<(String, ClusterId)>,
}

impl JobNaming {
    /// The cluster row of the replica set `job` restores (the cluster itself when it names
    /// no known part).
    pub fn part_of(&self, job: &RestoreJobRecord) -> ClusterId {
        self.parts
            .iter()
            .find(|(name, _)| *name == job.replica_set_name)
            .map_or(self.cluster, |(_, id)| *id)
    }
}

/// Caches archive plans by job, so repeated and ranged downloads do not re-read manifests.
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<HashMap<JobId, Arc<ArchivePlan>>>,
}

impl PlanCache {
    fn get(&self, id: JobId) -> Option<Arc<ArchivePlan>> {
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn put(&self, id: JobId, plan: Arc<ArchivePlan>) {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= PLAN_CACHE_ENTRIES {
            plans.clear();
        }
        plans.insert(id, plan);
    }
}

/// The file name of a job's archive, without `.tar.gz`, as Cloud Manager names them.
pub fn archive_file_name(
    job: JobId,
    cluster: &ClusterRecord,
    replica_set: &str,
    part_type: ClusterType,
    snapshot_secs: u32,
) -> String {
    match part_type {
        ClusterType::ConfigServerReplicaSet => format!(
            "config-{}-{replica_set}-{}-{snapshot_secs}-{job}",
            cluster.cluster_name, cluster.id
        ),
        _ => format!("{replica_set}-{snapshot_secs}-{job}"),
    }
}

impl Services {
    /// Creates the jobs of a restore request: one for a replica set, or one per shard plus
    /// one for the config server, sharing a `batchId`.
    pub async fn create_restore(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        request: RestoreRequest,
    ) -> DomainResult<Vec<RestoreJobRecord>> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let source = self.find_cluster(group, cluster).await?;
        if source.parent_id.is_some() {
            return Err(invalid(
                "clusterId",
                "A shard or config server cannot be restored alone: restore its sharded cluster.",
            ));
        }
        let method = match &request.delivery {
            DeliveryRequest::Http {
                max_downloads,
                expiry,
            } => DeliveryMethod::Http {
                max_downloads: *max_downloads,
                expiration_hours: match expiry {
                    LinkExpiry::Hours(h) => Some(*h),
                    LinkExpiry::At(_) => None,
                },
            },
            DeliveryRequest::Automated {
                target_group,
                target_cluster,
            } => {
                let target = self
                    .resolve_target(principal, *target_group, target_cluster, &source)
                    .await?;
                DeliveryMethod::Automated {
                    target_group: *target_group,
                    target_cluster: target.id,
                }
            }
        };
        let point = self.resolve_restore_point(&source, &request.target).await?;
        let snapshot = &point.snapshot;
        let expires = match request.delivery {
            DeliveryRequest::Http {
                expiry: LinkExpiry::At(at),
                ..
            } => Some(at),
            _ => None,
        };
        let now = self.clock.now();
        let batch = (source.type_name == ClusterType::ShardedReplicaSet).then(BatchId::generate);
        let mut jobs = Vec::with_capacity(snapshot.parts.len());
        for part in &snapshot.parts {
            let timestamp = match &point.cut {
                Some(cut) => {
                    let stream = OplogStream {
                        cluster,
                        replica_set: part.replica_set_name.clone(),
                    };
                    self.restored_point(cut, &stream).await?
                }
                None => snapshot.created,
            };
            let id = JobId::generate();
            jobs.push(RestoreJobRecord {
                id,
                batch_id: batch,
                group_id: group,
                cluster_id: cluster,
                snapshot_id: snapshot.id,
                replica_set_name: part.replica_set_name.clone(),
                part_type: part.type_name,
                created: now,
                status: JobStatus::InProgress,
                delivery_status: DeliveryStatus::NotStarted,
                method: method.clone(),
                expires,
                point_in_time: point.cut.is_some(),
                timestamp,
                file_name: archive_file_name(
                    id,
                    &source,
                    &part.replica_set_name,
                    part.type_name,
                    timestamp.secs,
                ),
                archive_bytes: None,
                archive_sha1: None,
                downloads_started: 0,
                downloads_completed: 0,
                resume_offset: None,
                resent_bytes: 0,
                finished_at: None,
                failure: None,
                attempts: 0,
            });
        }
        self.meta.insert_jobs(&jobs).await?;
        self.work_available.notify_waiters();
        tracing::info!(job.count = jobs.len(), snapshot.id = %snapshot.id, cluster.id = %cluster, "restore requested");
        Ok(jobs)
    }

    /// Finds the target cluster of an automated restore and checks it can take the data:
    /// same topology, and a feature compatibility version at least the source's.
    async fn resolve_target(
        &self,
        principal: &Principal,
        target_group: GroupId,
        target: &TargetCluster,
        source: &ClusterRecord,
    ) -> DomainResult<ClusterRecord> {
        if self.cached_group(target_group).await?.is_none() {
            return Err(DomainError::rejected(
                ErrorCode::GroupNotFound,
                format!("No group with ID {target_group} exists."),
                vec![target_group.to_hex()],
            ));
        }
        self.authorize_group(principal, target_group, GroupAccess::BackupAdmin)
            .await?;
        let cluster = match target {
            TargetCluster::Id(id) => self.find_cluster(target_group, *id).await?,
            TargetCluster::Name(name) => self.find_cluster_by_name(target_group, name).await?,
        };
        let field = "delivery.targetClusterId";
        if cluster.parent_id.is_some() {
            return Err(invalid(
                field,
                "The target must be a whole cluster, not a shard or config server.",
            ));
        }
        let source_members = self.members_of(source.group_id, source.id).await?;
        let target_members = self.members_of(target_group, cluster.id).await?;
        if cluster.type_name != source.type_name || source_members.len() != target_members.len() {
            return Err(invalid(
                field,
                format!(
                    "The target cluster's topology ({}, {} replica sets) differs from the source's ({}, {}).",
                    cluster.type_name.as_str(),
                    target_members.len(),
                    source.type_name.as_str(),
                    source_members.len()
                ),
            ));
        }
        if parse_fcv(&cluster.fcv) < parse_fcv(&source.fcv) {
            return Err(invalid(
                field,
                format!(
                    "The target cluster's feature compatibility version {} is lower than the source's {}.",
                    cluster.fcv, source.fcv
                ),
            ));
        }
        Ok(cluster)
    }

    async fn find_cluster_by_name(
        &self,
        group: GroupId,
        name: &str,
    ) -> DomainResult<ClusterRecord> {
        let all = self.cached_clusters(group).await?;
        all.iter()
            .find(|c| c.parent_id.is_none() && c.cluster_name == name)
            .cloned()
            .ok_or_else(|| {
                DomainError::rejected(
                    ErrorCode::ClusterNotFound,
                    format!("No cluster named {name} exists in group {group}."),
                    vec![name.to_owned(), group.to_hex()],
                )
            })
    }

    /// Resolves what to restore to a complete snapshot (and, for a restore to a moment, the
    /// oplog cut), or refuses with the contract's error.
    async fn resolve_restore_point(
        &self,
        source: &ClusterRecord,
        target: &RestoreTarget,
    ) -> DomainResult<RestorePoint> {
        let sharded = source.type_name == ClusterType::ShardedReplicaSet;
        let fcv = parse_fcv(&source.fcv).unwrap_or((0, 0));
        let cut = match target {
            RestoreTarget::Snapshot(id) => {
                return Ok(RestorePoint {
                    snapshot: self.restorable_snapshot(source, *id).await?,
                    cut: None,
                })
            }
            RestoreTarget::PointInTime { millis } => {
                let field = "pointInTimeUTCMillis";
                check_pit_topology(sharded, fcv, field)?;
                // A BSON timestamp counts whole seconds: every entry of that second is in.
                let secs = u32::try_from(millis.div_euclid(1000))
                    .map_err(|_| invalid(field, "out of range"))?;
                self.plan_point_in_time(source, OplogTs::end_of_second(secs), field)
                    .await?
            }
            RestoreTarget::OplogTimestamp(ts) => {
                let field = "oplogTs";
                check_pit_topology(sharded, fcv, field)?;
                self.plan_point_in_time(source, *ts, field).await?
            }
            RestoreTarget::Checkpoint(id) => {
                if !sharded || fcv >= (4, 2) {
                    return Err(invalid(
                        "checkpointId",
                        "Checkpoint restores are for sharded clusters with a feature compatibility version of 4.0 or earlier.",
                    ));
                }
                let cut_at = self.checkpoint_cut(source, *id).await?;
                self.plan_oplog_cut(source, cut_at, "checkpointId").await?
            }
        };
        Ok(RestorePoint {
            snapshot: cut.snapshot.clone(),
            cut: Some(cut),
        })
    }

    /// A snapshot named by the request, if a restore may read it.
    async fn restorable_snapshot(
        &self,
        source: &ClusterRecord,
        id: SnapshotId,
    ) -> DomainResult<SnapshotRecord> {
        let snapshot = self
            .meta
            .get_snapshot(source.group_id, source.id, id)
            .await?
            .ok_or_else(|| {
                DomainError::rejected(
                    ErrorCode::SnapshotNotFound,
                    format!("No snapshot with ID {id} exists for cluster {}.", source.id),
                    vec![id.to_hex()],
                )
            })?;
        if snapshot.deleted_at.is_some() {
            return Err(DomainError::rejected(
                ErrorCode::CannotStartRestoreJobForDeletedSnapshot,
                "Cannot start restore job for deleted snapshot.",
                vec![id.to_hex()],
            ));
        }
        if !snapshot.complete {
            return Err(DomainError::rejected(
                ErrorCode::CannotStartRestoreJobForIncompleteClusterSnapshot,
                "Cannot start restore job for incomplete cluster snapshot.",
                vec![id.to_hex()],
            ));
        }
        Ok(snapshot)
    }

    /// How the jobs of `cluster` (the cluster their restore was requested for) name
    /// themselves; for a caller already authorized to read them.
    pub async fn job_naming(&self, group: GroupId, cluster: ClusterId) -> DomainResult<JobNaming> {
        let members = self.members_of(group, cluster).await?;
        let cluster_name = members
            .first()
            .map(|c| c.cluster_name.clone())
            .unwrap_or_default();
        let parts = members
            .into_iter()
            .filter(|m| m.type_name != ClusterType::ShardedReplicaSet)
            .filter_map(|m| m.replica_set_name.map(|rs| (rs, m.id)))
            .collect();
        Ok(JobNaming {
            cluster_name,
            cluster,
            parts,
        })
    }

    pub async fn list_restores(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        batch: Option<BatchId>,
        page: PageRequest,
    ) -> DomainResult<PageOf<RestoreJobRecord>> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        self.find_cluster(group, cluster).await?;
        let mut jobs = self.meta.list_jobs(group, cluster, batch, page).await?;
        let now = self.clock.now();
        for job in &mut jobs.items {
            job.delivery_status = download::delivery_status_at(job, now);
        }
        Ok(jobs)
    }

    pub async fn get_restore(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> DomainResult<RestoreJobRecord> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        self.find_cluster(group, cluster).await?;
        let mut job = self
            .meta
            .get_job(group, cluster, id)
            .await?
            .ok_or_else(|| job_not_found(id, cluster))?;
        job.delivery_status = download::delivery_status_at(&job, self.clock.now());
        Ok(job)
    }

    /// The archive layout of a job, from the cache or built from its manifest.
    pub async fn archive_plan(&self, job: &RestoreJobRecord) -> DomainResult<Arc<ArchivePlan>> {
        if let Some(plan) = self.plans.get(job.id) {
            return Ok(plan);
        }
        let group = self
            .meta
            .get_group(job.group_id)
            .await?
            .ok_or_else(|| DomainError::Internal(format!("group of job {} is gone", job.id)))?;
        let snapshot = self
            .meta
            .get_snapshot(job.group_id, job.cluster_id, job.snapshot_id)
            .await?
            .ok_or_else(|| DomainError::Internal(format!("snapshot of job {} is gone", job.id)))?;
        let part = snapshot
            .parts
            .iter()
            .find(|p| p.replica_set_name == job.replica_set_name)
            .ok_or_else(|| DomainError::Internal(format!("part of job {} is gone", job.id)))?;
        let manifest = self.load_manifest(snapshot.id, part).await?;
        let placements = self.chunk_placements(&manifest).await?;
        let oplog = if job.point_in_time {
            let stream = OplogStream {
                cluster: job.cluster_id,
                replica_set: job.replica_set_name.clone(),
            };
            Some(
                self.oplog_pieces(&stream, snapshot.created, job.timestamp)
                    .await?,
            )
        } else {
            None
        };
        let info = restore_info(&group.name, job, &snapshot);
        let plan = Arc::new(ArchivePlan::build(
            &manifest,
            &placements,
            oplog.as_deref(),
            &info,
            i64::from(snapshot.created.secs),
        )?);
        self.plans.put(job.id, plan.clone());
        Ok(plan)
    }

    /// Where the index places each chunk of `manifest`.
    async fn chunk_placements(
        &self,
        manifest: &StoredManifest,
    ) -> DomainResult<HashMap<ChunkId, Placement>> {
        let ids: BTreeSet<ChunkId> = manifest
            .files
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.0))
            .collect();
        let ids: Vec<ChunkId> = ids.into_iter().collect();
        Ok(self
            .meta
            .locate_chunks(&ids)
            .await?
            .iter()
            .map(|info| (info.id, info.placement))
            .collect())
    }

    /// Whether a restore still reads this snapshot, so its chunks must stay.
    pub async fn is_snapshot_in_use(&self, snapshot: &SnapshotRecord) -> DomainResult<bool> {
        Ok(self
            .meta
            .snapshot_has_active_jobs(snapshot.id, self.clock.now())
            .await?)
    }
}

fn ts_text(ts: OplogTs) -> String {
    format!(
        "{} (Timestamp({}, {}))",
        rewind_api_types::iso_seconds::format_iso(i64::from(ts.secs)),
        ts.secs,
        ts.inc
    )
}

/// The `restoreInfo.txt` of a job's archive. Deterministic: it depends only on the job.
pub fn restore_info(group_name: &str, job: &RestoreJobRecord, snapshot: &SnapshotRecord) -> String {
    // Once oplog.bson is replayed, its last entry is the last applied.
    let last = if job.point_in_time {
        job.timestamp
    } else {
        snapshot.last_oplog_applied.unwrap_or(snapshot.created)
    };
    format!(
        "Restore Info\n\
         Group Name: {group_name}\n\
         Group Id: {}\n\
         Replica Set: {}\n\
         Cluster Id: {}\n\
         Snapshot Id: {}\n\
         Snapshot timestamp: {}\n\
         Restore timestamp: {}\n\
         Last Oplog Applied: {}\n\
         MongoDB Version: {}\n\
         Storage Engine: {}\n\
         Encryption: false\n\
         Restore Job Id: {}\n",
        job.group_id,
        job.replica_set_name,
        job.cluster_id,
        snapshot.id,
        ts_text(snapshot.created),
        ts_text(job.timestamp),
        ts_text(last),
        snapshot.mongod_version,
        snapshot.storage_engine,
        job.id,
    )
}
