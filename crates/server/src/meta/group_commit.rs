//! Group commit of restore-job inserts, for every backend.
//!
//! Under a burst of `POST …/restoreJobs` every request's insert used to be a commit of its
//! own: on SQLite one acquisition of its single write lock (writers that found it taken slept
//! in SQLite's busy handler, 1, 2, 5, 10 … ms, which set the creation latency's tail), on
//! PostgreSQL a round trip, a WAL flush and a statement's parse and plan per request. Here the
//! inserts of concurrent requests queue in memory and a writer task writes whatever has queued
//! as one multi-row statement: one commit for the lot. A request is answered only once the
//! statement holding its rows has committed, so a created job is as durable as a lone insert
//! would make it.
//!
//! Each request's rows stay atomic (all or none), as a lone statement would make them: when
//! a combined statement fails, the requests are retried one by one so that only the one at
//! fault sees the error.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::meta::{MetaError, MetaResult};
use crate::model::RestoreJobRecord;

/// What a backend supplies: an atomic insert of some jobs' rows.
#[async_trait]
pub(super) trait JobRows: Send + Sync + 'static {
    /// Inserts `jobs` all or none.
    async fn insert_rows(&self, jobs: &[&RestoreJobRecord]) -> MetaResult<()>;
}

/// How one backend's writer batches.
pub(super) struct Batching {
    /// Rows combined into one statement at most (one request's rows are never split).
    pub max_rows: usize,
    /// Combined statements running at once. SQLite has one write lock, so one; a server
    /// database commits several side by side, and a second statement in flight keeps its
    /// connection busy while the first one's answer travels back.
    pub in_flight: usize,
}

/// Requests waiting for the writer before new ones wait for room.
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<MetaResult<()>>;
type Request = (Vec<RestoreJobRecord>, Reply);

/// The sending side; cloning it is cheap. The writing task ends when every handle is gone.
#[derive(Clone)]
pub(super) struct JobInserter {
    queue: mpsc::Sender<Request>,
}

impl JobInserter {
    /// Starts the writing task on the current Tokio runtime.
    pub(super) fn start<W: JobRows>(writer: W, batching: Batching) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(Arc::new(writer), batching, requests));
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

async fn write_batches<W: JobRows>(
    writer: Arc<W>,
    batching: Batching,
    mut requests: mpsc::Receiver<Request>,
) {
    let in_flight = Arc::new(Semaphore::new(batching.in_flight.max(1)));
    loop {
        // Room for a statement first, then the requests: while every statement is running,
        // new requests queue and make the next batch.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            return;
        };
        let mut rows = first.0.len();
        let mut batch = vec![first];
        while rows < batching.max_rows {
            match requests.try_recv() {
                Ok(next) => {
                    rows += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            write_batch(&*writer, batch).await;
            drop(permit);
        });
    }
}

async fn write_batch<W: JobRows>(writer: &W, batch: Vec<Request>) {
    let combined = if batch.len() == 1 {
        None
    } else {
        let all: Vec<&RestoreJobRecord> = batch.iter().flat_map(|(jobs, _)| jobs).collect();
        Some(writer.insert_rows(&all).await)
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
                let _ = reply.send(writer.insert_rows(&rows).await);
            }
        }
    }
}
