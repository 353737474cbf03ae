//! Restores to a moment between snapshots (a point in time, an oplog timestamp, a
//! checkpoint): which snapshot such a restore starts from, and where each replica set's
//! oplog is cut.
//!
//! A restore to `target` needs a complete, live snapshot taken at or before `target` and,
//! for every replica set of the cluster, one stored range of oplog that holds both the
//! snapshot's timestamp and `target`: only then is every entry in between known to be
//! stored. The newest such snapshot is used (the least oplog to replay). A sharded cluster's
//! shards and config server are all cut at the same `target`.

use bytes::Bytes;

use super::super::block_error;
use super::super::clusters::parse_fcv;
use super::super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use super::archive::{OplogPiece, WholeSlice};
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::model::{
    ClusterRecord, ClusterType, OplogRange, OplogSliceRecord, OplogStream, OplogTs, SnapshotRecord,
};
use crate::oplog::coverage::{self, ClusterCoverage};
use crate::oplog::slice::{payload_len_of, slice_key, MERGE_SLICES_BELOW_BYTES};

/// A reachable restore: the snapshot it starts from and the target it is cut at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogCut {
    pub snapshot: SnapshotRecord,
    pub target: OplogTs,
}

/// Why a restore to a moment is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitRefusal {
    /// The moment lies after now.
    InFuture,
    /// The moment lies before the project's point-in-time window.
    BeforeWindow,
    /// No complete snapshot plus gap-free stored oplog of every replica set reaches it.
    NotReached,
}

/// What the rule for restores to a moment reads, gathered once: it decides every such
/// restore ([`PitRule::base_for`]) and lists what is restorable ([`PitRule::ranges`]), so
/// the two can never disagree.
#[derive(Debug, Clone)]
pub struct PitRule {
    pub coverage: ClusterCoverage,
    /// The cluster's complete, live snapshots, newest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// The oldest second a restore may target (the start of the point-in-time window).
    pub window_start: i64,
    pub window_hours: u32,
    pub now: i64,
}

/// A stretch of moments a restore can reach from one snapshot, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestorableRange {
    pub start: OplogTs,
    pub end: OplogTs,
    /// The snapshot a restore to any moment of the stretch starts from.
    pub snapshot: SnapshotId,
}

/// The timestamp right after `ts`, if any.
fn successor(ts: OplogTs) -> Option<OplogTs> {
    match (ts.inc.checked_add(1), ts.secs.checked_add(1)) {
        (Some(inc), _) => Some(OplogTs { secs: ts.secs, inc }),
        (None, Some(secs)) => Some(OplogTs { secs, inc: 0 }),
        (None, None) => None,
    }
}

/// The timestamp right before `ts` (which must not be the first).
fn predecessor(ts: OplogTs) -> OplogTs {
    match (ts.inc.checked_sub(1), ts.secs.checked_sub(1)) {
        (Some(inc), _) => OplogTs { secs: ts.secs, inc },
        (None, Some(secs)) => OplogTs::end_of_second(secs),
        (None, None) => ts,
    }
}

impl PitRule {
    /// The snapshot a restore to `target` (inclusive) starts from: the newest complete,
    /// live snapshot taken at or before it from which every replica set's stored oplog
    /// reaches it without a gap, provided `target` lies within the window and not after
    /// now. Otherwise why the restore is refused.
    pub fn base_for(&self, target: OplogTs) -> Result<&SnapshotRecord, PitRefusal> {
        let secs = i64::from(target.secs);
        if secs > self.now {
            return Err(PitRefusal::InFuture);
        }
        if secs < self.window_start {
            return Err(PitRefusal::BeforeWindow);
        }
        self.coverage
            .base_snapshot(&self.snapshots, target)
            .ok_or(PitRefusal::NotReached)
    }

