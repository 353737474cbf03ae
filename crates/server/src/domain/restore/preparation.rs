//! Preparing a restore job's archive, and what its outcome makes of the job.
//!
//! Preparation reads the whole archive once, front to back: every chunk verified, the size
//! and SHA-1 computed. Its outcome decides the job: READY (and FINISHED for an HTTP job,
//! whose link starts its lifetime now), BROKEN when the snapshot's data is unusable or
//! when passing failures kept recurring, or nothing yet (the job is claimed again when its
//! lease runs out). The restore worker only schedules this: it claims, holds the leases,
//! and hands the outcomes back here to be recorded.
//!
//! Jobs are leased, not locked: a worker that dies leaves a lease that runs out, and the
//! job is claimed again. Preparation only reads, so running it twice is harmless.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sha1::{Digest, Sha1};

use super::super::{DomainError, DomainResult, Services};
use crate::blocks::BlockError;
use crate::ids::JobId;
use crate::meta::restore::{ClaimedJob, JobLease, PreparedOutcome};
use crate::model::{DeliveryMethod, DeliveryStatus, JobStatus, RestoreJobRecord};

/// Attempts after which a job that keeps failing for passing reasons is declared BROKEN.
pub const MAX_PREPARATION_ATTEMPTS: u32 = 5;
/// How often a preparation records how far it got: often enough for a live view, rarely
/// enough that a store with one write lock does not notice.
pub const PROGRESS_RECORD_INTERVAL: Duration = Duration::from_secs(1);

/// A prepared archive's size and SHA-1 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedArchive {
    pub bytes: u64,
    pub sha1: String,
}

/// Why preparation stopped.
#[derive(Debug)]
pub enum PreparationError {
    /// The data itself is unusable (a missing or corrupt chunk): the job is BROKEN.
    Damaged(String),
    /// Something else failed; the job is tried again when its lease runs out.
    Passing(DomainError),
}

impl From<DomainError> for PreparationError {
    fn from(err: DomainError) -> Self {
        PreparationError::Passing(err)
    }
}

/// How far one preparation got: set by [`Services::prepare_archive`], written out by
/// [`Services::record_preparation_progress`].
#[derive(Debug, Default)]
pub struct PreparationMeter {
    prepared: AtomicU64,
    /// The archive's size once laid out (0 before).
    planned: AtomicU64,
    /// `prepared + 1` as last written (0: never).
    recorded: AtomicU64,
}

/// One job's preparation, as the worker hands it back.
pub type Preparation = (ClaimedJob, Result<PreparedArchive, PreparationError>);

impl Services {
    /// Claims up to `limit` jobs waiting for preparation for `worker`, leased for `lease`;
    /// each claim counts one more attempt and carries a fencing token.
    pub async fn claim_preparations(
        &self,
        worker: &str,
        lease: Duration,
        limit: u32,
    ) -> DomainResult<Vec<ClaimedJob>> {
        let now = self.clock.now();
        Ok(self
            .meta
            .claim_jobs(worker, now, lease_end(now, lease), limit)
            .await?)
    }

    /// Extends `worker`'s `leases` by `lease`; the jobs whose claim it still held (a job
    /// claimed again meanwhile, by any node, is not among them).
    pub async fn renew_preparation_leases(
        &self,
        leases: &[JobLease],
        worker: &str,
        lease: Duration,
    ) -> DomainResult<Vec<JobId>> {
        let until = lease_end(self.clock.now(), lease);
        Ok(self.meta.renew_leases(leases, worker, until).await?)
    }

