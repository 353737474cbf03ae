//! Accepting a push: checking it whole against what is stored, cutting the new entries into
//! slices (joining a small last slice), writing their objects and committing them with the
//! new ranges.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rewind_formats::oplog::split_entries_with;

use super::{blocking, parallelism, slice_path};
use crate::blocks::{BlockResult, ObjectKey};
use crate::domain::block_error;
use crate::domain::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::meta::oplog::OplogCommit;
use crate::model::{OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs};
use crate::oplog::coverage::{self, Disagreement};
use crate::oplog::slice::{slice_key, MERGE_SLICES_BELOW_BYTES};
use crate::oplog::{cut_runs, BatchError, EntryMark, OplogSlice, SliceEntries};

/// The largest push, which clients cut their requests by.
pub use rewind_formats::oplog::MAX_PUSH_BYTES;
/// Slice objects written concurrently by one push.
const OBJECT_WRITES_IN_FLIGHT: usize = 4;

/// What one push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub entries_received: u64,
    pub bytes_received: u64,
    /// Entries that were new and are now stored.
    pub entries_stored: u64,
    /// Bytes of those entries, uncompressed.
    pub bytes_stored: u64,
    /// Entries identical to ones already stored (a re-push), not stored again.
    pub entries_already_stored: u64,
    pub slices_written: u64,
    /// The push joined no stored range of a replica set that had some: a gap now lies
    /// before it.
    pub gap_opened: bool,
    /// The replica set's stored oplog afterwards.
    pub coverage: OplogStreamSummary,
}

/// One piece of the push to store as a slice: consecutive entries of `buffer`.
struct Piece {
    buffer: Bytes,
    marks: Vec<EntryMark>,
}

/// The decoded slices a push read, by id.
type Decoded = HashMap<OplogSliceId, (OplogSliceRecord, Arc<SliceEntries>)>;

fn ts_list(ts: OplogTs) -> Vec<String> {
    vec![ts.to_string()]
}

fn batch_refusal(err: BatchError) -> DomainError {
    match err {
        BatchError::Invalid {
            index,
            offset,
            error,
        } => DomainError::rejected(
            ErrorCode::InvalidOplogEntry,
            format!("Oplog entry {index} (at byte {offset} of the request body) is refused: {error}. Nothing was stored."),
            vec![error.field().to_owned()],
        ),
        BatchError::OutOfOrder {
            index,
            offset,
            ts,
            previous,
        } => DomainError::rejected(
            ErrorCode::OplogEntriesOutOfOrder,
            format!(
                "Oplog entry {index} (at byte {offset} of the request body) has ts {ts}, which does not follow the previous entry's {previous}: \
                 entries must come in strictly increasing ts order, without duplicates. Nothing was stored."
            ),
            ts_list(ts),
        ),
    }
}

fn conflict(disagreement: Disagreement, window: OplogRange) -> DomainError {
    let (ts, detail) = match disagreement {
        Disagreement::Differs(ts) => (
            ts,
            format!("The pushed entry at ts {ts} differs from the entry stored at that ts."),
        ),
        Disagreement::NotStored(ts) => (
            ts,
            format!(
                "The pushed entry at ts {ts} is not in the stored oplog, which holds every entry from {} to {}.",
                window.first, window.last
            ),
        ),
        Disagreement::NotPushed(ts) => (
            ts,
            format!("The stored oplog holds an entry at ts {ts}, which this push skips over."),
        ),
    };
    DomainError::rejected(
        ErrorCode::OplogEntryConflict,
        format!("{detail} Entries that overlap the stored oplog must match it byte for byte. Nothing was stored."),
        ts_list(ts),
    )
}