    /// Every moment [`PitRule::base_for`] accepts, as maximal ranges ordered by `start`,
    /// each with the snapshot a restore to its moments starts from.
    ///
    /// The answer of `base_for` can only change where a snapshot's timestamp lies, right
    /// after the end of the oplog a snapshot reaches, and at the window's edges: between two
    /// such points every snapshot stays taken-before (or after) and reaching (or not), so
    /// `base_for` is asked once per stretch, at its first moment.
    pub fn ranges(&self) -> Vec<RestorableRange> {
        let clamp = |secs: i64| u32::try_from(secs.max(0)).unwrap_or(u32::MAX);
        let mut points = vec![
            OplogTs { secs: 0, inc: 0 },
            OplogTs {
                secs: clamp(self.window_start),
                inc: 0,
            },
        ];
        points.extend(successor(OplogTs::end_of_second(clamp(self.now))));
        for snapshot in &self.snapshots {
            points.push(snapshot.created);
            points.extend(self.coverage.reach(snapshot.created).and_then(successor));
        }
        points.sort();
        points.dedup();
        let mut ranges: Vec<RestorableRange> = Vec::new();
        for (i, start) in points.iter().enumerate() {
            let Ok(base) = self.base_for(*start) else {
                continue;
            };
            let end = points
                .get(i + 1)
                .map_or(OplogTs::MAX, |next| predecessor(*next));
            match ranges.last_mut() {
                Some(open) if open.snapshot == base.id && successor(open.end) == Some(*start) => {
                    open.end = end;
                }
                _ => ranges.push(RestorableRange {
                    start: *start,
                    end,
                    snapshot: base.id,
                }),
            }
        }
        ranges
    }

    /// The restorable stretches whatever snapshot they start from, merged where they touch,
    /// for error details.
    pub fn stretches(&self) -> Vec<OplogRange> {
        let mut merged: Vec<OplogRange> = Vec::new();
        for range in self.ranges() {
            match merged.last_mut() {
                Some(open) if successor(open.last) == Some(range.start) => open.last = range.end,
                _ => merged.push(OplogRange {
                    first: range.start,
                    last: range.end,
                }),
            }
        }
        merged
    }

    /// The refusal of a restore to `target` from the request field `field`: a moment out of
    /// the window or in the future is `INVALID_ATTRIBUTE`, one the oplog does not reach
    /// `NO_CHECKPOINT_FOR_PIT_RESTORE`; each says what is restorable.
    pub fn refusal(&self, why: PitRefusal, target: OplogTs, field: &str) -> DomainError {
        let restorable = describe_stretches(&self.stretches());
        let problem = match why {
            PitRefusal::InFuture => "the point in time is in the future".to_owned(),
            PitRefusal::BeforeWindow => format!(
                "the point in time is outside the restorable window of the last {} hours",
                self.window_hours
            ),
            PitRefusal::NotReached => {
                return DomainError::rejected(
                    ErrorCode::NoCheckpointForPitRestore,
                    format!(
                        "A suitable checkpoint could not be found for the specified point-in-time restore: no complete \
                         snapshot plus gap-free stored oplog of every replica set reaches {}. {restorable}",
                        ts_text(target),
                    ),
                    vec![field.to_owned()],
                )
            }
        };
        DomainError::rejected(
            ErrorCode::InvalidAttribute,
            format!("Invalid attribute {field} specified: {problem}. {restorable}"),
            vec![field.to_owned()],
        )
    }
}

/// `stretches` as a sentence for an error detail.
pub fn describe_stretches(stretches: &[OplogRange]) -> String {
    if stretches.is_empty() {
        return "Nothing is restorable to a point in time yet: no stored oplog reaches back to a \
                complete snapshot of every replica set."
            .into();
    }
    let listed: Vec<String> = stretches
        .iter()
        .map(|r| format!("from {} to {}", ts_text(r.first), ts_text(r.last)))
        .collect();
    format!("Restorable: {}.", listed.join("; "))
}

/// A timestamp as an error detail shows it: ISO time and the BSON timestamp.
pub fn ts_text(ts: OplogTs) -> String {
    format!(
        "{} ({}:{})",
        rewind_api_types::iso_seconds::format_iso(i64::from(ts.secs)),
        ts.secs,
        ts.inc
    )
}

