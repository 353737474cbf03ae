//! The oplog store: pushes of a replica set's oplog entries, their coverage and gaps, the
//! project's point-in-time window, and retention.
//!
//! A push is checked whole before anything is written: every entry well-formed and in
//! strictly increasing ts order, and every entry that falls inside a stored range identical to
//! the stored one (see [`crate::oplog::coverage`] for the model). Only then are the new
//! entries cut into slices, compressed (on blocking threads, several at once), written as
//! objects, and recorded with the new ranges in one metadata transaction. A crash in between
//! leaves only objects recorded as pending, which the sweeper deletes after the GC delay.
//!
//! Pushes of one replica set are serialized on this node by a per-replica-set lock (held
//! across the reads, writes and commit, hence an async mutex); pushes through two nodes at
//! once are caught by the commit, which refuses a plan made against ranges that changed.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rewind_formats::oplog::split_entries_with;

use super::snapshots::block_error;
use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::blocks::ObjectKey;
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::meta::oplog::OplogCommit;
use crate::model::{
    ClusterType, OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs,
    UnixSeconds,
};
use crate::oplog::coverage::{self, Disagreement};
use crate::oplog::slice::{slice_key, MERGE_SLICES_BELOW_BYTES};
use crate::oplog::{cut_runs, BatchError, EntryMark, OplogSlice, SliceEntries};

/// The largest push, which clients cut their requests by.
pub use rewind_formats::oplog::MAX_PUSH_BYTES;
/// Slice objects written concurrently by one push.
const OBJECT_WRITES_IN_FLIGHT: usize = 4;
/// Slice objects deleted per sweeper pass, so one pass never holds the GC lock for long.
const SLICES_COLLECTED_PER_PASS: u32 = 2000;

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

fn corrupt_slice(stream: &OplogStream, id: OplogSliceId, reason: &str) -> DomainError {
    tracing::error!(
        cluster.id = %stream.cluster,
        replica_set = %stream.replica_set,
        slice.id = %id,
        %reason,
        "refusing corrupt oplog slice"
    );
    DomainError::Internal(format!("oplog slice {id} is corrupt: {reason}"))
}

fn slice_path(key: &ObjectKey) -> DomainResult<String> {
    Ok(key.path().map_err(block_error)?.to_string())
}

fn empty_summary(replica_set: &str) -> OplogStreamSummary {
    OplogStreamSummary {
        replica_set: replica_set.to_owned(),
        slices: 0,
        entries: 0,
        raw_bytes: 0,
        stored_bytes: 0,
        ranges: Vec::new(),
    }
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

/// Threads for CPU-heavy work of one request.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs CPU-heavy work (parsing, compressing, inflating) on the blocking pool.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> DomainResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DomainError::Internal(format!("{what} task failed: {e}")))
}

impl Services {
    /// The replica set `replica_set` of cluster `cluster`, which must be a replica set or a
    /// sharded cluster (not one of its shards) of a project the caller may act on.
    async fn oplog_stream(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        replica_set: &str,
        access: GroupAccess,
    ) -> DomainResult<OplogStream> {
        let names = self
            .oplog_replica_sets(principal, group, cluster, access)
            .await?;
        if !names.iter().any(|n| n == replica_set) {
            return Err(DomainError::rejected(
                ErrorCode::ReplicaSetNotFound,
                format!(
                    "Cluster {cluster} has no replica set named {replica_set:?}; it has {}.",
                    names.join(", ")
                ),
                vec![replica_set.to_owned()],
            ));
        }
        Ok(OplogStream {
            cluster,
            replica_set: replica_set.to_owned(),
        })
    }

    /// The names of a cluster's replica sets (shards and config server for a sharded one).
    async fn oplog_replica_sets(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        access: GroupAccess,
    ) -> DomainResult<Vec<String>> {
        self.authorize_group(principal, group, access).await?;
        let top = self.find_cluster(group, cluster).await?;
        if top.parent_id.is_some() {
            return Err(DomainError::rejected(
                ErrorCode::InvalidAttribute,
                "The oplog is kept per cluster: use the sharded cluster's id and the shard's replica set name, not the shard's id.",
                vec!["clusterId".into()],
            ));
        }
        Ok(self
            .members_of(group, cluster)
            .await?
            .into_iter()
            .filter(|m| m.type_name != ClusterType::ShardedReplicaSet)
            .filter_map(|m| m.replica_set_name)
            .collect())
    }