    /// Reads the whole archive of `job` once: every chunk verified, size and SHA-1 computed.
    /// Counts how far it got on `meter`, which [`Services::record_preparation_progress`]
    /// writes out beside it.
    pub async fn prepare_archive(
        &self,
        job: &RestoreJobRecord,
        meter: &PreparationMeter,
    ) -> Result<PreparedArchive, PreparationError> {
        let plan = self.archive_plan(job).await?;
        let expected = plan.len();
        meter.planned.store(expected, Ordering::Relaxed);
        let mut stream = plan.stream(self.blocks.clone(), 0, expected);
        let mut hasher = Sha1::new();
        let mut bytes = 0u64;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(data) => {
                    bytes += data.len() as u64;
                    hasher.update(&data);
                    meter.prepared.store(bytes, Ordering::Relaxed);
                }
                Err(err @ (BlockError::NotFound(_) | BlockError::Corrupt { .. })) => {
                    return Err(PreparationError::Damaged(format!(
                        "the snapshot's data is damaged: {err}"
                    )));
                }
                Err(err) => {
                    return Err(PreparationError::Passing(DomainError::Internal(format!(
                        "block store: {err}"
                    ))))
                }
            }
        }
        if bytes != expected {
            return Err(PreparationError::Damaged(format!(
                "the archive holds {bytes} bytes, its layout {expected}"
            )));
        }
        Ok(PreparedArchive {
            bytes,
            sha1: hex::encode(hasher.finalize()),
        })
    }

    /// Writes out the meters of `worker`'s preparations that moved since their last
    /// record. Figures are advisory: a failure is logged and the preparations go on (a
    /// lost lease stops them through the worker's renewals, and writes nothing here).
    ///
    /// Run beside the preparations, not inside them: a preparation's future waits, not
    /// polled, while the worker records another's outcome, and must not hold a store
    /// connection meanwhile.
    pub async fn record_preparation_progress(
        &self,
        worker: &str,
        meters: &[(JobId, Arc<PreparationMeter>)],
    ) {
        for (id, meter) in meters {
            let planned = meter.planned.load(Ordering::Relaxed);
            let prepared = meter.prepared.load(Ordering::Relaxed);
            if planned == 0 || meter.recorded.swap(prepared + 1, Ordering::Relaxed) == prepared + 1
            {
                continue;
            }
            let recorded = self
                .meta
                .record_preparation_progress(*id, worker, prepared, planned)
                .await;
            if let Err(err) = recorded {
                tracing::warn!(job.id = %id, error = %err, "could not record preparation progress");
            }
        }
    }

    /// Records the outcomes of prepared jobs in one write, each conditional on its claim's
    /// fencing token. Jobs that failed for a passing reason, within their attempts, are left
    /// alone: their lease runs out and they are claimed again. An outcome whose claim was
    /// lost (the lease lapsed and the job was claimed again) is dropped: the newer holder's
    /// state stands.
    pub async fn finish_preparations(
        &self,
        worker: &str,
        done: Vec<Preparation>,
    ) -> DomainResult<()> {
        let outcomes: Vec<(JobLease, PreparedOutcome)> = done
            .into_iter()
            .filter_map(|(claimed, result)| {
                Some((
                    claimed.lease(),
                    self.preparation_outcome(&claimed.job, result)?,
                ))
            })
            .collect();
        if outcomes.is_empty() {
            return Ok(());
        }
        let finished = self.meta.finish_preparations(worker, &outcomes).await?;
        self.agent_news.notify_waiters();
        for ((lease, outcome), finished) in outcomes.iter().zip(finished) {
            if !finished {
                tracing::warn!(
                    job.id = %lease.job,
                    lease.token = lease.token.0,
                    "lost the lease of a restore job before finishing it; dropped its outcome"
                );
            } else if let Some(reason) = &outcome.failure {
                tracing::error!(job.id = %lease.job, reason, "restore job broken");
            } else {
                tracing::info!(job.id = %lease.job, size_bytes = outcome.archive_bytes, "restore job ready");
            }
        }
        Ok(())
    }

    /// What a preparation's result makes of `job`; `None` while a passing failure may yet
    /// go away on a later attempt.
    fn preparation_outcome(
        &self,
        job: &RestoreJobRecord,
        result: Result<PreparedArchive, PreparationError>,
    ) -> Option<PreparedOutcome> {
        tracing::debug!(job.id = %job.id, attempt = job.attempts, "restore job prepared");
        let now = self.clock.now();
        match result {
            Ok(archive) => Some(ready(job, archive, now)),
            Err(PreparationError::Damaged(reason)) => Some(broken(reason, now)),
            Err(PreparationError::Passing(err)) if job.attempts >= MAX_PREPARATION_ATTEMPTS => {
                Some(broken(
                    format!(
                        "preparation failed {} times; last error: {err}",
                        job.attempts
                    ),
                    now,
                ))
            }
            Err(PreparationError::Passing(err)) => {
                tracing::warn!(job.id = %job.id, error = %err, "restore job preparation failed; it will be retried");
                None
            }
        }
    }
}

fn lease_end(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX))
}

/// A prepared job: READY; an HTTP job is also FINISHED and its link's lifetime starts now,
/// an automated one finishes only when the target's agents have applied it.
fn ready(job: &RestoreJobRecord, archive: PreparedArchive, now: i64) -> PreparedOutcome {
    let (status, expires) = match job.method {
        DeliveryMethod::Http {
            expiration_hours, ..
        } => (
            JobStatus::Finished,
            expiration_hours.map(|h| now + i64::from(h) * 3600),
        ),
        DeliveryMethod::Automated { .. } => (JobStatus::InProgress, None),
    };
    PreparedOutcome {
        status,
        delivery_status: DeliveryStatus::Ready,
        archive_bytes: Some(archive.bytes),
        archive_sha1: Some(archive.sha1),
        expires,
        finished_at: (status == JobStatus::Finished).then_some(now),
        failure: None,
    }
}