impl Services {
    /// The replica sets whose oplog a cluster keeps (itself, or its shards and config
    /// server), with their stored ranges.
    pub async fn cluster_coverage(&self, source: &ClusterRecord) -> DomainResult<ClusterCoverage> {
        let mut streams = Vec::new();
        for member in self.members_of(source.group_id, source.id).await? {
            if member.type_name == ClusterType::ShardedReplicaSet {
                continue;
            }
            let Some(replica_set) = member.replica_set_name else {
                continue;
            };
            let stream = OplogStream {
                cluster: source.id,
                replica_set,
            };
            let ranges = self.meta.oplog_ranges(&stream).await?;
            streams.push((stream, ranges));
        }
        Ok(ClusterCoverage { streams })
    }

    /// The rule for restores of `source` to a moment, as of now.
    pub async fn pit_rule(&self, source: &ClusterRecord) -> DomainResult<PitRule> {
        let coverage = self.cluster_coverage(source).await?;
        let snapshots = self
            .complete_snapshots_at_or_before(source.group_id, source.id, OplogTs::MAX)
            .await?;
        let now = self.clock.now();
        let settings = self.settings_of(source.group_id).await?;
        Ok(PitRule {
            coverage,
            snapshots,
            window_start: settings.window_start(now),
            window_hours: settings.pit_window_hours,
            now,
        })
    }

    /// Plans a restore of `source` to the moment `target` (inclusive) by the rule of
    /// [`PitRule::base_for`], or refuses it. `field` names the request field the target
    /// came from.
    pub async fn plan_point_in_time(
        &self,
        source: &ClusterRecord,
        target: OplogTs,
        field: &str,
    ) -> DomainResult<OplogCut> {
        let rule = self.pit_rule(source).await?;
        match rule.base_for(target) {
            Ok(snapshot) => Ok(OplogCut {
                snapshot: snapshot.clone(),
                target,
            }),
            Err(why) => Err(rule.refusal(why, target, field)),
        }
    }

    /// Plans a restore of `source` to a checkpoint's cut (inclusive), which the window does
    /// not bound, or refuses it with `NO_CHECKPOINT_FOR_PIT_RESTORE` and the stretches that
    /// are restorable. `field` names the request field the target came from.
    pub async fn plan_oplog_cut(
        &self,
        source: &ClusterRecord,
        target: OplogTs,
        field: &str,
    ) -> DomainResult<OplogCut> {
        let rule = self.pit_rule(source).await?;
        match rule.coverage.base_snapshot(&rule.snapshots, target) {
            Some(snapshot) => Ok(OplogCut {
                snapshot: snapshot.clone(),
                target,
            }),
            None => Err(rule.refusal(PitRefusal::NotReached, target, field)),
        }
    }

    /// The point one job of a cut restores its replica set to: its newest stored entry at
    /// or before the target, or the snapshot itself when no entry follows the snapshot.
    pub async fn restored_point(
        &self,
        cut: &OplogCut,
        stream: &OplogStream,
    ) -> DomainResult<OplogTs> {
        let newest = self
            .last_stored_entry_at_or_before(stream, cut.target)
            .await?;
        Ok(newest.map_or(cut.snapshot.created, |ts| ts.max(cut.snapshot.created)))
    }
}

/// How a sharded cluster's restorable ranges describe it: its number of shards and its
/// config server (always a dedicated replica set in Rewind: `Dedicated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardedShape {
    pub shard_count: u32,
}

/// What `POST …/restoreJobs/restorableTimeRanges` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorableTimeRanges {
    pub ranges: Vec<RestorableRange>,
    /// Set for a sharded cluster.
    pub sharded: Option<ShardedShape>,
}

impl Services {
    /// The moments a point-in-time or oplog restore of a cluster can reach now, by the same
    /// rule that accepts or refuses such a restore. A shard or config server alone is
    /// refused (as restoring it would be); a sharded cluster with FCV 4.0 or earlier, which
    /// restores to checkpoints only, has none.
    pub async fn restorable_time_ranges(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
    ) -> DomainResult<RestorableTimeRanges> {
        self.authorize_group(principal, group, GroupAccess::PlanRestore)
            .await?;
        let source = self.find_cluster(group, cluster).await?;
        if source.parent_id.is_some() {
            return Err(DomainError::rejected(
                ErrorCode::InvalidAttribute,
                "A shard or config server cannot be restored alone: ask for its sharded cluster's ranges.",
                vec!["clusterId".into()],
            ));
        }
        let sharded = source.type_name == ClusterType::ShardedReplicaSet;
        let shape = if sharded {
            let members = self.members_of(group, cluster).await?;
            let shards = members
                .iter()
                .filter(|m| m.type_name == ClusterType::ReplicaSet)
                .count();
            Some(ShardedShape {
                shard_count: u32::try_from(shards).unwrap_or(u32::MAX),
            })
        } else {
            None
        };
        let ranges = if restores_to_moments(&source) {
            self.pit_rule(&source).await?.ranges()
        } else {
            Vec::new()
        };
        Ok(RestorableTimeRanges {
            ranges,
            sharded: shape,
        })
    }

