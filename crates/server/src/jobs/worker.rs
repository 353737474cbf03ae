//! The restore worker: claims jobs waiting for preparation, holds their leases while the
//! domain prepares them (`domain::restore::preparation`), and hands the outcomes back to
//! be recorded. It decides nothing about a job; it only schedules.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use super::{sleep_or_shutdown, Shutdown};
use crate::domain::restore::preparation::{
    PreparationMeter, PREPARATION_LEASE, PROGRESS_RECORD_INTERVAL,
};
use crate::domain::{DomainError, Services};
use crate::ids::JobId;

/// How often a lease is renewed while preparing (well within [`PREPARATION_LEASE`]).
const LEASE_RENEWAL: Duration = Duration::from_secs(PREPARATION_LEASE.as_secs() / 3);
/// How often the worker looks for jobs when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Jobs claimed at once.
const CLAIM_BATCH: u32 = 64;
/// Jobs of a batch prepared concurrently (each reads its archive front to back).
const PREPARED_AT_ONCE: usize = 4;

pub struct RestoreWorker {
    services: Arc<Services>,
    name: String,
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
        let jobs = self
            .services
            .claim_preparations(&self.name, CLAIM_BATCH)
            .await?;
        if jobs.is_empty() {
            return Ok(false);
        }
        let ids: Vec<_> = jobs.iter().map(|job| job.id).collect();
        let meters: Vec<(JobId, Arc<PreparationMeter>)> =
            ids.iter().map(|id| (*id, Arc::default())).collect();
        let mut prepared = futures::stream::iter(jobs.into_iter().zip(meters.clone()))
            .map(|(job, (_, meter))| async move {
                let result = self.services.prepare_archive(&job, &meter).await;
                (job, result)
            })
            .buffer_unordered(PREPARED_AT_ONCE);
        let work = async {
            while let Some(first) = prepared.next().await {
                let mut done = vec![first];
                while let Some(Some(more)) = prepared.next().now_or_never() {
                    done.push(more);
                }
                self.services.finish_preparations(&self.name, done).await?;
            }
            Ok::<_, DomainError>(())
        };
        tokio::select! {
            result = work => result?,
            () = self.keep_leases(&ids) => tracing::warn!("lost the leases of a batch of restore jobs; they will be prepared again"),
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

    /// Renews the leases of a claimed batch until dropped; returns when none is held any
    /// more (or the store fails), which stops the batch.
    async fn keep_leases(&self, ids: &[JobId]) {
        loop {
            tokio::time::sleep(LEASE_RENEWAL).await;
            match self
                .services
                .renew_preparation_leases(ids, &self.name)
                .await
            {
                Ok(held) if held > 0 => {}
                _ => return,
            }
        }
    }
}
