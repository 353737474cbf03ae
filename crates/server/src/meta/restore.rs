//! Restore jobs: rows claimed atomically by workers, and the download accounting of
//! their HTTP deliveries.

use async_trait::async_trait;

use super::{LeaseToken, MetaResult};
use crate::ids::{ClusterId, GroupId, JobId, SnapshotId};
use crate::model::{
    DeliveryLedger, DeliveryStatus, JobStatus, PageOf, PageRequest, RestoreJobRecord, UnixSeconds,
};

#[async_trait]
pub trait RestoreMeta: Send + Sync + 'static {
    /// Inserts the jobs of one request (one, or a sharded batch) atomically.
    async fn insert_jobs(&self, jobs: &[RestoreJobRecord]) -> MetaResult<()>;
    async fn get_job(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> MetaResult<Option<RestoreJobRecord>>;
    /// Any job by id, for the download endpoint (which authenticates by token).
    async fn get_job_by_id(&self, id: JobId) -> MetaResult<Option<RestoreJobRecord>>;
    /// A cluster's jobs, newest first, optionally only one batch.
    async fn list_jobs(
        &self,
        group: GroupId,
        cluster: ClusterId,
        batch: Option<crate::ids::BatchId>,
        page: PageRequest,
    ) -> MetaResult<PageOf<RestoreJobRecord>>;

    /// Claims up to `limit` of the oldest jobs waiting for preparation whose lease is free,
    /// leasing them to `worker` until `lease_until`, oldest first. Atomic: two workers never
    /// claim the same job. Claiming in batches keeps the worker to a few writes per batch
    /// rather than per job, which matters on a store with one write lock.
    /// Each claim counts one more attempt (`attempts`), which bounds retries of a job
    /// that keeps failing, and stores and hands out a larger fencing token, which every
    /// later write of the claim's holder carries.
    async fn claim_jobs(
        &self,
        worker: &str,
        now: UnixSeconds,
        lease_until: UnixSeconds,
        limit: u32,
    ) -> MetaResult<Vec<ClaimedJob>>;
    /// Extends the leases of `leases` still held by `worker` under their token; returns the
    /// jobs whose lease was (in no particular order). A job claimed again since is not.
    async fn renew_leases(
        &self,
        leases: &[JobLease],
        worker: &str,
        lease_until: UnixSeconds,
    ) -> MetaResult<Vec<JobId>>;
    /// Records prepared archives and the jobs' new statuses, releasing their leases, all in
    /// one transaction. One flag per outcome: `false` when `worker` had lost that lease
    /// (its token is no longer the job's, or the job left `IN_PROGRESS`).
    /// A link expiry given at creation stays; the outcome's `expires` fills only a missing
    /// one.
    async fn finish_preparations(
        &self,
        worker: &str,
        outcomes: &[(JobLease, PreparedOutcome)],
    ) -> MetaResult<Vec<bool>>;

    /// Records how far `worker`'s preparation of `id` got: `prepared` bytes of an archive
    /// laid out as `planned` bytes. `false` (and nothing written) when `worker` does not
    /// hold the job's lease, so a worker that lost it never overwrites its successor's.
    async fn record_preparation_progress(
        &self,
        id: JobId,
        worker: &str,
        prepared: u64,
        planned: u64,
    ) -> MetaResult<bool>;
    /// The preparation figures last recorded for `id` (zero and none before any);
    /// `None` when there is no such job.
    async fn preparation_progress(&self, id: JobId) -> MetaResult<Option<PreparationProgress>>;

    /// Replaces a job's download accounting with `next` if it still equals `expected`;
    /// `false` when it had changed (another transfer moved it first) or the job is gone.
    /// The one write of every download decision, so concurrent transfers on any node
    /// never both spend the same download.
    async fn update_delivery(
        &self,
        id: JobId,
        expected: &DeliveryLedger,
        next: &DeliveryLedger,
    ) -> MetaResult<bool>;
    /// Up to `limit` HTTP jobs whose link expiry is at or before `now` and whose delivery
    /// status is one of `statuses`, oldest expiry first.
    async fn links_expired_by(
        &self,
        now: UnixSeconds,
        statuses: &[DeliveryStatus],
        limit: u32,
    ) -> MetaResult<Vec<RestoreJobRecord>>;
    /// The oldest snapshot timestamp among the restores to a moment of `cluster` that are
    /// unfinished or whose link is still live (unexpired, and `READY`, `INTERRUPTED`, with
    /// more downloads started than completed, or with a point to resume from): their archives read the oplog from there.
    async fn oldest_active_oplog_start(
        &self,
        cluster: crate::ids::ClusterId,
        now: UnixSeconds,
    ) -> MetaResult<Option<crate::model::OplogTs>>;
    /// Whether any job that is unfinished, or whose link is still live (as above), reads
    /// the snapshot.
    async fn snapshot_has_active_jobs(
        &self,
        snapshot: SnapshotId,
        now: UnixSeconds,
    ) -> MetaResult<bool>;
}

/// A job as its claim left it, with the claim's fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job: RestoreJobRecord,
    pub token: LeaseToken,
}

impl ClaimedJob {
    pub fn lease(&self) -> JobLease {
        JobLease {
            job: self.job.id,
            token: self.token,
        }
    }
}

/// One claim of one job: what a holder's conditional writes name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    pub job: JobId,
    pub token: LeaseToken,
}

/// The result of preparing a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedOutcome {
    pub status: JobStatus,
    pub delivery_status: DeliveryStatus,
    pub archive_bytes: Option<u64>,
    pub archive_sha1: Option<String>,
    pub expires: Option<UnixSeconds>,
    pub finished_at: Option<UnixSeconds>,
    pub failure: Option<String>,
}

/// How far the preparation of a job's archive got, as its worker last recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreparationProgress {
    pub prepared_bytes: u64,
    /// The archive's size as laid out when preparation began.
    pub planned_bytes: Option<u64>,
}