fn continuity_mismatch(after: OplogTs, ranges: &[OplogRange]) -> DomainError {
    let stored = match ranges.last() {
        Some(last) => format!(
            "the stored oplog holds no entry at {after} (it ends at {})",
            last.last
        ),
        None => "no oplog is stored for this replica set yet".to_owned(),
    };
    DomainError::rejected(
        ErrorCode::OplogContinuityMismatch,
        format!(
            "The push continues from {after}, but {stored}. Continue from a stored entry (normally the end), \
             or push without afterTs to record a gap before these entries. Nothing was stored."
        ),
        vec!["afterTs".into()],
    )
}

/// Turns the new runs into pieces to encode. A run with a slice to join (see
/// [`Services::joinable_slices`]) is cut together with that slice's entries, and the slice
/// is retired.
fn plan_pieces(
    body: &Bytes,
    marks: &[EntryMark],
    runs: &[Range<usize>],
    joins: &[Option<(OplogSliceRecord, Arc<SliceEntries>)>],
) -> (Vec<Piece>, Vec<OplogSliceId>) {
    let mut pieces = Vec::new();
    let mut retired = Vec::new();
    for (run, join) in runs.iter().zip(joins) {
        let (buffer, run_marks) = match join {
            Some((record, entries)) => {
                retired.push(record.id);
                let head = entries.plain.len();
                let base = marks[run.start].offset;
                let tail = &body[base..marks[run.end - 1].end()];
                let buffer = Bytes::from([&entries.plain[..], tail].concat());
                let run_marks = entries
                    .marks
                    .iter()
                    .copied()
                    .chain(marks[run.clone()].iter().map(|m| EntryMark {
                        offset: m.offset - base + head,
                        ..*m
                    }))
                    .collect();
                (buffer, run_marks)
            }
            None => (body.clone(), marks[run.clone()].to_vec()),
        };
        for cut in cut_runs(&run_marks) {
            pieces.push(Piece {
                buffer: buffer.clone(),
                marks: run_marks[cut].to_vec(),
            });
        }
    }
    (pieces, retired)
}

impl Services {
    /// Stores a push of concatenated oplog entries for one replica set. `after`, when given,
    /// is the ts of the entry right before the first pushed one, which must be stored.
    pub async fn push_oplog(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        replica_set: &str,
        after: Option<OplogTs>,
        body: Bytes,
    ) -> DomainResult<PushOutcome> {
        let stream = self
            .oplog_stream(
                principal,
                group,
                cluster,
                replica_set,
                GroupAccess::BackupAdmin,
            )
            .await?;
        let parsed = body.clone();
        let workers = parallelism();
        let marks = blocking("oplog parsing", move || {
            split_entries_with(&parsed, workers)
        })
        .await?
        .map_err(batch_refusal)?;
        let (first, last) = match (marks.first(), marks.last()) {
            (Some(first), Some(last)) => (first.ts, last.ts),
            _ => {
                return Ok(PushOutcome {
                    entries_received: 0,
                    bytes_received: 0,
                    entries_stored: 0,
                    bytes_stored: 0,
                    entries_already_stored: 0,
                    slices_written: 0,
                    gap_opened: false,
                    coverage: self.stream_summary(&stream).await?,
                })
            }
        };
        if after.is_some_and(|a| a >= first) {
            return Err(DomainError::rejected(
                ErrorCode::InvalidQueryParameter,
                format!("afterTs/afterInc must precede the first pushed entry's ts {first}."),
                vec!["afterTs".into()],
            ));
        }
        let lock = self.oplog_lock(&stream);
        let _serialized = lock.lock().await;
        let ranges = self.meta.oplog_ranges(&stream).await?;
        if let Some(a) = after {
            if coverage::range_containing(&ranges, a).is_none() {
                return Err(continuity_mismatch(a, &ranges));
            }
        }
        let span = OplogRange {
            first: after.unwrap_or(first),
            last,
        };
        let decoded = self
            .check_overlaps(&stream, &ranges, span, after, &body, &marks)
            .await?;
        let runs = coverage::new_runs(&ranges, &marks);
        let joins = self
            .joinable_slices(&stream, &marks, &runs, after, decoded)
            .await?;
        let (pieces, retired) = plan_pieces(&body, &marks, &runs, &joins);
        let entries_stored: usize = runs.iter().map(Range::len).sum();
        let bytes_stored: usize = runs
            .iter()
            .map(|r| marks[r.end - 1].end() - marks[r.start].offset)
            .sum();
        let new_ranges = coverage::merge(&ranges, span);
        let gap_opened = !ranges.is_empty() && coverage::overlap_windows(&ranges, span).is_empty();
        let slices_written = pieces.len() as u64;
        if !pieces.is_empty() {
            self.write_slices(&stream, ranges, pieces, retired, new_ranges)
                .await?;
            self.oplog_stored.notify_one();
        }
        if gap_opened {
            tracing::warn!(
                cluster.id = %cluster,
                replica_set = %replica_set,
                first.ts = %first,
                "oplog push joins no stored range: a gap is recorded before it"
            );
        }
        Ok(PushOutcome {
            entries_received: marks.len() as u64,
            bytes_received: body.len() as u64,
            entries_stored: entries_stored as u64,
            bytes_stored: bytes_stored as u64,
            entries_already_stored: (marks.len() - entries_stored) as u64,
            slices_written,
            gap_opened,
            coverage: self.stream_summary(&stream).await?,
        })
    }

