//! PostgreSQL implementation of [`NonceMeta`]: group commit of the replay ledger's inserts.
//!
//! Every authenticated request of every node records one use, so this is the store's most
//! frequent write. The uses of concurrent requests queue in memory and one task writes
//! whatever has queued as one statement (`INSERT … SELECT FROM UNNEST … ON CONFLICT DO
//! NOTHING RETURNING`): one round trip and one commit for the lot, each request learning
//! from the returned keys whether its use was the first. While a statement runs, the next
//! batch gathers, so the batch grows with the load and the round trips per request fall.
//!
//! The task's connection commits with `synchronous_commit = off`: a commit does not wait
//! for its WAL record to reach the disk (PostgreSQL writes it within three
//! `wal_writer_delay`s, 0.6 s by default). A database crash may thus forget the uses of its
//! last moments, which reopens those headers to one replay each until their nonces expire;
//! waiting for a WAL flush on every batch would set the latency of every authenticated
//! request by the disk instead. Nothing but ledger rows is written on that connection.
//!
//! The same task forgets expired uses every [`PURGE_INTERVAL`], in bulk (a range of the
//! key, which leads with the expiry), never on a request's path.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::PostgresMetaStore;
use crate::meta::{MetaError, MetaResult, NonceMeta, NonceUse};
use crate::model::UnixSeconds;

/// Uses written by one statement at most.
const MAX_USES_PER_STATEMENT: usize = 4096;
/// Requests waiting for the writer before new ones wait for room.
const QUEUE_DEPTH: usize = 8192;
/// How often the writing task forgets expired uses.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

const INSERT_USES: &str = "INSERT INTO nonce_uses (expires, tag, nc) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) \
     ON CONFLICT DO NOTHING RETURNING expires, tag, nc";
const PURGE_USES: &str = "DELETE FROM nonce_uses WHERE expires < $1";

type Pending = (NonceUse, oneshot::Sender<MetaResult<bool>>);

/// The sending side; the writing task ends when the store is dropped.
pub(super) struct NonceRecorder {
    queue: mpsc::Sender<Pending>,
}

impl NonceRecorder {
    /// Starts the writing task on the current Tokio runtime, writing through `pool` (one
    /// connection, committing asynchronously: see the module's comment).
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(pool, requests));
        NonceRecorder { queue }
    }

    async fn record(&self, nonce_use: NonceUse) -> MetaResult<bool> {
        let (reply, answer) = oneshot::channel();
        let stopped = || MetaError::Backend("the nonce ledger's queue has stopped".into());
        self.queue
            .send((nonce_use, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(pool: PgPool, mut requests: mpsc::Receiver<Pending>) {
    let mut purge =
        tokio::time::interval_at(tokio::time::Instant::now() + PURGE_INTERVAL, PURGE_INTERVAL);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            first = requests.recv() => {
                let Some(first) = first else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_USES_PER_STATEMENT {
                    match requests.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                write_batch(&pool, batch).await;
            }
            _ = purge.tick() => {
                if let Err(err) = purge_expired(&pool, chrono::Utc::now().timestamp()).await {
                    tracing::warn!(error = %err, "could not forget expired nonce uses");
                }
            }
        }
    }
}

async fn write_batch(pool: &PgPool, batch: Vec<Pending>) {
    // The same header twice in one batch: only its first request may win. Sorted, so two
    // nodes' batches holding the same uses take their key locks in one order and cannot
    // deadlock (a replay sent to both at once).
    let mut uses: Vec<NonceUse> = batch.iter().map(|(nonce_use, _)| *nonce_use).collect();
    uses.sort_unstable_by_key(|u| (u.expires, u.tag, u.nc));
    uses.dedup();
    let column = |f: fn(&NonceUse) -> i64| uses.iter().map(f).collect::<Vec<i64>>();
    let inserted: Result<Vec<(i64, i64, i64)>, sqlx::Error> = sqlx::query_as(INSERT_USES)
        .bind(column(|u| u.expires))
        .bind(column(|u| u.tag))
        .bind(column(|u| i64::from(u.nc)))
        .fetch_all(pool)
        .await;
    match inserted {
        Ok(rows) => {
            let mut first: HashSet<NonceUse> = rows
                .into_iter()
                .filter_map(|(expires, tag, nc)| {
                    let nc = u32::try_from(nc).ok()?;
                    Some(NonceUse { expires, tag, nc })
                })
                .collect();
            for (nonce_use, reply) in batch {
                let _ = reply.send(Ok(first.remove(&nonce_use)));
            }
        }
        Err(err) => {
            let err = MetaError::from(err);
            for (_, reply) in batch {
                let _ = reply.send(Err(same_error(&err)));
            }
        }
    }
}

/// `err` again, for each request of a failed batch (the error type is not `Clone`).
fn same_error(err: &MetaError) -> MetaError {
    match err {
        MetaError::Conflict(m) => MetaError::Conflict(m.clone()),
        MetaError::Corrupt(m) => MetaError::Corrupt(m.clone()),
        MetaError::StorageFull(m) => MetaError::StorageFull(m.clone()),
        MetaError::Backend(m) => MetaError::Backend(m.clone()),
    }
}

async fn purge_expired(pool: &PgPool, now: UnixSeconds) -> MetaResult<u64> {
    let done = sqlx::query(PURGE_USES).bind(now).execute(pool).await?;
    Ok(done.rows_affected())
}

#[async_trait]
impl NonceMeta for PostgresMetaStore {
    async fn record_nonce_use(&self, nonce_use: NonceUse) -> MetaResult<bool> {
        self.nonce_recorder.record(nonce_use).await
    }

    async fn purge_nonce_uses(&self, now: UnixSeconds) -> MetaResult<u64> {
        purge_expired(self.pool(), now).await
    }
}