fn broken(reason: String, now: i64) -> PreparedOutcome {
    PreparedOutcome {
        status: JobStatus::Broken,
        delivery_status: DeliveryStatus::Failed,
        archive_bytes: None,
        archive_sha1: None,
        expires: None,
        finished_at: Some(now),
        failure: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::{TestProject, NOW};
    use crate::ids::{ClusterId, GroupId};
    use crate::meta::conformance::{http_job, replica_set, seed_snapshot, snapshot_of, ts};

    async fn project() -> TestProject {
        let spec = ClusterSpec {
            name: "rs0".into(),
            shards: None,
            fcv: None,
        };
        TestProject::start(spec).await
    }

    fn job(attempts: u32) -> RestoreJobRecord {
        let cluster = replica_set(GroupId::generate(), "c");
        RestoreJobRecord {
            attempts,
            ..http_job(&snapshot_of(&cluster, ts(10, 0), &["rs0"]), NOW - 60)
        }
    }

    fn archive() -> PreparedArchive {
        PreparedArchive {
            bytes: 1024,
            sha1: "ab".repeat(20),
        }
    }

    #[tokio::test]
    async fn progress_is_written_once_laid_out_and_only_by_the_lease_holder() {
        let p = project().await;
        let meta = p.services.meta.clone();
        let cluster = p.services.find_cluster(p.group, p.cluster).await.unwrap();
        let snapshot = seed_snapshot(meta.as_ref(), &cluster, 100).await;
        let job = http_job(&snapshot, NOW - 60);
        meta.insert_jobs(std::slice::from_ref(&job)).await.unwrap();
        let claimed = meta.claim_jobs("w", NOW, NOW + 15, 1).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let meter = Arc::new(PreparationMeter::default());
        let meters = vec![(job.id, meter.clone())];
        let shown = || async { meta.preparation_progress(job.id).await.unwrap().unwrap() };
        p.services.record_preparation_progress("w", &meters).await;
        assert_eq!(shown().await.planned_bytes, None, "nothing laid out yet");
        meter.planned.store(1000, Ordering::Relaxed);
        meter.prepared.store(250, Ordering::Relaxed);
        p.services.record_preparation_progress("w", &meters).await;
        assert_eq!(
            shown().await,
            crate::meta::restore::PreparationProgress {
                prepared_bytes: 250,
                planned_bytes: Some(1000),
            }
        );
        meter.prepared.store(600, Ordering::Relaxed);
        p.services
            .record_preparation_progress("other", &meters)
            .await;
        assert_eq!(
            shown().await.prepared_bytes,
            250,
            "a worker without the lease writes nothing"
        );
    }

    fn passing() -> PreparationError {
        PreparationError::Passing(DomainError::Internal("store unavailable".into()))
    }

    #[tokio::test]
    async fn a_prepared_http_job_finishes_and_its_link_lives_from_now() {
        let p = project().await;
        let outcome = p
            .services
            .preparation_outcome(&job(1), Ok(archive()))
            .expect("decided");
        assert_eq!(outcome.status, JobStatus::Finished);
        assert_eq!(outcome.delivery_status, DeliveryStatus::Ready);
        assert_eq!(outcome.archive_bytes, Some(1024));
        assert_eq!(outcome.expires, Some(NOW + 3600), "expirationHours 1");
        assert_eq!(outcome.finished_at, Some(NOW));
        assert_eq!(outcome.failure, None);
    }

    #[tokio::test]
    async fn a_prepared_automated_job_waits_for_its_agents() {
        let p = project().await;
        let automated = RestoreJobRecord {
            method: DeliveryMethod::Automated {
                target_group: GroupId::generate(),
                target_cluster: ClusterId::generate(),
            },
            ..job(1)
        };
        let outcome = p
            .services
            .preparation_outcome(&automated, Ok(archive()))
            .expect("decided");
        assert_eq!(outcome.status, JobStatus::InProgress);
        assert_eq!(outcome.delivery_status, DeliveryStatus::Ready);
        assert_eq!((outcome.expires, outcome.finished_at), (None, None));
    }

    #[tokio::test]
    async fn damaged_data_breaks_the_job_at_once() {
        let p = project().await;
        let outcome = p
            .services
            .preparation_outcome(&job(1), Err(PreparationError::Damaged("chunk gone".into())))
            .expect("decided");
        assert_eq!(outcome.status, JobStatus::Broken);
        assert_eq!(outcome.delivery_status, DeliveryStatus::Failed);
        assert_eq!(outcome.failure.as_deref(), Some("chunk gone"));
        assert_eq!(outcome.finished_at, Some(NOW));
    }

    #[tokio::test]
    async fn a_passing_failure_is_retried_until_the_last_attempt_breaks_the_job() {
        let p = project().await;
        for attempts in 1..MAX_PREPARATION_ATTEMPTS {
            assert_eq!(
                p.services
                    .preparation_outcome(&job(attempts), Err(passing())),
                None,
                "attempt {attempts} leaves the job to be claimed again"
            );
        }
        let last = p
            .services
            .preparation_outcome(&job(MAX_PREPARATION_ATTEMPTS), Err(passing()))
            .expect("decided");
        assert_eq!(last.status, JobStatus::Broken);
        let reason = last.failure.expect("a reason");
        assert!(
            reason.contains("failed 5 times") && reason.contains("store unavailable"),
            "{reason}"
        );
    }
}