    /// Compares the push with every stored range it overlaps (the `after` entry only needs
    /// to exist); returns the slices it decoded on the way.
    async fn check_overlaps(
        &self,
        stream: &OplogStream,
        ranges: &[OplogRange],
        span: OplogRange,
        after: Option<OplogTs>,
        body: &Bytes,
        marks: &[EntryMark],
    ) -> DomainResult<Decoded> {
        let mut decoded = Decoded::new();
        for window in coverage::overlap_windows(ranges, span) {
            if Some(window.first) == after && window.last == window.first {
                // Only the `after` entry, which is then the range's last: ranges end at a
                // stored entry, so there is nothing to read.
                continue;
            }
            let records = self
                .meta
                .oplog_slices(stream, window.first, window.last)
                .await?;
            for (record, entries) in self.load_slices(stream, records).await? {
                decoded.insert(record.id, (record, entries));
            }
            let inside = |ts: OplogTs| window.first <= ts && ts <= window.last;
            let start = marks.partition_point(|m| m.ts < window.first);
            let end = marks.partition_point(|m| m.ts <= window.last);
            let pushed = after
                .filter(|a| inside(*a))
                .map(|a| (a, None))
                .into_iter()
                .chain(
                    marks[start..end]
                        .iter()
                        .map(|m| (m.ts, Some(&body[m.range()]))),
                );
            let mut held: Vec<&(OplogSliceRecord, Arc<SliceEntries>)> = decoded
                .values()
                .filter(|(r, _)| r.first <= window.last && window.first <= r.last)
                .collect();
            held.sort_by_key(|(r, _)| r.first);
            let stored = held.iter().flat_map(|(_, entries)| {
                entries
                    .marks
                    .iter()
                    .filter(|m| inside(m.ts))
                    .map(|m| (m.ts, entries.bytes_of(m)))
            });
            coverage::compare_window(pushed, stored).map_err(|d| conflict(d, window))?;
        }
        Ok(decoded)
    }

    /// For each new run, the stored slice it may be joined to: the one whose last entry
    /// directly precedes the run, when it holds fewer than [`MERGE_SLICES_BELOW_BYTES`].
    async fn joinable_slices(
        &self,
        stream: &OplogStream,
        marks: &[EntryMark],
        runs: &[Range<usize>],
        after: Option<OplogTs>,
        mut decoded: Decoded,
    ) -> DomainResult<Vec<Option<(OplogSliceRecord, Arc<SliceEntries>)>>> {
        let mut joins = Vec::with_capacity(runs.len());
        for run in runs {
            let before = match run.start {
                0 => after,
                i => Some(marks[i - 1].ts),
            };
            let Some(before) = before else {
                joins.push(None);
                continue;
            };
            let candidate = self
                .meta
                .oplog_slices(stream, before, before)
                .await?
                .into_iter()
                .find(|r| r.last == before && r.raw_bytes < MERGE_SLICES_BELOW_BYTES);
            let join = match candidate {
                None => None,
                Some(record) => match decoded.remove(&record.id) {
                    Some(found) => Some(found),
                    None => self.load_slices(stream, vec![record]).await?.pop(),
                },
            };
            joins.push(join);
        }
        Ok(joins)
    }

