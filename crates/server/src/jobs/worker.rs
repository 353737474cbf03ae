//! The restore worker: claims jobs waiting for preparation, lays out and reads through
//! their archives (verifying every chunk and computing size and SHA-1), and moves them
//! along the job lifecycle.
//!
//! Jobs are leased, not locked: a worker that dies leaves a lease that runs out, and the
//! job is claimed again. Preparation is idempotent (it only reads), so running it twice
//! is harmless.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use sha1::{Digest, Sha1};

use super::{sleep_or_shutdown, Shutdown};
use crate::blocks::BlockError;
use crate::domain::{DomainError, Services};
use crate::ids::JobId;
use crate::meta::restore::PreparedOutcome;
use crate::model::{DeliveryMethod, DeliveryStatus, JobStatus, RestoreJobRecord};

/// How long a claim lasts without renewal: also how long a job waits after the worker
/// preparing it died before another worker (or the restarted server) takes it over.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often a lease is renewed while preparing.
const LEASE_RENEWAL: Duration = Duration::from_secs(5);
/// How often the worker looks for jobs when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts after which a job that keeps failing for internal reasons is declared BROKEN.
const MAX_ATTEMPTS: u32 = 5;
/// Jobs claimed at once.
const CLAIM_BATCH: u32 = 64;
/// Jobs of a batch prepared concurrently (each reads its archive front to back).
const PREPARED_AT_ONCE: usize = 4;

pub struct RestoreWorker {
    services: Arc<Services>,
    name: String,
}

/// A prepared archive's size and SHA-1 (hex), or why there is none.
type Prepared = Result<(u64, String), PrepareError>;

/// Why preparation stopped.
enum PrepareError {
    /// The data itself is unusable (missing or corrupt chunk): the job is BROKEN.
    Data(String),
    /// Something else failed; the job is retried when its lease runs out.
    Retry(DomainError),
}

impl From<DomainError> for PrepareError {
    fn from(err: DomainError) -> Self {
        PrepareError::Retry(err)
    }
}

