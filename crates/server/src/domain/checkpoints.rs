//! Checkpoints of sharded clusters with a feature compatibility version of 4.0 or earlier:
//! moments that every shard and the config server can be restored to together.
//!
//! Cloud Manager takes a checkpoint by stopping the balancer and writing a token into every
//! replica set's oplog. Rewind never talks to the cluster; it records a checkpoint at a
//! moment `t` once the oplog it stores proves every replica set can be cut there: each one's
//! stored oplog has a gap-free range that holds `t` and reaches past it. The moments are
//! epoch-aligned multiples of the project's checkpoint interval inside its point-in-time
//! window, so two server nodes pick the same ones, and the store's uniqueness on
//! (cluster, moment) makes recording them idempotent. Checkpoints that leave the window are
//! deleted (retention retires their oplog). Whether a checkpoint is restorable (a complete
//! snapshot before it with gap-free oplog up to it on every replica set) is decided when it
//! is read, since snapshots and oplog come and go after it was recorded.

use std::collections::BTreeSet;

use super::clusters::parse_fcv;
use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::model::{
    CheckpointPartRecord, CheckpointRecord, ClusterRecord, ClusterType, OplogTs, PageOf,
    PageRequest, SnapshotRecord, UnixSeconds,
};
use crate::oplog::coverage::ClusterCoverage;

/// Most checkpoints one pass records per cluster, newest first. Each reads up to one oplog
/// slice per replica set for its tokens, so a cluster whose whole window became coverable at
/// once (a first push of days of oplog) is caught up over a few passes, none of them long.
pub const CHECKPOINTS_PER_PASS: usize = 100;

/// A checkpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointView {
    pub record: CheckpointRecord,
    /// Whether a restore to it can be planned now.
    pub restorable: bool,
}

/// What one checkpoint pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointPass {
    pub recorded: u64,
    pub deleted: u64,
    /// Clusters whose pass failed (logged; retried by the next pass).
    pub failed: u64,
}

/// Whether Rewind keeps checkpoints of `cluster`: a top-level sharded cluster whose FCV is
/// 4.0 or earlier (later ones restore to any point in time instead).
pub fn takes_checkpoints(cluster: &ClusterRecord) -> bool {
    cluster.type_name == ClusterType::ShardedReplicaSet
        && cluster.parent_id.is_none()
        && parse_fcv(&cluster.fcv).is_some_and(|fcv| fcv < (4, 2))
}

/// The oplog position a checkpoint at second `t` cuts every replica set at: all of `t`.
pub fn cut_of(t: u32) -> OplogTs {
    OplogTs::end_of_second(t)
}

/// The seconds in `[from, to]` that are multiples of `interval_secs`, ascending.
pub fn boundaries(from: i64, to: i64, interval_secs: u32) -> Vec<u32> {
    let step = i64::from(interval_secs.max(1));
    let first = from.max(0).div_euclid(step) * step;
    let first = if first < from.max(0) {
        first + step
    } else {
        first
    };
    let last = to.min(i64::from(u32::MAX));
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= last)
        .filter_map(|t| u32::try_from(t).ok())
        .collect()
}

/// Whether every replica set's stored oplog has one range that holds all of second `t` and
/// reaches past it, so each can be cut at `t` knowing nothing before is missing.
pub fn reaches_past(coverage: &ClusterCoverage, t: u32) -> bool {
    coverage.spans(cut_of(t), cut_of(t))
}

/// The checkpoint moments to record now: boundaries of the interval within
/// `[window_start, now]` that the stored oplog reaches past and that are not `recorded` yet.
pub fn due_checkpoints(
    coverage: &ClusterCoverage,
    window_start: UnixSeconds,
    now: UnixSeconds,
    interval_secs: u32,
    recorded: &BTreeSet<u32>,
) -> Vec<u32> {
    boundaries(window_start, now, interval_secs)
        .into_iter()
        .filter(|t| !recorded.contains(t) && reaches_past(coverage, *t))
        .collect()
}

/// Whether a restore to second `t` can be planned: some complete snapshot taken at or before
/// it (`snapshots`, newest first) from which every replica set's oplog reaches `t` without a
/// gap — the check `Services::plan_oplog_cut` makes, over data loaded once.
pub fn is_restorable(coverage: &ClusterCoverage, snapshots: &[SnapshotRecord], t: u32) -> bool {
    coverage.base_snapshot(snapshots, cut_of(t)).is_some()
}