    /// What a picture of a cluster's restorability shows, read once: the rule (its stored
    /// oplog, complete snapshots and window), the ranges it makes restorable (none when the
    /// key may not plan restores, as the ranges endpoint would refuse it), and the
    /// checkpoints.
    pub async fn restorability(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
    ) -> DomainResult<Restorability> {
        let project = self
            .authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let source = self.find_cluster(group, cluster).await?;
        let rule = self.pit_rule(&source).await?;
        let may_plan = principal.may(&project, GroupAccess::PlanRestore);
        let ranges = if may_plan && source.parent_id.is_none() && restores_to_moments(&source) {
            rule.ranges()
        } else {
            Vec::new()
        };
        let checkpoints = self.meta.checkpoint_timestamps(cluster).await?;
        Ok(Restorability {
            rule,
            ranges,
            may_plan,
            checkpoints,
        })
    }
}

/// Whether a cluster restores to any moment: all but sharded clusters with FCV 4.0 or
/// earlier, which restore to checkpoints only.
fn restores_to_moments(source: &ClusterRecord) -> bool {
    let fcv = parse_fcv(&source.fcv).unwrap_or((0, 0));
    source.type_name != ClusterType::ShardedReplicaSet || fcv >= (4, 2)
}

/// See [`Services::restorability`].
#[derive(Debug, Clone)]
pub struct Restorability {
    pub rule: PitRule,
    pub ranges: Vec<RestorableRange>,
    /// Whether the key may plan restores of the cluster (and so sees its ranges).
    pub may_plan: bool,
    /// The cluster's checkpoints' times, oldest first.
    pub checkpoints: Vec<u32>,
}

/// Whether an archive sends a slice as stored: wholly inside the cut `(after, upto]`, and
/// large enough that no later push re-cuts it (see [`MERGE_SLICES_BELOW_BYTES`]).
fn sent_whole(record: &OplogSliceRecord, after: OplogTs, upto: OplogTs) -> bool {
    after < record.first && record.last <= upto && record.raw_bytes >= MERGE_SLICES_BELOW_BYTES
}