    /// The lock that serializes the pushes (and retention) of one replica set on this node.
    fn oplog_lock(&self, stream: &OplogStream) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.oplog_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(stream.clone()).or_default().clone()
    }

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

    /// Reads, verifies and decodes stored slices.
    pub(crate) async fn load_slices(
        &self,
        stream: &OplogStream,
        records: Vec<OplogSliceRecord>,
    ) -> DomainResult<Vec<(OplogSliceRecord, Arc<SliceEntries>)>> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let key = slice_key(stream, record.id);
            let path = slice_path(&key)?;
            let bytes = self
                .blocks
                .get_object(&key)
                .await
                .map_err(block_error)?
                .ok_or_else(|| corrupt_slice(stream, record.id, "the object is missing"))?;
            let expected = record.clone();
            let entries = blocking("oplog slice decoding", move || {
                let slice = OplogSlice::from_object_bytes(&path, bytes)?;
                let matches = slice.first() == expected.first
                    && slice.last() == expected.last
                    && u64::from(slice.entry_count()) == expected.entry_count;
                if !matches {
                    return Err(crate::oplog::SliceCorrupt(
                        "the object disagrees with its metadata".into(),
                    ));
                }
                slice.decode()
            })
            .await?
            .map_err(|e| corrupt_slice(stream, record.id, &e.0))?;
            out.push((record, Arc::new(entries)));
        }
        Ok(out)
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
        futures::stream::iter(objects)
            .map(|(key, object)| async move { self.blocks.put_object(&key, object).await })
            .buffer_unordered(OBJECT_WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await
            .map_err(block_error)?;
        let commit = OplogCommit {
            expected_ranges,
            slices,
            retired,
            ranges,
        };
        if self.meta.commit_oplog_push(stream, &commit, now).await? {
            return Ok(());
        }
        for key in &keys {
            if let Err(err) = self.blocks.delete_object(key).await {
                tracing::warn!(error = %err, "could not remove a slice of a refused push; the sweeper will");
            }
        }
        Err(DomainError::rejected(
            ErrorCode::ConcurrentOplogPush,
            format!(
                "The oplog of replica set {:?} changed while this push was stored (another push ran at the same time). \
                 Nothing was stored; push again.",
                stream.replica_set
            ),
            vec![stream.replica_set.clone()],
        ))
    }

    /// The stored oplog of one replica set (zeros when there is none).
    async fn stream_summary(&self, stream: &OplogStream) -> DomainResult<OplogStreamSummary> {
        let summaries = self.meta.oplog_summaries(stream.cluster).await?;
        Ok(summaries
            .into_iter()
            .find(|s| s.replica_set == stream.replica_set)
            .unwrap_or_else(|| empty_summary(&stream.replica_set)))
    }

    /// The stored oplog of every replica set of a cluster, in member order.
    pub async fn oplog_status(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
    ) -> DomainResult<Vec<OplogStreamSummary>> {
        let names = self
            .oplog_replica_sets(principal, group, cluster, GroupAccess::Read)
            .await?;
        let mut stored: HashMap<String, OplogStreamSummary> = self
            .meta
            .oplog_summaries(cluster)
            .await?
            .into_iter()
            .map(|s| (s.replica_set.clone(), s))
            .collect();
        Ok(names
            .iter()
            .map(|n| stored.remove(n).unwrap_or_else(|| empty_summary(n)))
            .collect())
    }

    /// The stored oplog of one replica set.
    pub async fn replica_set_oplog_status(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        replica_set: &str,
    ) -> DomainResult<OplogStreamSummary> {
        let stream = self
            .oplog_stream(principal, group, cluster, replica_set, GroupAccess::Read)
            .await?;
        self.stream_summary(&stream).await
    }

    /// Retention: retires each replica set's slices that a point-in-time restore inside the
    /// project's window can no longer need. Kept: everything from the window's start, and
    /// from the newest complete snapshot taken at or before it (a restore to the window's
    /// start replays from there), plus the slice holding that point, so the stored range
    /// still reaches back to it. Returns how many slices were retired; their objects are
    /// deleted after the GC delay by [`Self::collect_oplog_slices`].
    pub async fn retain_oplog(&self, now: UnixSeconds) -> DomainResult<u64> {
        let mut retired = 0;
        for (group, stream) in self.meta.oplog_streams().await? {
            let start = self.settings_of(group).await?.window_start(now);
            let window_start = OplogTs {
                secs: u32::try_from(start).unwrap_or(u32::MAX),
                inc: 0,
            };
            let mut keep_from = match self
                .newest_snapshot_at_or_before(group, stream.cluster, window_start)
                .await?
            {
                Some(created) => created.min(window_start),
                None => window_start,
            };
            // Restores to a moment still being prepared or downloaded read from their
            // snapshot on.
            if let Some(read_from) = self
                .meta
                .oldest_active_oplog_start(stream.cluster, now)
                .await?
            {
                keep_from = keep_from.min(read_from);
            }
            let lock = self.oplog_lock(&stream);
            let _serialized = lock.lock().await;
            let count = self
                .meta
                .retire_oplog_before(&stream, keep_from, now)
                .await?;
            if count > 0 {
                tracing::info!(
                    cluster.id = %stream.cluster,
                    replica_set = %stream.replica_set,
                    slices = count,
                    keep_from = %keep_from,
                    "oplog slices retired by retention"
                );
            }
            retired += count;
        }
        Ok(retired)
    }

    /// The `created` timestamp of the newest complete, live snapshot of `cluster` taken at
    /// or before `at`.
    async fn newest_snapshot_at_or_before(
        &self,
        group: GroupId,
        cluster: ClusterId,
        at: OplogTs,
    ) -> DomainResult<Option<OplogTs>> {
        let snapshots = self
            .complete_snapshots_at_or_before(group, cluster, at)
            .await?;
        Ok(snapshots.first().map(|s| s.created))
    }

    /// The ts of the newest stored entry of `stream` at or before `at`, when a stored range
    /// holds `at` (outside every range the answer would not be known to be the newest).
    /// Reads at most one slice: only when `at` falls inside one.
    pub(crate) async fn last_stored_entry_at_or_before(
        &self,
        stream: &OplogStream,
        at: OplogTs,
    ) -> DomainResult<Option<OplogTs>> {
        let ranges = self.meta.oplog_ranges(stream).await?;
        let Some(range) = coverage::range_containing(&ranges, at) else {
            return Ok(None);
        };
        let Some(newest) = self.meta.oplog_slices(stream, range.first, at).await?.pop() else {
            return Ok(None);
        };
        if newest.last <= at {
            return Ok(Some(newest.last));
        }
        let (_, entries) = self
            .load_slices(stream, vec![newest])
            .await?
            .pop()
            .ok_or_else(|| DomainError::Internal("a loaded slice vanished".into()))?;
        Ok(entries
            .marks
            .iter()
            .rev()
            .map(|m| m.ts)
            .find(|ts| *ts <= at))
    }

    /// Deletes the objects of slices retired before `before`, and of pushes that recorded
    /// slices as pending before it and never committed them.
    pub async fn collect_oplog_slices(&self, before: UnixSeconds) -> DomainResult<usize> {
        let _exclusive = self.gc_lock.write().await;
        let collectable = self
            .meta
            .collectable_oplog_slices(before, SLICES_COLLECTED_PER_PASS)
            .await?;
        for slice in &collectable {
            self.blocks
                .delete_object(&slice_key(&slice.stream, slice.id))
                .await
                .map_err(block_error)?;
            self.meta.forget_oplog_slice(slice.id).await?;
        }
        Ok(collectable.len())
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;
    use rewind_formats::oplog::entry::test_entries::{entry, run, ts};

    use super::*;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::{TestClock, TestProject, NOW};
    use crate::domain::Clock;
    use crate::model::{PageRequest, SnapshotRecord};

    /// A project with one replica set `rs0`, over a temporary SQLite store and an in-memory
    /// object store the test can list.
    struct Fixture {
        services: Services,
        objects: Arc<InMemory>,
        clock: Arc<TestClock>,
        principal: Principal,
        group: GroupId,
        cluster: ClusterId,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let spec = ClusterSpec {
                name: "rs0".into(),
                shards: None,
                fcv: None,
            };
            let p = TestProject::start(spec).await;
            Fixture {
                services: p.services,
                objects: p.objects,
                clock: p.clock,
                principal: p.principal,
                group: p.group,
                cluster: p.cluster,
                _dir: p.dir,
            }
        }

        async fn push(&self, body: Vec<u8>, after: Option<OplogTs>) -> DomainResult<PushOutcome> {
            self.services
                .push_oplog(
                    &self.principal,
                    self.group,
                    self.cluster,
                    "rs0",
                    after,
                    body.into(),
                )
                .await
        }

        async fn summary(&self) -> OplogStreamSummary {
            self.services
                .replica_set_oplog_status(&self.principal, self.group, self.cluster, "rs0")
                .await
                .unwrap()
        }

        async fn object_count(&self) -> usize {
            let listed: Vec<_> = self.objects.list(None).try_collect().await.unwrap();
            listed.len()
        }

        fn stream(&self) -> OplogStream {
            OplogStream {
                cluster: self.cluster,
                replica_set: "rs0".into(),
            }
        }
    }

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
    async fn a_corrupt_slice_is_never_used() {
        let f = Fixture::new().await;
        f.push(run(100, 5, "a"), None).await.unwrap();
        let listed: Vec<_> = f.objects.list(None).try_collect().await.unwrap();
        let path = &listed[0].location;
        let mut bytes = f
            .objects
            .get(path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        f.objects
            .put(path, Bytes::from(bytes).into())
            .await
            .unwrap();
        let err = f.push(run(100, 5, "a"), None).await.unwrap_err();
        assert!(matches!(err, DomainError::Internal(_)), "{err:?}");
    }

    /// A finished point-in-time restore of `snapshot` whose link expires at `expires`.
    fn live_pit_job(
        f: &Fixture,
        snapshot: crate::ids::SnapshotId,
        expires: UnixSeconds,
    ) -> crate::model::RestoreJobRecord {
        use crate::model::{DeliveryMethod, DeliveryStatus, JobStatus};
        crate::model::RestoreJobRecord {
            id: crate::ids::JobId::generate(),
            batch_id: None,
            group_id: f.group,
            cluster_id: f.cluster,
            snapshot_id: snapshot,
            replica_set_name: "rs0".into(),
            part_type: ClusterType::ReplicaSet,
            created: NOW,
            status: JobStatus::Finished,
            delivery_status: DeliveryStatus::Ready,
            method: DeliveryMethod::Http {
                max_downloads: 1,
                expiration_hours: None,
            },
            expires: Some(expires),
            point_in_time: true,
            timestamp: ts(NOW as u32 - 100, 1),
            file_name: "rs0".into(),
            archive_bytes: Some(1),
            archive_sha1: Some("0".repeat(40)),
            downloads_started: 0,
            downloads_completed: 0,
            resume_offset: None,
            resent_bytes: 0,
            finished_at: Some(NOW),
            failure: None,
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn retention_keeps_the_window_and_the_snapshot_before_it() {
        let f = Fixture::new().await;
        let hour = 3_600u32;
        let now = NOW as u32;
        // Three stretches: 30 h ago, from 2 h to 20 min ago (one push, a few slices), and
        // recent.
        f.push(run(now - 30 * hour, 10, "old"), None).await.unwrap();
        let payload = "q".repeat(3_000);
        let middle: Vec<u8> = (0..3_000u32)
            .flat_map(|i| entry(ts(now - 2 * hour + 2 * i, 1), &payload))
            .collect();
        f.push(middle, None).await.unwrap();
        f.push(run(now - 60, 10, "recent"), None).await.unwrap();
        let before = f.summary().await;
        assert_eq!(before.ranges.len(), 3);
        let middle_slices = before.slices - 2;
        assert!(middle_slices >= 2);

        // The default window (24 h) drops the oldest stretch only.
        assert_eq!(f.services.retain_oplog(NOW).await.unwrap(), 1);
        let after = f.summary().await;
        assert_eq!(after.ranges.len(), 2);
        assert_eq!(after.ranges[0].first, ts(now - 2 * hour, 1));

        // With a 1 h window, a snapshot taken before the window keeps the oplog from it.
        f.services
            .set_pit_window(&f.principal, f.group, 1)
            .await
            .unwrap();
        let snapshot_at = ts(now - 2 * hour + 200, 1);
        f.services
            .meta
            .insert_snapshot(&SnapshotRecord {
                id: crate::ids::SnapshotId::generate(),
                group_id: f.group,
                cluster_id: f.cluster,
                created: snapshot_at,
                last_oplog_applied: None,
                complete: true,
                expires: None,
                do_not_delete: false,
                deleted_at: None,
                mongod_version: "7.0.0".into(),
                storage_engine: "wiredTiger".into(),
                recorded: NOW,
                parts: vec![],
            })
            .await
            .unwrap();
        f.services.retain_oplog(f.clock.now()).await.unwrap();
        let kept = f.summary().await;
        assert_eq!(kept.ranges.len(), 2);
        assert!(kept.ranges[0].first <= snapshot_at, "{kept:?}");
        assert_eq!(kept.ranges[0].first, after.ranges[0].first);

        // A restore to a moment from that snapshot, whose link is live for one more
        // second, keeps the oplog from the snapshot on even once the snapshot is deleted.
        let snapshots = f
            .services
            .meta
            .list_snapshots(
                f.group,
                f.cluster,
                PageRequest {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        f.services
            .meta
            .insert_jobs(&[live_pit_job(&f, snapshots.items[0].id, NOW + 1)])
            .await
            .unwrap();
        f.services
            .meta
            .mark_snapshot_deleted(snapshots.items[0].id, NOW)
            .await
            .unwrap();
        assert_eq!(f.services.retain_oplog(NOW).await.unwrap(), 0);
        assert_eq!(f.summary().await.ranges[0].first, after.ranges[0].first);
        f.clock.set(NOW + 2);

        // Without that snapshot and that restore, the window stays, with the slice
        // holding its start.
        let retired = f.services.retain_oplog(f.clock.now()).await.unwrap();
        assert!(retired >= 1);
        let trimmed = f.summary().await;
        let window_start = ts(now - hour, 0);
        assert!(trimmed.ranges[0].first <= window_start, "{trimmed:?}");
        assert!(trimmed.ranges[0].first > snapshot_at, "{trimmed:?}");
        assert_eq!(trimmed.ranges[0].last, before.ranges[1].last);

        // Nothing retired is deleted before the GC delay; afterwards the objects go.
        let objects = f.object_count().await;
        let collected = f
            .services
            .collect_oplog_slices(f.clock.now() + 1)
            .await
            .unwrap();
        assert_eq!(f.object_count().await, objects - collected);
        assert_eq!(f.object_count().await as u64, trimmed.slices);
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

    #[tokio::test]
    async fn pending_slices_of_a_push_that_never_committed_are_collected() {
        let f = Fixture::new().await;
        let id = OplogSliceId::generate();
        f.services
            .meta
            .record_pending_slices(&f.stream(), &[id], NOW)
            .await
            .unwrap();
        let key = slice_key(&f.stream(), id);
        f.services
            .blocks
            .put_object(&key, Bytes::from_static(b"half a push"))
            .await
            .unwrap();
        assert_eq!(f.services.collect_oplog_slices(NOW).await.unwrap(), 0);
        assert_eq!(f.services.collect_oplog_slices(NOW + 1).await.unwrap(), 1);
        assert_eq!(f.object_count().await, 0);
    }

    #[tokio::test]
    async fn the_window_is_bounded() {
        let f = Fixture::new().await;
        let set = |h| f.services.set_pit_window(&f.principal, f.group, h);
        assert_eq!(
            set(0).await.unwrap_err().code(),
            ErrorCode::AttributeNegativeOrZero
        );
        assert_eq!(
            set(721).await.unwrap_err().code(),
            ErrorCode::InvalidAttribute
        );
        assert_eq!(set(48).await.unwrap().pit_window_hours, 48);
        assert_eq!(
            f.services
                .settings_of(f.group)
                .await
                .unwrap()
                .pit_window_hours,
            48
        );
    }
}
