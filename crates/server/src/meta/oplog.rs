//! The oplog store's metadata: slices, ranges of complete coverage, and objects being written.

use async_trait::async_trait;

use super::MetaResult;
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::model::{
    OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs, UnixSeconds,
};

/// Everything one push records, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogCommit {
    /// The ranges the push was planned against; the commit is refused if they changed.
    pub expected_ranges: Vec<OplogRange>,
    /// The new slices (their objects are written and were recorded as pending).
    pub slices: Vec<OplogSliceRecord>,
    /// Live slices whose entries the new slices hold again (a small last slice re-cut with
    /// what continues it); they are retired, their objects deleted after the GC delay.
    pub retired: Vec<OplogSliceId>,
    /// The stream's ranges afterwards, oldest first.
    pub ranges: Vec<OplogRange>,
}

/// One slice object that may be deleted: retired long enough, or never committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectableSlice {
    pub stream: OplogStream,
    pub id: OplogSliceId,
}

#[async_trait]
pub trait OplogMeta: Send + Sync + 'static {
    /// The stream's ranges, oldest first.
    async fn oplog_ranges(&self, stream: &OplogStream) -> MetaResult<Vec<OplogRange>>;
    /// The stream's live slices that hold any entry in `[from, to]`, oldest first.
    async fn oplog_slices(
        &self,
        stream: &OplogStream,
        from: OplogTs,
        to: OplogTs,
    ) -> MetaResult<Vec<OplogSliceRecord>>;
    /// Totals and ranges of every replica set of `cluster` that has stored oplog.
    async fn oplog_summaries(&self, cluster: ClusterId) -> MetaResult<Vec<OplogStreamSummary>>;

    /// Records slice objects about to be written.
    async fn record_pending_slices(
        &self,
        stream: &OplogStream,
        ids: &[OplogSliceId],
        now: UnixSeconds,
    ) -> MetaResult<()>;
    /// Records a push atomically: inserts the slices (clearing their pending records),
    /// retires `commit.retired` and replaces the ranges. Returns `false`, changing nothing,
    /// when the stream's ranges are no longer `commit.expected_ranges` (a concurrent push),
    /// or when a slice's pending record is gone or being deleted (the collector found the
    /// push abandoned: its objects may be gone).
    async fn commit_oplog_push(
        &self,
        stream: &OplogStream,
        commit: &OplogCommit,
        now: UnixSeconds,
    ) -> MetaResult<bool>;

    /// Every stream that has stored oplog, with the project of its cluster.
    async fn oplog_streams(&self) -> MetaResult<Vec<(GroupId, OplogStream)>>;
    /// Retires the stream's live slices that end before `cutoff`, except that when `cutoff`
    /// lies inside a range the slice holding it is kept (so coverage still reaches back to
    /// `cutoff`), and trims the ranges to what stays; returns how many slices were retired.
    async fn retire_oplog_before(
        &self,
        stream: &OplogStream,
        cutoff: OplogTs,
        now: UnixSeconds,
    ) -> MetaResult<u64>;
    /// Slice objects retired before `before`, or pending since before it, at most `limit`.
    async fn collectable_oplog_slices(
        &self,
        before: UnixSeconds,
        limit: u32,
    ) -> MetaResult<Vec<CollectableSlice>>;
    /// Starts deleting a slice object that [`OplogMeta::collectable_oplog_slices`] listed
    /// with the same `before`, in one conditional statement: a pending record recorded
    /// before `before` is marked as being deleted (`now`), so its push can no longer commit
    /// it; a slice retired before `before` needs no mark (nothing revives it). `false` when
    /// neither holds any more (the push committed the slice in between): keep the object.
    async fn start_slice_deletion(
        &self,
        id: OplogSliceId,
        before: UnixSeconds,
        now: UnixSeconds,
    ) -> MetaResult<bool>;
    /// Forgets a collected slice object (its retired or pending record).
    async fn forget_oplog_slice(&self, id: OplogSliceId) -> MetaResult<()>;
}