impl Services {
    /// The `oplog.bson` of a restore of `stream` from a snapshot at `after` to `upto`: every
    /// stored entry in `(after, upto]`, in order. Refuses (the job then breaks) if the
    /// stored oplog no longer covers that stretch.
    pub async fn oplog_pieces(
        &self,
        stream: &OplogStream,
        after: OplogTs,
        upto: OplogTs,
    ) -> DomainResult<Vec<OplogPiece>> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let ranges = self.meta.oplog_ranges(stream).await?;
        if coverage::range_containing(&ranges, after).is_none_or(|r| upto > r.last) {
            return Err(DomainError::Internal(format!(
                "the oplog of {} from {after} to {upto} is no longer stored",
                stream.replica_set
            )));
        }
        let mut pieces = Vec::new();
        for record in self.meta.oplog_slices(stream, after, upto).await? {
            if sent_whole(&record, after, upto) {
                pieces.push(OplogPiece::Slice(self.whole_slice(stream, &record)?));
                continue;
            }
            let loaded = self.load_slices(stream, vec![record]).await?;
            for (_, entries) in loaded {
                let inside: Vec<_> = entries
                    .marks
                    .iter()
                    .filter(|m| after < m.ts && m.ts <= upto)
                    .collect();
                if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
                    let bytes = Bytes::copy_from_slice(&entries.plain[first.offset..last.end()]);
                    pieces.push(OplogPiece::Entries(bytes));
                }
            }
        }
        Ok(pieces)
    }

    fn whole_slice(
        &self,
        stream: &OplogStream,
        record: &OplogSliceRecord,
    ) -> DomainResult<WholeSlice> {
        let key = slice_key(stream, record.id);
        let path = key.path().map_err(block_error)?.to_string();
        let shape = |what: &str| {
            DomainError::Internal(format!(
                "oplog slice {} has an impossible {what}",
                record.id
            ))
        };
        Ok(WholeSlice {
            key,
            path,
            first: record.first,
            last: record.last,
            entry_count: u32::try_from(record.entry_count).map_err(|_| shape("entry count"))?,
            raw_len: u32::try_from(record.raw_bytes).map_err(|_| shape("length"))?,
            payload_len: payload_len_of(record.stored_bytes, record.entry_count)
                .ok_or_else(|| shape("object length"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::test_support::complete_snapshot_at;
    use crate::oplog::coverage::test_data::coverage_of;

    fn ts(secs: u32, inc: u32) -> OplogTs {
        OplogTs { secs, inc }
    }

    fn range(a: u32, b: u32) -> OplogRange {
        OplogRange {
            first: ts(a, 1),
            last: ts(b, 1),
        }
    }

    fn rule(
        per_set: &[&[OplogRange]],
        snapshots: Vec<SnapshotRecord>,
        window: (i64, i64),
    ) -> PitRule {
        let mut snapshots = snapshots;
        snapshots.sort_by_key(|s| std::cmp::Reverse(s.created));
        PitRule {
            coverage: coverage_of(per_set),
            snapshots,
            window_start: window.0,
            window_hours: 24,
            now: window.1,
        }
    }

    #[test]
    fn ranges_run_from_each_usable_snapshot_to_the_end_of_its_range_within_the_window() {
        let snapshots = vec![
            complete_snapshot_at(ts(150, 1)),
            complete_snapshot_at(ts(120, 1)),
            complete_snapshot_at(ts(250, 1)), // in the gap: no oplog proves what followed
            complete_snapshot_at(ts(350, 1)),
            complete_snapshot_at(ts(50, 1)), // before any oplog
        ];
        let ids: Vec<SnapshotId> = snapshots.iter().map(|s| s.id).collect();
        let rule = rule(&[&[range(100, 200), range(300, 400)]], snapshots, (0, 1000));
        let ranges = rule.ranges();
        assert_eq!(
            ranges,
            vec![
                RestorableRange {
                    start: ts(120, 1),
                    end: ts(150, 0),
                    snapshot: ids[1]
                },
                RestorableRange {
                    start: ts(150, 1),
                    end: ts(200, 1),
                    snapshot: ids[0]
                },
                RestorableRange {
                    start: ts(350, 1),
                    end: ts(400, 1),
                    snapshot: ids[3]
                },
            ]
        );
        assert_eq!(rule.stretches(), vec![range(120, 200), range(350, 400)]);
        let clipped = PitRule {
            window_start: 180,
            now: 360,
            ..rule.clone()
        };
        assert_eq!(clipped.stretches()[0].first, ts(180, 0));
        assert_eq!(clipped.stretches()[1].last, OplogTs::end_of_second(360));
        assert_eq!(
            clipped.base_for(ts(179, 9)).unwrap_err(),
            PitRefusal::BeforeWindow
        );
        assert_eq!(
            clipped.base_for(ts(361, 0)).unwrap_err(),
            PitRefusal::InFuture
        );
        assert_eq!(
            clipped.base_for(ts(250, 1)).unwrap_err(),
            PitRefusal::NotReached
        );
        assert!(PitRule {
            window_start: 201,
            now: 349,
            ..rule
        }
        .ranges()
        .is_empty());
        assert!(describe_stretches(&clipped.stretches())
            .starts_with("Restorable: from 1970-01-01T00:03:00Z (180:0) to"));
        assert!(describe_stretches(&[]).starts_with("Nothing is restorable"));
    }

    /// A moment at, or next to, one of `rule`'s interesting points, or anywhere.
    fn moment(rule: &PitRule, pick: usize, nudge: i8, anywhere: OplogTs) -> OplogTs {
        let mut points: Vec<OplogTs> = vec![anywhere];
        for s in &rule.snapshots {
            points.push(s.created);
        }
        for (_, ranges) in &rule.coverage.streams {
            for r in ranges {
                points.extend([r.first, r.last]);
            }
        }
        points.push(OplogTs {
            secs: rule.window_start as u32,
            inc: 0,
        });
        points.push(OplogTs::end_of_second(rule.now as u32));
        let at = points[pick % points.len()];
        match nudge {
            n if n < 0 => predecessor(at),
            0 => at,
            _ => successor(at).unwrap_or(at),
        }
    }

    fn small_ts() -> impl Strategy<Value = OplogTs> {
        (0u32..60, 0u32..4).prop_map(|(secs, inc)| OplogTs { secs, inc })
    }

    fn stretch() -> impl Strategy<Value = OplogRange> {
        (small_ts(), small_ts()).prop_map(|(a, b)| OplogRange {
            first: a.min(b),
            last: a.max(b),
        })
    }

    /// Disjoint, ordered ranges (stored oplog with gaps between them).
    fn ranges_with_gaps() -> impl Strategy<Value = Vec<OplogRange>> {
        proptest::collection::vec(stretch(), 0..4).prop_map(|mut found| {
            found.sort_by_key(|r| r.first);
            let mut kept: Vec<OplogRange> = Vec::new();
            for r in found {
                if kept.last().is_none_or(|last| last.last < r.first) {
                    kept.push(r);
                }
            }
            kept
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Over random snapshots, stored oplog stretches and gaps on up to three replica
        /// sets, and windows: every moment inside a returned range is accepted by the rule a
        /// restore is decided by, from the range's snapshot, and every moment outside is
        /// refused.
        #[test]
        fn every_moment_inside_a_range_is_accepted_and_every_moment_outside_refused(
            sets in proptest::collection::vec(ranges_with_gaps(), 1..4),
            taken in proptest::collection::vec(small_ts(), 0..5),
            window in (0i64..40, 0i64..70),
            probes in proptest::collection::vec((any::<usize>(), -1i8..2, small_ts()), 64),
        ) {
            let per_set: Vec<&[OplogRange]> = sets.iter().map(Vec::as_slice).collect();
            let snapshots = taken.iter().map(|t| complete_snapshot_at(*t)).collect();
            let rule = rule(&per_set, snapshots, window);
            let ranges = rule.ranges();
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].end < pair[1].start, "ordered and disjoint: {ranges:?}");
            }
            for (pick, nudge, anywhere) in probes {
                let at = moment(&rule, pick, nudge, anywhere);
                let inside = ranges.iter().find(|r| r.start <= at && at <= r.end);
                match (inside, rule.base_for(at)) {
                    (Some(range), Ok(base)) => prop_assert_eq!(range.snapshot, base.id, "{:?} in {:?}", at, range),
                    (None, Err(_)) => {}
                    (inside, decided) => prop_assert!(false, "{at:?}: in {inside:?}, decided {:?}", decided.map(|s| s.created)),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The bisecting `base_snapshot` picks what the plain definition picks: the first
        /// snapshot (newest first) taken at or before the target whose oplog spans to it.
        #[test]
        fn the_base_snapshot_is_the_newest_one_whose_oplog_spans_to_the_target(
            sets in proptest::collection::vec(ranges_with_gaps(), 0..4),
            taken in proptest::collection::vec(small_ts(), 0..6),
            targets in proptest::collection::vec(small_ts(), 32),
        ) {
            let per_set: Vec<&[OplogRange]> = sets.iter().map(Vec::as_slice).collect();
            let snapshots = taken.iter().map(|t| complete_snapshot_at(*t)).collect();
            let rule = rule(&per_set, snapshots, (0, 100));
            for target in targets {
                let plain = rule
                    .snapshots
                    .iter()
                    .find(|s| s.created <= target && rule.coverage.spans(s.created, target));
                let found = rule.coverage.base_snapshot(&rule.snapshots, target);
                prop_assert_eq!(found.map(|s| s.id), plain.map(|s| s.id), "at {:?}", target);
            }
        }
    }
}