    /// Encodes the pieces (in parallel), writes their objects and commits the push.
    async fn write_slices(
        &self,
        stream: &OplogStream,
        expected_ranges: Vec<OplogRange>,
        pieces: Vec<Piece>,
        retired: Vec<OplogSliceId>,
        ranges: Vec<OplogRange>,
    ) -> DomainResult<()> {
        let now = self.clock.now();
        let workers = parallelism();
        let mut encoded = Vec::with_capacity(pieces.len());
        let mut jobs = futures::stream::iter(pieces.into_iter().map(|piece| {
            let id = OplogSliceId::generate();
            let key = slice_key(stream, id);
            async move {
                let path = slice_path(&key)?;
                let (slice, object) = blocking("oplog slice encoding", move || {
                    let slice = OplogSlice::encode(&piece.buffer, &piece.marks);
                    let object = slice.to_object_bytes(&path);
                    (slice, object)
                })
                .await?;
                let record = OplogSliceRecord {
                    id,
                    first: slice.first(),
                    last: slice.last(),
                    entry_count: u64::from(slice.entry_count()),
                    raw_bytes: u64::from(slice.raw_len()),
                    stored_bytes: object.len() as u64,
                    recorded: now,
                };
                Ok::<_, DomainError>((record, key, object))
            }
        }))
        .buffered(workers);
        while let Some(done) = jobs.next().await {
            encoded.push(done?);
        }
        // Held shared from the pending records to the commit: the collector, which takes it
        // exclusively, never deletes an object of a push still in progress on this node.
        let _gc_guard = self.gc_lock.read().await;
        let ids: Vec<OplogSliceId> = encoded.iter().map(|(r, _, _)| r.id).collect();
        self.meta.record_pending_slices(stream, &ids, now).await?;
        let keys: Vec<ObjectKey> = encoded.iter().map(|(_, k, _)| k.clone()).collect();
        let mut slices = Vec::with_capacity(encoded.len());
        let mut objects = Vec::with_capacity(encoded.len());
        for (record, key, object) in encoded {
            slices.push(record);
            objects.push((key, object));
        }
        // Every write is waited for, failed or not: a write still running when the objects
        // of a failed push are removed could land after the removal.
        let written: Vec<BlockResult<()>> = futures::stream::iter(objects)
            .map(|(key, object)| async move { self.blocks.put_object(&key, object).await })
            .buffer_unordered(OBJECT_WRITES_IN_FLIGHT)
            .collect()
            .await;
        if let Some(err) = written.into_iter().find_map(Result::err) {
            self.discard_slices(&keys, &ids).await;
            return Err(block_error(err));
        }
        let commit = OplogCommit {
            expected_ranges,
            slices,
            retired,
            ranges,
        };
        match self.meta.commit_oplog_push(stream, &commit, now).await {
            Ok(true) => return Ok(()),
            Ok(false) => self.discard_slices(&keys, &[]).await,
            Err(err) => {
                let err = DomainError::from(err);
                // A full store certainly did not commit; after another failure the commit
                // may have happened, so its objects stay for the sweeper to judge.
                if err.is_storage_full() {
                    self.discard_slices(&keys, &ids).await;
                }
                return Err(err);
            }
        }
        Err(DomainError::rejected(
            ErrorCode::ConcurrentOplogPush,
            format!(
                "The oplog of replica set {:?} changed while this push was stored (another push ran at the same time, \
                 or this one outlasted the garbage collector's grace period and its slices were collected). \
                 Nothing was stored; push again.",
                stream.replica_set
            ),
            vec![stream.replica_set.clone()],
        ))
    }

