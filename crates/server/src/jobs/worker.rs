//! The restore worker: claims jobs waiting for preparation, holds their leases while the
//! domain prepares them (`domain::restore::preparation`), and hands the outcomes back to
//! be recorded. It decides nothing about a job; it only schedules.
//!
//! Every claim carries a fencing token, and every write the worker makes for a job names
//! it: a worker that stalled past its lease (and whose job another node claimed) finds its
//! renewals and its outcome refused, drops the job and says so in the log.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use super::{sleep_or_shutdown, Shutdown};
use crate::domain::restore::preparation::{PreparationMeter, PROGRESS_RECORD_INTERVAL};
use crate::domain::{DomainError, Services};
use crate::ids::JobId;
use crate::meta::restore::{ClaimedJob, JobLease};

/// How often the worker looks for jobs when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Jobs claimed at once.
const CLAIM_BATCH: u32 = 64;
/// Jobs of a batch prepared concurrently (each reads its archive front to back).
const PREPARED_AT_ONCE: usize = 4;

pub struct RestoreWorker {
    services: Arc<Services>,
    name: String,
    /// How long a claim lasts without renewal; renewed every third of it.
    lease: Duration,
}

impl RestoreWorker {
    pub fn new(services: Arc<Services>, name: String, lease: Duration) -> Self {
        RestoreWorker {
            services,
            name,
            lease,
        }
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
        let jobs = self
            .services
            .claim_preparations(&self.name, self.lease, CLAIM_BATCH)
            .await?;
        if jobs.is_empty() {
            return Ok(false);
        }
        let held = Mutex::new(jobs.iter().map(ClaimedJob::lease).collect::<HashSet<_>>());
        let meters: Vec<(JobId, Arc<PreparationMeter>)> = jobs
            .iter()
            .map(|claimed| (claimed.job.id, Arc::default()))
            .collect();
        let mut prepared = futures::stream::iter(jobs.into_iter().zip(meters.clone()))
            .filter(|(claimed, _)| std::future::ready(is_held(&held, &claimed.lease())))
            .map(|(claimed, (_, meter))| async move {
                let result = self.services.prepare_archive(&claimed.job, &meter).await;
                (claimed, result)
            })
            .buffer_unordered(PREPARED_AT_ONCE);
        let work = async {
            while let Some(first) = prepared.next().await {
                let mut done = vec![first];
                while let Some(Some(more)) = prepared.next().now_or_never() {
                    done.push(more);
                }
                // A job whose renewal was refused is another node's now: nothing to write.
                done.retain(|(claimed, _)| is_held(&held, &claimed.lease()));
                for (claimed, _) in &done {
                    release(&held, &claimed.lease());
                }
                self.services.finish_preparations(&self.name, done).await?;
            }
            Ok::<_, DomainError>(())
        };
        tokio::select! {
            result = work => result?,
            () = self.keep_leases(&held) => tracing::warn!("stopped a batch of restore jobs whose leases could not be renewed; they will be prepared again"),
            () = self.record_progress(&meters) => {}
        }
        Ok(true)
    }

    /// Writes out how far the batch's preparations got, until dropped.
    async fn record_progress(&self, meters: &[(JobId, Arc<PreparationMeter>)]) {
        loop {
            self.services
                .record_preparation_progress(&self.name, meters)
                .await;
            tokio::time::sleep(PROGRESS_RECORD_INTERVAL).await;
        }
    }

    /// Renews the leases still `held` until dropped, forgetting those the store refused.
    /// Returns only when the store fails, which stops the batch: its leases run out and
    /// the jobs are claimed again. (Once none is held it just waits: outcomes being recorded
    /// must not be cut off.)
    async fn keep_leases(&self, held: &Mutex<HashSet<JobLease>>) {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let leases: Vec<JobLease> = lock(held).iter().copied().collect();
            if leases.is_empty() {
                // Every outcome is being recorded: nothing left to keep, wait for the batch.
                std::future::pending::<()>().await;
            }
            let renewed = match self
                .services
                .renew_preparation_leases(&leases, &self.name, self.lease)
                .await
            {
                Ok(renewed) => renewed.into_iter().collect::<HashSet<JobId>>(),
                Err(err) => {
                    tracing::error!(error = %err, "could not renew the leases of restore jobs");
                    return;
                }
            };
            let mut held = lock(held);
            for lost in leases.iter().filter(|l| !renewed.contains(&l.job)) {
                // Still in `held` means its outcome is not recorded yet: it was claimed again.
                if held.remove(lost) {
                    tracing::warn!(
                        job.id = %lost.job,
                        lease.token = lost.token.0,
                        "lost the lease of a restore job (claimed again elsewhere); dropping it"
                    );
                }
            }
        }
    }
}

fn lock(held: &Mutex<HashSet<JobLease>>) -> std::sync::MutexGuard<'_, HashSet<JobLease>> {
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_held(held: &Mutex<HashSet<JobLease>>, lease: &JobLease) -> bool {
    lock(held).contains(lease)
}

fn release(held: &Mutex<HashSet<JobLease>>, lease: &JobLease) {
    lock(held).remove(lease);
}
