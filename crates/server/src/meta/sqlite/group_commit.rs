//! Group commit of restore-job inserts.
//!
//! SQLite has one write lock per database. Under a burst of `POST …/restoreJobs` every
//! request's insert used to take it on its own, and writers that found it taken slept in
//! SQLite's busy handler (1, 2, 5, 10 … ms), which set the creation latency's tail. Here
//! the inserts of concurrent requests queue in memory and one task writes whatever has
//! queued as one multi-row statement: one lock acquisition and one WAL commit for the lot,
//! and no busy-handler sleeps between inserts.
//!
//! Each request's rows stay atomic (all or none), as a lone statement would make them: when
//! a combined statement fails, the requests are retried one by one so that only the one at
//! fault sees the error.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::meta::{MetaError, MetaResult};
use crate::model::RestoreJobRecord;

/// Rows written by one statement at most (29 bound values each, under SQLite's limit of
/// 32,766 bound parameters).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 256;
/// Requests waiting for the writer before new ones wait for room.
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<MetaResult<()>>;

/// The sending side; cloning it is cheap. The writing task ends when every handle is gone.
#[derive(Clone)]
pub(super) struct JobInserter {
    queue: mpsc::Sender<(Vec<RestoreJobRecord>, Reply)>,
}

impl JobInserter {
    /// Starts the writing task on the current Tokio runtime.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(writer, requests));
        JobInserter { queue }
    }

    /// Inserts `jobs` atomically, together with whatever other requests are waiting.
    pub(super) async fn insert(&self, jobs: Vec<RestoreJobRecord>) -> MetaResult<()> {
        let (reply, answer) = oneshot::channel();
        let stopped = || MetaError::Backend("the job insert queue has stopped".into());
        self.queue
            .send((jobs, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(
    writer: SqlitePool,
    mut requests: mpsc::Receiver<(Vec<RestoreJobRecord>, Reply)>,
) {
    while let Some(first) = requests.recv().await {
        let mut rows = first.0.len();
        let mut batch = vec![first];
        while rows < MAX_ROWS_PER_STATEMENT {
            match requests.try_recv() {
                Ok(next) => {
                    rows += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        write_batch(&writer, batch).await;
    }
}

async fn write_batch(writer: &SqlitePool, batch: Vec<(Vec<RestoreJobRecord>, Reply)>) {
    let combined = if batch.len() == 1 {
        None
    } else {
        let all: Vec<&RestoreJobRecord> = batch.iter().flat_map(|(jobs, _)| jobs).collect();
        Some(super::restore::insert_rows(writer, &all).await)
    };
    match combined {
        Some(Ok(())) => {
            for (_, reply) in batch {
                let _ = reply.send(Ok(()));
            }
        }
        // One request, or a combined statement that failed: each on its own.
        _ => {
            for (jobs, reply) in batch {
                let rows: Vec<&RestoreJobRecord> = jobs.iter().collect();
                let _ = reply.send(super::restore::insert_rows(writer, &rows).await);
            }
        }
    }
}