    /// Removes the slice objects of a push that was not committed, and the pending records
    /// in `pending` (the slice ids are fresh, so no other push refers to them). What cannot
    /// be removed now is left to the sweeper, which collects pending slices.
    async fn discard_slices(&self, keys: &[ObjectKey], pending: &[OplogSliceId]) {
        for key in keys {
            if let Err(err) = self.blocks.delete_object(key).await {
                tracing::warn!(error = %err, "could not remove a slice of a push that was not stored; the sweeper will");
            }
        }
        for id in pending {
            if let Err(err) = self.meta.forget_oplog_slice(*id).await {
                tracing::warn!(slice = %id, error = %err, "could not forget a pending slice; the sweeper will");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rewind_formats::oplog::entry::test_entries::{entry, run, ts};

    use super::super::test_fixture::Fixture;
    use super::*;
    use crate::domain::test_support::NOW;

    fn code(result: DomainResult<PushOutcome>) -> ErrorCode {
        match result {
            Err(e) => e.code(),
            Ok(o) => panic!("expected a refusal, got {o:?}"),
        }
    }

    fn range(first: OplogTs, last: OplogTs) -> OplogRange {
        OplogRange { first, last }
    }

    #[tokio::test]
    async fn a_push_is_stored_and_an_identical_push_stores_nothing_new() {
        let f = Fixture::new().await;
        let body = run(100, 50, "first push");
        let first = f.push(body.clone(), None).await.unwrap();
        assert_eq!(first.entries_stored, 50);
        assert_eq!(first.bytes_stored, body.len() as u64);
        assert!(!first.gap_opened);
        assert_eq!(first.coverage.ranges, vec![range(ts(100, 1), ts(100, 50))]);
        assert_eq!(f.object_count().await, 1);

        let again = f.push(body, None).await.unwrap();
        assert_eq!(again.entries_stored, 0);
        assert_eq!(again.entries_already_stored, 50);
        assert_eq!(again.slices_written, 0);
        assert_eq!(again.coverage, first.coverage);
        assert_eq!(f.object_count().await, 1);
    }

    #[tokio::test]
    async fn refused_pushes_store_nothing() {
        let f = Fixture::new().await;
        let stored = f.push(run(100, 10, "kept"), None).await.unwrap();
        let mut disordered = run(200, 3, "x");
        disordered.extend(entry(ts(150, 1), "late"));
        assert_eq!(
            code(f.push(disordered, None).await),
            ErrorCode::OplogEntriesOutOfOrder
        );
        let mut overlapping = run(100, 10, "kept");
        let changed = entry(ts(100, 5), "changed");
        let at = (0..4)
            .map(|i| entry(ts(100, i + 1), "kept").len())
            .sum::<usize>();
        overlapping.splice(at..at + entry(ts(100, 5), "kept").len(), changed);
        overlapping.extend(run(101, 5, "new"));
        assert_eq!(
            code(f.push(overlapping, None).await),
            ErrorCode::OplogEntryConflict
        );
        let mut malformed = run(300, 2, "x");
        malformed.truncate(malformed.len() - 1);
        assert_eq!(
            code(f.push(malformed, None).await),
            ErrorCode::InvalidOplogEntry
        );
        assert_eq!(f.summary().await, stored.coverage);
        assert_eq!(f.object_count().await, 1);
    }

    #[tokio::test]
    async fn a_push_after_the_end_opens_a_gap_unless_it_continues_from_the_end() {
        let f = Fixture::new().await;
        f.push(run(100, 5, "a"), None).await.unwrap();
        let gap = f.push(run(200, 5, "b"), None).await.unwrap();
        assert!(gap.gap_opened);
        assert_eq!(
            gap.coverage.ranges,
            vec![range(ts(100, 1), ts(100, 5)), range(ts(200, 1), ts(200, 5))]
        );
        assert_eq!(
            code(f.push(run(300, 5, "c"), Some(ts(250, 1))).await),
            ErrorCode::OplogContinuityMismatch
        );
        let joined = f.push(run(300, 5, "c"), Some(ts(200, 5))).await.unwrap();
        assert!(!joined.gap_opened);
        assert_eq!(
            joined.coverage.ranges,
            vec![range(ts(100, 1), ts(100, 5)), range(ts(200, 1), ts(300, 5))]
        );
        // A stored entry the push would skip over is a conflict, not a continuation.
        assert_eq!(
            code(f.push(run(301, 2, "d"), Some(ts(300, 3))).await),
            ErrorCode::OplogEntryConflict
        );
        // Entries that overlap both sides of the gap fill it.
        let filling: Vec<u8> = [run(100, 5, "a"), run(150, 3, "fill"), run(200, 1, "b")].concat();
        let filled = f.push(filling, None).await.unwrap();
        assert_eq!(filled.entries_stored, 3);
        assert_eq!(filled.coverage.ranges, vec![range(ts(100, 1), ts(300, 5))]);
        assert_eq!(filled.coverage.entries, 18);
    }

    #[tokio::test]
    async fn small_pushes_are_cut_again_into_one_slice() {
        let f = Fixture::new().await;
        let mut last = None;
        for secs in 100..120 {
            let pushed = f.push(run(secs, 10, "small"), last).await.unwrap();
            assert!(!pushed.gap_opened);
            last = Some(ts(secs, 10));
        }
        let summary = f.summary().await;
        assert_eq!(summary.slices, 1, "each push re-cut the small last slice");
        assert_eq!(summary.entries, 200);
        assert_eq!(summary.ranges, vec![range(ts(100, 1), ts(119, 10))]);
        // Retired slices keep their objects until the GC delay has passed.
        assert_eq!(f.object_count().await, 20);
        let collected = f.services.collect_oplog_slices(NOW - 1).await.unwrap();
        assert_eq!(collected, 0);
        let collected = f.services.collect_oplog_slices(NOW + 1).await.unwrap();
        assert_eq!(collected, 19);
        assert_eq!(f.object_count().await, 1);
        // What remains reads back whole.
        let again = f
            .push((100..120).flat_map(|s| run(s, 10, "small")).collect(), None)
            .await
            .unwrap();
        assert_eq!(again.entries_already_stored, 200);
    }

    #[tokio::test]
    async fn a_large_push_is_cut_into_bounded_slices() {
        let f = Fixture::new().await;
        let payload = "p".repeat(2_000);
        let body: Vec<u8> = (0..5_000u32)
            .flat_map(|i| entry(ts(1_000 + i / 100, i % 100 + 1), &payload))
            .collect();
        let pushed = f.push(body.clone(), None).await.unwrap();
        assert_eq!(
            pushed.slices_written,
            body.len().div_ceil(crate::oplog::slice::SLICE_TARGET_BYTES) as u64
        );
        assert_eq!(pushed.coverage.entries, 5_000);
        assert!(pushed.coverage.stored_bytes < body.len() as u64 / 5);
        let again = f.push(body, None).await.unwrap();
        assert_eq!(again.entries_already_stored, 5_000);
    }

    #[tokio::test]
    async fn a_commit_planned_against_stale_ranges_is_refused() {
        let f = Fixture::new().await;
        f.push(run(100, 5, "a"), None).await.unwrap();
        let commit = OplogCommit {
            expected_ranges: vec![],
            slices: vec![],
            retired: vec![],
            ranges: vec![range(ts(1, 1), ts(2, 2))],
        };
        assert!(!f
            .services
            .meta
            .commit_oplog_push(&f.stream(), &commit, NOW)
            .await
            .unwrap());
        assert_eq!(
            f.summary().await.ranges,
            vec![range(ts(100, 1), ts(100, 5))]
        );
    }
}
