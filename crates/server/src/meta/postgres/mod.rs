//! PostgreSQL backend of the metadata store: for deployments that keep their metadata in a
//! database server (its durability, its backups, and one store for several server nodes).
//!
//! Concurrency: transactions run at PostgreSQL's default, READ COMMITTED. A conditional
//! update that is one statement (`UPDATE … WHERE <the expected state>`) is atomic as it
//! stands: a row another transaction changed first is checked against the `WHERE` clause
//! again, in its new state, before it is written. What reads and then decides takes a lock
//! before it reads: the row the decision is about (`FOR UPDATE`), the `orgs` table for
//! bootstrap's "no organization yet", and an advisory lock per oplog stream, whose first
//! push has no row to lock. Job claims skip the rows another claim holds (`FOR UPDATE SKIP
//! LOCKED`) rather than wait for them. Chunk rows are always locked in id order, so two
//! transactions over the same chunks never deadlock.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgPool};

mod accounts;
mod agents;
mod checkpoints;
mod leases;
mod nonces;
mod oplog;
mod restore;
mod sessions;
mod snapshots;

use super::group_commit::{Batching, JobInserter};
use super::{MetaError, MetaResult};

/// Ordered migrations for this backend; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../../../migrations/postgres/0001_accounts.sql"),
    ),
    (
        2,
        include_str!("../../../../../migrations/postgres/0002_snapshots.sql"),
    ),
    (
        3,
        include_str!("../../../../../migrations/postgres/0003_restore_jobs.sql"),
    ),
    (
        4,
        include_str!("../../../../../migrations/postgres/0004_oplog.sql"),
    ),
    (
        5,
        include_str!("../../../../../migrations/postgres/0005_agents.sql"),
    ),
    (
        6,
        include_str!("../../../../../migrations/postgres/0006_checkpoints.sql"),
    ),
    (
        7,
        include_str!("../../../../../migrations/postgres/0007_lease_tokens.sql"),
    ),
    (
        8,
        include_str!("../../../../../migrations/postgres/0008_nonce_uses.sql"),
    ),
    (
        9,
        include_str!("../../../../../migrations/postgres/0009_pack_states.sql"),
    ),
    (
        10,
        include_str!("../../../../../migrations/postgres/0010_snapshot_schedule.sql"),
    ),
    (
        11,
        include_str!("../../../../../migrations/postgres/0011_preparation_progress.sql"),
    ),
    (
        12,
        include_str!("../../../../../migrations/postgres/0012_console_sessions.sql"),
    ),
];

/// The first half of the key of this service's advisory locks: one value per kind of lock,
/// "RWN" and a letter, to stay apart from other programs' locks in a shared database. The
/// second half names what is locked, hashed with the schema, so that deployments in
/// different schemas of one database never wait for each other.
const MIGRATION_LOCKS: i32 = 0x5257_4e4d; // "RWNM"
pub(super) const OPLOG_STREAM_LOCKS: i32 = 0x5257_4e4f; // "RWNO"
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock($1, hashtext(current_schema()))";
const MIGRATION_UNLOCK: &str = "SELECT pg_advisory_unlock($1, hashtext(current_schema()))";

/// Applies the migrations the schema has not seen, each in its own transaction, holding the
/// migration lock throughout: nodes starting together wait for the first to migrate, then
/// find nothing left to do.
async fn migrate(conn: &mut PgConnection) -> MetaResult<()> {
    sqlx::query(MIGRATION_LOCK)
        .bind(MIGRATION_LOCKS)
        .execute(&mut *conn)
        .await?;
    // The lock is the session's: an error below closes the connection, which releases it.
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = conn.begin().await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        (&mut *tx).execute(sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)")
            .bind(version)
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    sqlx::query(MIGRATION_UNLOCK)
        .bind(MIGRATION_LOCKS)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Combined job inserts running at once. One: while it runs the next batch gathers, so
/// batches grow with the load. Two were measured too: the second statement mostly carried
/// a single row, for ~25% more PostgreSQL CPU per creation and no more creations per second
/// (docs/benchmarks.md).
const JOB_INSERTS_IN_FLIGHT: usize = 1;

/// How many pooled connections serve concurrent requests by default.
pub const DEFAULT_POOL_CONNECTIONS: u32 = 16;

pub struct PostgresMetaStore {
    pool: PgPool,
    /// Group commit of the replay ledger, on a connection of its own.
    nonce_recorder: nonces::NonceRecorder,
    /// Group commit of restore jobs, on the pool.
    job_inserter: JobInserter,
    parts_cache: snapshots::PartsCache,
}

impl PostgresMetaStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/db`) and
    /// applies pending migrations.
    pub async fn connect(url: &str) -> MetaResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| MetaError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        Self::open(options, DEFAULT_POOL_CONNECTIONS).await
    }

    /// Opens a pool of at most `max_connections` with `options` (which may set the
    /// `search_path` the store lives in) and applies pending migrations.
    pub async fn open(options: PgConnectOptions, max_connections: u32) -> MetaResult<Self> {
        // Migrations run on a connection of their own, closed before the pool opens, so no
        // pooled connection holds statements prepared against the schema before a change.
        let mut conn = options.connect().await?;
        migrate(&mut conn).await?;
        conn.close().await?;
        // Its own connection, opened when first needed: the ledger's writes commit without
        // waiting for the WAL flush, and nothing else may (see `nonces`).
        let ledger_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        let job_inserter = JobInserter::start(
            pool.clone(),
            Batching {
                max_rows: restore::JOBS_PER_BATCH,
                in_flight: JOB_INSERTS_IN_FLIGHT,
            },
        );
        Ok(Self {
            pool,
            nonce_recorder: nonces::NonceRecorder::start(ledger_pool),
            job_inserter,
            parts_cache: snapshots::PartsCache::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

// The contracts of the area traits are checked for every backend by the conformance suite;
// what is left here is how this backend migrates. It needs a server: it runs when
// REWIND_TEST_DATABASE_URL names one, as the suite does.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::conformance::DATABASE_URL_VAR;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn nodes_opening_an_empty_schema_together_migrate_it_once() {
        let url = match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if url.starts_with("postgres") => url,
            _ => {
                eprintln!("{DATABASE_URL_VAR} names no PostgreSQL server: nothing to migrate");
                return;
            }
        };
        let server = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        let schema = format!("rewind_migrate_{}", uuid::Uuid::new_v4().simple());
        let mut admin = server.connect().await.expect("connect");
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        let options = server.clone().options([("search_path", schema.as_str())]);
        let nodes: Vec<_> = (0..4)
            .map(|_| tokio::spawn(PostgresMetaStore::open(options.clone(), 2)))
            .collect();
        for node in nodes {
            let store = node
                .await
                .expect("a node's task")
                .expect("every node opens");
            store.pool().close().await;
        }
        let applied: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT version FROM {schema}.schema_migrations ORDER BY version"
        ))
        .fetch_all(&mut admin)
        .await
        .expect("read the migrations");
        let expected: Vec<i64> = MIGRATIONS.iter().map(|(version, _)| *version).collect();
        assert_eq!(applied, expected, "each migration applied once");
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .expect("drop schema");
    }
}