impl RestoreWorker {
    pub fn new(services: Arc<Services>, name: String) -> Self {
        RestoreWorker { services, name }
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            match self.run_once().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::error!(error = %err, "restore worker could not claim a job"),
            }
            let wake = self.services.work_available.notified();
            tokio::select! {
                _ = wake => {}
                keep = sleep_or_shutdown(POLL_INTERVAL, &mut shutdown) => if !keep { return },
            }
        }
    }

    /// Claims a batch of jobs and prepares them; `false` when there was none.
    ///
    /// Outcomes are recorded as they come, several per transaction: whatever is finished
    /// when the store is written goes in the same write, so a batch of small jobs costs a
    /// couple of writes while one large job never holds back the small ones behind it.
    pub async fn run_once(&self) -> Result<bool, DomainError> {
        let now = self.services.clock.now();
        let jobs = self
            .services
            .meta
            .claim_jobs(&self.name, now, now + LEASE.as_secs() as i64, CLAIM_BATCH)
            .await?;
        if jobs.is_empty() {
            return Ok(false);
        }
        let ids: Vec<_> = jobs.iter().map(|job| job.id).collect();
        let mut prepared = futures::stream::iter(jobs)
            .map(|job| async move {
                let result = self.prepare(&job).await;
                (job, result)
            })
            .buffer_unordered(PREPARED_AT_ONCE);
        let work = async {
            while let Some(first) = prepared.next().await {
                let mut done = vec![first];
                while let Some(Some(more)) = prepared.next().now_or_never() {
                    done.push(more);
                }
                self.record(done).await?;
            }
            Ok::<_, DomainError>(())
        };
        tokio::select! {
            result = work => result?,
            () = self.keep_leases(&ids) => tracing::warn!("lost the leases of a batch of restore jobs; they will be prepared again"),
        }
        Ok(true)
    }

    /// Writes the outcomes of prepared jobs; jobs that failed for a passing reason keep
    /// their lease, which runs out so that they are claimed again.
    async fn record(&self, done: Vec<(RestoreJobRecord, Prepared)>) -> Result<(), DomainError> {
        let mut outcomes = Vec::with_capacity(done.len());
        for (job, result) in done {
            tracing::debug!(job.id = %job.id, attempt = job.attempts, "restore job prepared");
            let outcome = match result {
                Ok((bytes, sha1)) => self.ready(&job, bytes, sha1),
                Err(PrepareError::Data(reason)) => self.broken(reason),
                Err(PrepareError::Retry(err)) if job.attempts >= MAX_ATTEMPTS => {
                    self.broken(format!(
                        "preparation failed {} times; last error: {err}",
                        job.attempts
                    ))
                }
                Err(PrepareError::Retry(err)) => {
                    tracing::warn!(job.id = %job.id, error = %err, "restore job preparation failed; it will be retried");
                    continue;
                }
            };
            outcomes.push((job.id, outcome));
        }
        if outcomes.is_empty() {
            return Ok(());
        }
        let finished = self
            .services
            .meta
            .finish_preparations(&self.name, &outcomes)
            .await?;
        self.services.agent_news.notify_waiters();
        for ((id, outcome), finished) in outcomes.iter().zip(finished) {
            if !finished {
                tracing::warn!(job.id = %id, "lost the lease of a restore job before finishing it");
            } else if let Some(reason) = &outcome.failure {
                tracing::error!(job.id = %id, reason, "restore job broken");
            } else {
                tracing::info!(job.id = %id, size_bytes = outcome.archive_bytes, "restore job ready");
            }
        }
        Ok(())
    }

    /// Renews the leases of a claimed batch until dropped; returns when none is held any
    /// more (or the store fails), which stops the batch.
    async fn keep_leases(&self, ids: &[JobId]) {
        loop {
            tokio::time::sleep(LEASE_RENEWAL).await;
            let until = self.services.clock.now() + LEASE.as_secs() as i64;
            match self
                .services
                .meta
                .renew_leases(ids, &self.name, until)
                .await
            {
                Ok(held) if held > 0 => {}
                _ => return,
            }
        }
    }

    fn ready(&self, job: &RestoreJobRecord, bytes: u64, sha1: String) -> PreparedOutcome {
        let now = self.services.clock.now();
        let (status, expires) = match job.method {
            DeliveryMethod::Http {
                expiration_hours, ..
            } => (
                JobStatus::Finished,
                expiration_hours.map(|h| now + i64::from(h) * 3600),
            ),
            // Finished only when the target's agents have applied it.
            DeliveryMethod::Automated { .. } => (JobStatus::InProgress, None),
        };
        PreparedOutcome {
            status,
            delivery_status: DeliveryStatus::Ready,
            archive_bytes: Some(bytes),
            archive_sha1: Some(sha1),
            expires,
            finished_at: (status == JobStatus::Finished).then_some(now),
            failure: None,
        }
    }

    fn broken(&self, reason: String) -> PreparedOutcome {
        PreparedOutcome {
            status: JobStatus::Broken,
            delivery_status: DeliveryStatus::Failed,
            archive_bytes: None,
            archive_sha1: None,
            expires: None,
            finished_at: Some(self.services.clock.now()),
            failure: Some(reason),
        }
    }

    /// Reads the whole archive once: every chunk verified, size and SHA-1 computed.
    async fn prepare(&self, job: &RestoreJobRecord) -> Prepared {
        let plan = self.services.archive_plan(job).await?;
        let expected = plan.len();
        let mut stream = plan.stream(self.services.blocks.clone(), 0, expected);
        let mut hasher = Sha1::new();
        let mut bytes = 0u64;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(data) => {
                    bytes += data.len() as u64;
                    hasher.update(&data);
                }
                Err(err @ (BlockError::NotFound(_) | BlockError::Corrupt { .. })) => {
                    return Err(PrepareError::Data(format!(
                        "the snapshot's data is damaged: {err}"
                    )));
                }
                Err(err) => {
                    return Err(PrepareError::Retry(DomainError::Internal(format!(
                        "block store: {err}"
                    ))))
                }
            }
        }
        if bytes != expected {
            return Err(PrepareError::Data(format!(
                "the archive holds {bytes} bytes, its layout {expected}"
            )));
        }
        Ok((bytes, hex::encode(hasher.finalize())))
    }
}
