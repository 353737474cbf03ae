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
use super::super::{DomainError, DomainResult, ErrorCode, Services};
use super::archive::{OplogPiece, WholeSlice};
use crate::ids::{ClusterId, GroupId};
use crate::model::{
    ClusterRecord, ClusterType, OplogRange, OplogSliceRecord, OplogStream, OplogTs, PageRequest,
    SnapshotRecord,
};
use crate::oplog::coverage::{self, ClusterCoverage};
use crate::oplog::slice::{payload_len_of, slice_key, MERGE_SLICES_BELOW_BYTES};

/// A reachable restore: the snapshot it starts from and the target it is cut at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogCut {
    pub snapshot: SnapshotRecord,
    pub target: OplogTs,
}

/// The closed stretches of time a restore can reach, oldest first, merged where they
/// overlap: from each usable snapshot to how far the oplog reaches from it.
pub fn restorable_stretches(
    coverage: &ClusterCoverage,
    snapshots: &[SnapshotRecord],
) -> Vec<OplogRange> {
    let mut stretches: Vec<OplogRange> = snapshots
        .iter()
        .filter_map(|s| {
            coverage.reach(s.created).map(|last| OplogRange {
                first: s.created,
                last,
            })
        })
        .collect();
    stretches.sort_by_key(|r| r.first);
    let mut merged: Vec<OplogRange> = Vec::with_capacity(stretches.len());
    for stretch in stretches {
        match merged.last_mut() {
            Some(open) if stretch.first <= open.last => open.last = open.last.max(stretch.last),
            _ => merged.push(stretch),
        }
    }
    merged
}

/// The parts of `stretches` between the seconds `from` and `to` (both included).
pub fn clip_stretches(stretches: &[OplogRange], from: i64, to: i64) -> Vec<OplogRange> {
    let clamp = |secs: i64| u32::try_from(secs.max(0)).unwrap_or(u32::MAX);
    let (low, high) = (
        OplogTs {
            secs: clamp(from),
            inc: 0,
        },
        OplogTs::end_of_second(clamp(to)),
    );
    stretches
        .iter()
        .map(|r| OplogRange {
            first: r.first.max(low),
            last: r.last.min(high),
        })
        .filter(|r| r.first <= r.last)
        .collect()
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

    /// The complete, live snapshots of a cluster taken at or before `at`, newest first.
    pub async fn complete_snapshots_at_or_before(
        &self,
        group: GroupId,
        cluster: ClusterId,
        at: OplogTs,
    ) -> DomainResult<Vec<SnapshotRecord>> {
        const PAGE: u64 = 200;
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .meta
                .list_snapshots(
                    group,
                    cluster,
                    PageRequest {
                        offset,
                        limit: PAGE,
                    },
                )
                .await?;
            let full = page.items.len() as u64 == PAGE;
            found.extend(
                page.items
                    .into_iter()
                    .filter(|s| s.complete && s.deleted_at.is_none() && s.created <= at),
            );
            if !full {
                return Ok(found);
            }
            offset += PAGE;
        }
    }

    /// Plans a restore of `source` to `target` (inclusive), or refuses it with
    /// `NO_CHECKPOINT_FOR_PIT_RESTORE` and the stretches that are restorable. `field` names
    /// the request field the target came from.
    pub async fn plan_oplog_cut(
        &self,
        source: &ClusterRecord,
        target: OplogTs,
        field: &str,
    ) -> DomainResult<OplogCut> {
        let coverage = self.cluster_coverage(source).await?;
        let snapshots = self
            .complete_snapshots_at_or_before(source.group_id, source.id, target)
            .await?;
        if let Some(snapshot) = coverage.base_snapshot(&snapshots, target) {
            return Ok(OplogCut {
                snapshot: snapshot.clone(),
                target,
            });
        }
        let stretches = self.restorable_stretches_of(source, &coverage).await?;
        Err(DomainError::rejected(
            ErrorCode::NoCheckpointForPitRestore,
            format!(
                "A suitable checkpoint could not be found for the specified point-in-time restore: no complete \
                 snapshot plus gap-free stored oplog of every replica set reaches {}. {}",
                ts_text(target),
                describe_stretches(&stretches)
            ),
            vec![field.to_owned()],
        ))
    }

    /// What a restore of `source` can reach now, within the project's window, for error
    /// details.
    pub async fn restorable_stretches_of(
        &self,
        source: &ClusterRecord,
        coverage: &ClusterCoverage,
    ) -> DomainResult<Vec<OplogRange>> {
        let snapshots = self
            .complete_snapshots_at_or_before(source.group_id, source.id, OplogTs::MAX)
            .await?;
        let now = self.clock.now();
        let window_start = self.settings_of(source.group_id).await?.window_start(now);
        Ok(clip_stretches(
            &restorable_stretches(coverage, &snapshots),
            window_start,
            now,
        ))
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

    #[test]
    fn restorable_stretches_run_from_each_usable_snapshot_to_the_end_of_its_range() {
        let sets = coverage_of(&[&[range(100, 200), range(300, 400)]]);
        let snapshots = [
            complete_snapshot_at(ts(150, 1)),
            complete_snapshot_at(ts(120, 1)),
            complete_snapshot_at(ts(250, 1)), // in the gap: no oplog proves what followed
            complete_snapshot_at(ts(350, 1)),
            complete_snapshot_at(ts(50, 1)), // before any oplog
        ];
        let stretches = restorable_stretches(&sets, &snapshots);
        assert_eq!(
            stretches,
            vec![
                OplogRange {
                    first: ts(120, 1),
                    last: ts(200, 1)
                },
                OplogRange {
                    first: ts(350, 1),
                    last: ts(400, 1)
                },
            ]
        );
        let clipped = clip_stretches(&stretches, 180, 360);
        assert_eq!(clipped[0].first, ts(180, 0));
        assert_eq!(clipped[1].last, OplogTs::end_of_second(360));
        assert!(clip_stretches(&stretches, 201, 349).is_empty());
        assert!(describe_stretches(&stretches)
            .starts_with("Restorable: from 1970-01-01T00:02:00Z (120:1) to"));
        assert!(describe_stretches(&[]).starts_with("Nothing is restorable"));
    }
}