fn checkpoint_not_found(id: CheckpointId, cluster: ClusterId) -> DomainError {
    DomainError::rejected(
        ErrorCode::CheckpointNotFound,
        format!("No checkpoint with ID {id} exists for cluster {cluster}."),
        vec![id.to_hex()],
    )
}

impl Services {
    /// A cluster's checkpoints, newest first. Empty for clusters that take none (replica
    /// sets, shards, sharded clusters with FCV 4.2 or later).
    pub async fn list_checkpoints(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> DomainResult<PageOf<CheckpointView>> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let source = self.find_cluster(group, cluster).await?;
        let found = self.meta.list_checkpoints(group, cluster, page).await?;
        Ok(PageOf {
            items: self.with_restorability(&source, found.items).await?,
            total: found.total,
        })
    }

    /// One checkpoint of a cluster; `CHECKPOINT_NOT_FOUND` when it has no such checkpoint.
    pub async fn get_checkpoint(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: CheckpointId,
    ) -> DomainResult<CheckpointView> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let source = self.find_cluster(group, cluster).await?;
        let record = self
            .meta
            .get_checkpoint(group, cluster, id)
            .await?
            .ok_or_else(|| checkpoint_not_found(id, cluster))?;
        let mut views = self.with_restorability(&source, vec![record]).await?;
        views
            .pop()
            .ok_or_else(|| DomainError::Internal("a checkpoint vanished".into()))
    }

    /// Where a restore of `source` to checkpoint `id` cuts every replica set's oplog: the
    /// end of the checkpoint's second. `CHECKPOINT_NOT_FOUND` (parameter: the id) when the
    /// cluster has no such checkpoint. Says nothing of whether the cut can be planned:
    /// [`Services::plan_oplog_cut`] decides that.
    pub async fn checkpoint_cut(
        &self,
        source: &ClusterRecord,
        id: CheckpointId,
    ) -> DomainResult<OplogTs> {
        match self
            .meta
            .get_checkpoint(source.group_id, source.id, id)
            .await?
        {
            Some(found) => Ok(cut_of(found.timestamp)),
            None => Err(checkpoint_not_found(id, source.id)),
        }
    }

    /// Decides `restorable` for checkpoints of `source`, loading its coverage and snapshots
    /// once for all of them.
    async fn with_restorability(
        &self,
        source: &ClusterRecord,
        records: Vec<CheckpointRecord>,
    ) -> DomainResult<Vec<CheckpointView>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let coverage = self.cluster_coverage(source).await?;
        let snapshots = self
            .complete_snapshots_at_or_before(source.group_id, source.id, OplogTs::MAX)
            .await?;
        Ok(records
            .into_iter()
            .map(|record| CheckpointView {
                restorable: is_restorable(&coverage, &snapshots, record.timestamp),
                record,
            })
            .collect())
    }

    /// One checkpoint pass over every cluster with stored oplog or checkpoints: records the
    /// checkpoints that became due and deletes those that left the window. A cluster whose
    /// pass fails is logged and skipped; the next pass tries it again.
    pub async fn record_checkpoints(&self, now: UnixSeconds) -> DomainResult<CheckpointPass> {
        let mut candidates: BTreeSet<(GroupId, ClusterId)> = self
            .meta
            .oplog_streams()
            .await?
            .into_iter()
            .map(|(group, stream)| (group, stream.cluster))
            .collect();
        candidates.extend(self.meta.checkpointed_clusters().await?);
        let mut pass = CheckpointPass::default();
        for (group, cluster) in candidates {
            match self.record_cluster_checkpoints(group, cluster, now).await {
                Ok((recorded, deleted)) => {
                    pass.recorded += recorded;
                    pass.deleted += deleted;
                }
                Err(err) => {
                    tracing::error!(cluster.id = %cluster, error = %err, "checkpoint pass failed for a cluster");
                    pass.failed += 1;
                }
            }
        }
        Ok(pass)
    }

    /// The pass for one cluster: `(recorded, deleted)`. Reads only metadata unless a
    /// checkpoint is due (then one slice per replica set at most, for its token).
    async fn record_cluster_checkpoints(
        &self,
        group: GroupId,
        cluster: ClusterId,
        now: UnixSeconds,
    ) -> DomainResult<(u64, u64)> {
        let clusters = self.cached_clusters(group).await?;
        let Some(source) = clusters.iter().find(|c| c.id == cluster) else {
            return Ok((0, 0));
        };
        if !takes_checkpoints(source) {
            return Ok((0, 0));
        }
        let settings = self.settings_of(group).await?;
        let start = settings.window_start(now);
        let start_secs = u32::try_from(start).unwrap_or(u32::MAX);
        let mut recorded: BTreeSet<u32> = self
            .meta
            .checkpoint_timestamps(cluster)
            .await?
            .into_iter()
            .collect();
        let deleted = if recorded.first().is_some_and(|t| *t < start_secs) {
            recorded = recorded.split_off(&start_secs);
            self.meta
                .delete_checkpoints_before(cluster, start_secs)
                .await?
        } else {
            0
        };
        let interval_secs = settings.checkpoint_interval_secs();
        let coverage = self.cluster_coverage(source).await?;
        let due = due_checkpoints(&coverage, start, now, interval_secs, &recorded);
        let mut added = 0;
        for t in due.into_iter().rev().take(CHECKPOINTS_PER_PASS) {
            if self.record_checkpoint(source, &coverage, t, now).await? {
                added += 1;
            }
        }
        Ok((added, deleted))
    }

    /// Records the checkpoint of `source` at second `t` (which its coverage reaches past);
    /// `false` when it was recorded already, by this node or another.
    async fn record_checkpoint(
        &self,
        source: &ClusterRecord,
        coverage: &ClusterCoverage,
        t: u32,
        now: UnixSeconds,
    ) -> DomainResult<bool> {
        let members = self.members_of(source.group_id, source.id).await?;
        let mut parts = Vec::with_capacity(coverage.streams.len());
        for (stream, _) in &coverage.streams {
            let member = members
                .iter()
                .find(|m| m.replica_set_name.as_deref() == Some(stream.replica_set.as_str()));
            let token = self
                .last_stored_entry_at_or_before(stream, cut_of(t))
                .await?;
            let (Some(member), Some(token)) = (member, token) else {
                // Retention or a re-cut moved the oplog since the coverage was read; a
                // later pass decides again.
                return Ok(false);
            };
            parts.push(CheckpointPartRecord {
                replica_set_name: stream.replica_set.clone(),
                shard_name: member.shard_name.clone(),
                type_name: member.type_name,
                token,
            });
        }
        let record = CheckpointRecord {
            id: CheckpointId::generate(),
            group_id: source.group_id,
            cluster_id: source.id,
            timestamp: t,
            recorded: now,
            parts,
        };
        let inserted = self.meta.insert_checkpoint(&record).await?;
        if inserted {
            tracing::info!(
                cluster.id = %source.id,
                checkpoint.id = %record.id,
                checkpoint.timestamp_secs = t,
                "checkpoint recorded"
            );
        }
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use rewind_formats::oplog::entry::test_entries::run;

    use super::*;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::{complete_snapshot_at, TestProject, NOW};
    use crate::model::OplogRange;
    use crate::oplog::coverage::test_data::coverage_of;

    fn ts(secs: u32, inc: u32) -> OplogTs {
        OplogTs { secs, inc }
    }

    fn range(first: OplogTs, last: OplogTs) -> OplogRange {
        OplogRange { first, last }
    }

    #[test]
    fn boundaries_are_epoch_aligned_multiples_inside_the_window() {
        assert_eq!(boundaries(0, 2_000, 900), vec![0, 900, 1_800]);
        assert_eq!(boundaries(901, 2_700, 900), vec![1_800, 2_700]);
        assert_eq!(boundaries(900, 899 + 900, 900), vec![900]);
        assert_eq!(boundaries(1_000, 1_700, 900), Vec::<u32>::new());
        assert_eq!(boundaries(-5_000, 100, 3_600), vec![0]);
        let day = boundaries(1_700_000_123 - 86_400, 1_700_000_123, 900);
        assert_eq!(day.len(), 96);
        assert!(day.iter().all(|t| t % 900 == 0));
    }

    #[test]
    fn a_boundary_is_due_once_every_replica_set_reaches_past_it() {
        let t = 1_800;
        let reaching = range(ts(1_000, 1), ts(1_801, 1));
        let ending_at_t = range(ts(1_000, 1), ts(t, 5));
        let starting_after = range(ts(1_801, 1), ts(2_000, 1));
        assert!(reaches_past(&coverage_of(&[&[reaching], &[reaching]]), t));
        assert!(
            !reaches_past(&coverage_of(&[&[reaching], &[ending_at_t]]), t),
            "an entry later in the same second may still come"
        );
        assert!(
            !reaches_past(&coverage_of(&[&[reaching], &[starting_after]]), t),
            "nothing proves the entries before it are all stored"
        );
        assert!(!reaches_past(&coverage_of(&[&[reaching], &[]]), t));
        assert!(!reaches_past(&coverage_of(&[]), t));

        let both = coverage_of(&[&[range(ts(850, 1), ts(2_000, 1))], &[reaching]]);
        let none = BTreeSet::new();
        assert_eq!(due_checkpoints(&both, 0, 2_700, 900, &none), vec![1_800]);
        assert_eq!(
            due_checkpoints(&both, 0, 2_700, 900, &BTreeSet::from([1_800])),
            Vec::<u32>::new(),
            "a recorded checkpoint is not due again"
        );
        assert_eq!(
            due_checkpoints(&both, 1_801, 2_700, 900, &none),
            Vec::<u32>::new(),
            "outside the window"
        );
        let long = coverage_of(&[&[range(ts(0, 1), ts(4_000, 1))]]);
        assert_eq!(
            due_checkpoints(&long, 0, 4_000, 1_800, &none),
            vec![0, 1_800, 3_600]
        );
    }

    #[test]
    fn a_checkpoint_is_restorable_from_a_snapshot_with_gap_free_oplog_up_to_it() {
        let t = 1_800;
        let whole = coverage_of(&[&[range(ts(900, 1), ts(1_900, 1))]]);
        let gapped = coverage_of(&[&[
            range(ts(900, 1), ts(1_000, 1)),
            range(ts(1_500, 1), ts(1_900, 1)),
        ]]);
        let before = [complete_snapshot_at(ts(950, 1))];
        assert!(is_restorable(&whole, &before, t));
        assert!(
            !is_restorable(&gapped, &before, t),
            "a gap after the snapshot"
        );
        let later = [
            complete_snapshot_at(ts(1_600, 1)),
            complete_snapshot_at(ts(950, 1)),
        ];
        assert!(
            is_restorable(&gapped, &later, t),
            "a snapshot after the gap"
        );
        assert!(
            !is_restorable(&whole, &[complete_snapshot_at(ts(1_850, 1))], t),
            "a snapshot after the checkpoint"
        );
        assert!(!is_restorable(&whole, &[], t));
    }

    #[test]
    fn only_top_level_sharded_clusters_before_fcv_4_2_take_checkpoints() {
        let cluster = |type_name, fcv: &str, parent| ClusterRecord {
            id: ClusterId::generate(),
            group_id: GroupId::generate(),
            cluster_name: "c".into(),
            type_name,
            replica_set_name: None,
            shard_name: None,
            parent_id: parent,
            fcv: fcv.into(),
            last_heartbeat: None,
            created: 0,
        };
        let sharded = ClusterType::ShardedReplicaSet;
        assert!(takes_checkpoints(&cluster(sharded, "4.0", None)));
        assert!(takes_checkpoints(&cluster(sharded, "3.6", None)));
        assert!(!takes_checkpoints(&cluster(sharded, "4.2", None)));
        assert!(!takes_checkpoints(&cluster(sharded, "bad", None)));
        assert!(!takes_checkpoints(&cluster(
            ClusterType::ReplicaSet,
            "4.0",
            None
        )));
        let parent = Some(ClusterId::generate());
        assert!(!takes_checkpoints(&cluster(
            ClusterType::ReplicaSet,
            "4.0",
            parent
        )));
    }

    /// Pushes `body` for replica set `replica_set` of the project's cluster.
    async fn push(p: &TestProject, replica_set: &str, body: Vec<u8>) {
        p.services
            .push_oplog(
                &p.principal,
                p.group,
                p.cluster,
                replica_set,
                None,
                body.into(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_pass_records_each_due_checkpoint_once_and_deletes_those_that_left_the_window() {
        let spec = ClusterSpec {
            name: "sh".into(),
            shards: Some(1),
            fcv: Some("4.0".into()),
        };
        let p = TestProject::start(spec).await;
        let now = NOW as u32;
        let t = (now - 600) / 900 * 900;
        push(
            &p,
            "sh-shard-0",
            [run(t - 100, 2, "a"), run(t, 3, "a"), run(t + 5, 1, "a")].concat(),
        )
        .await;
        push(
            &p,
            "sh-config-0",
            [run(t - 100, 1, "c"), run(t - 1, 4, "c")].concat(),
        )
        .await;
        let services = &p.services;
        assert_eq!(
            services.record_checkpoints(NOW).await.unwrap(),
            CheckpointPass::default()
        );

        push(
            &p,
            "sh-config-0",
            [run(t - 1, 4, "c"), run(t + 1, 1, "c")].concat(),
        )
        .await;
        let recorded = CheckpointPass {
            recorded: 1,
            ..CheckpointPass::default()
        };
        assert_eq!(services.record_checkpoints(NOW).await.unwrap(), recorded);
        assert_eq!(
            p.second_node().record_checkpoints(NOW).await.unwrap(),
            CheckpointPass::default(),
            "another node records the same checkpoint only once"
        );
        let all = PageRequest {
            offset: 0,
            limit: 10,
        };
        let listed = services
            .list_checkpoints(&p.principal, p.group, p.cluster, all)
            .await
            .unwrap();
        assert_eq!(listed.total, 1);
        let view = &listed.items[0];
        assert!(!view.restorable, "no snapshot to start from");
        assert_eq!(view.record.timestamp, t);
        assert_eq!(view.record.recorded, NOW);
        let tokens: Vec<(&str, Option<&str>, ClusterType, OplogTs)> = view
            .record
            .parts
            .iter()
            .map(|p| {
                (
                    p.replica_set_name.as_str(),
                    p.shard_name.as_deref(),
                    p.type_name,
                    p.token,
                )
            })
            .collect();
        assert_eq!(
            tokens,
            [
                (
                    "sh-shard-0",
                    Some("sh-shard-0"),
                    ClusterType::ReplicaSet,
                    ts(t, 3)
                ),
                (
                    "sh-config-0",
                    None,
                    ClusterType::ConfigServerReplicaSet,
                    ts(t - 1, 4)
                ),
            ]
        );
        let source = services.find_cluster(p.group, p.cluster).await.unwrap();
        assert_eq!(
            services
                .checkpoint_cut(&source, view.record.id)
                .await
                .unwrap(),
            OplogTs::end_of_second(t)
        );
        let unknown = CheckpointId::generate();
        assert_eq!(
            services
                .checkpoint_cut(&source, unknown)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::CheckpointNotFound
        );

        // An hour-long window that no longer holds `t`: the checkpoint goes.
        services
            .set_pit_window(&p.principal, p.group, 1)
            .await
            .unwrap();
        let later = i64::from(t) + 3_601;
        p.clock.set(later);
        let deleted = CheckpointPass {
            deleted: 1,
            ..CheckpointPass::default()
        };
        assert_eq!(services.record_checkpoints(later).await.unwrap(), deleted);
        assert_eq!(services.meta.checkpointed_clusters().await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_window_that_became_coverable_at_once_is_caught_up_over_a_few_passes() {
        let spec = ClusterSpec {
            name: "sh".into(),
            shards: Some(1),
            fcv: Some("4.0".into()),
        };
        let p = TestProject::start(spec).await;
        p.services
            .set_pit_window(&p.principal, p.group, 48)
            .await
            .unwrap();
        let start = NOW as u32 - 48 * 3_600;
        let oplog: Vec<u8> = (0..=48 * 8)
            .flat_map(|i| run(start + i * 450, 1, "x"))
            .collect();
        push(&p, "sh-shard-0", oplog.clone()).await;
        push(&p, "sh-config-0", oplog).await;
        let due = boundaries(i64::from(start), NOW, 900).len() as u64;
        assert!(due > CHECKPOINTS_PER_PASS as u64, "{due}");
        let first = p.services.record_checkpoints(NOW).await.unwrap();
        assert_eq!(first.recorded, CHECKPOINTS_PER_PASS as u64);
        let newest = p
            .services
            .meta
            .checkpoint_timestamps(p.cluster)
            .await
            .unwrap();
        assert_eq!(
            newest.last().copied(),
            boundaries(0, NOW, 900).last().copied()
        );
        let second = p.services.record_checkpoints(NOW).await.unwrap();
        assert_eq!(first.recorded + second.recorded, due);
    }
}
