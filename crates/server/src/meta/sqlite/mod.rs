//! SQLite backend of the metadata store: the embedded default, one file in the data directory.
//!
//! Concurrency: WAL mode lets readers proceed while one writer commits; `busy_timeout` makes
//! concurrent writers queue instead of failing, and write transactions begin `IMMEDIATE`
//! so that they queue too. `synchronous=FULL` syncs the write-ahead log at every commit, so
//! a committed transaction survives a power cut, not only a process crash: a committed
//! import must not lose the part rows that make its snapshot complete (the block objects
//! they reference are durable before the commit; see `docs/decisions.md`, "Durability").
//! Group commit of restore jobs amortises the extra sync over concurrent requests.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, SqlitePool};

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
        include_str!("../../../../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        include_str!("../../../../../migrations/sqlite/0002_snapshots.sql"),
    ),
    (
        3,
        include_str!("../../../../../migrations/sqlite/0003_restore_jobs.sql"),
    ),
    (
        4,
        include_str!("../../../../../migrations/sqlite/0004_restore_job_claim_index.sql"),
    ),
    (
        5,
        include_str!("../../../../../migrations/sqlite/0005_manifest_names.sql"),
    ),
    (
        6,
        include_str!("../../../../../migrations/sqlite/0006_packs.sql"),
    ),
    (
        7,
        include_str!("../../../../../migrations/sqlite/0007_oplog.sql"),
    ),
    (
        8,
        include_str!("../../../../../migrations/sqlite/0008_agents.sql"),
    ),
    (
        10,
        include_str!("../../../../../migrations/sqlite/0010_checkpoints.sql"),
    ),
    (
        11,
        include_str!("../../../../../migrations/sqlite/0011_download_resume.sql"),
    ),
    (
        12,
        include_str!("../../../../../migrations/sqlite/0012_lease_tokens.sql"),
    ),
    (
        13,
        include_str!("../../../../../migrations/sqlite/0013_nonce_uses.sql"),
    ),
    (
        14,
        include_str!("../../../../../migrations/sqlite/0014_pack_states.sql"),
    ),
    (
        15,
        include_str!("../../../../../migrations/sqlite/0015_snapshot_schedule.sql"),
    ),
    (
        16,
        include_str!("../../../../../migrations/sqlite/0016_preparation_progress.sql"),
    ),
    (
        17,
        include_str!("../../../../../migrations/sqlite/0017_console_sessions.sql"),
    ),
];

/// Applies the migrations `conn` has not seen, each in its own transaction.
async fn migrate(conn: &mut SqliteConnection) -> MetaResult<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)")
            .bind(version)
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// How many pooled connections serve concurrent requests (reads run in parallel under WAL).
const POOL_CONNECTIONS: u32 = 8;

pub struct SqliteMetaStore {
    /// Reads, and the writes of rarely written tables.
    pool: SqlitePool,
    /// One connection for the frequent writes (restore jobs) and every write transaction:
    /// writers wait their turn in the pool's queue instead of sleeping in SQLite's busy
    /// handler, whose 1–100 ms naps made the latency tail of job creation.
    writer: SqlitePool,
    job_inserter: JobInserter,
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| MetaError::Backend(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // Migrations run on a connection of their own, closed before the pool opens. A
        // pooled connection that had read the schema before a migration changed a table
        // would expand `SELECT *` against its stale copy, and sqlx keeps the column list of
        // that first preparation: the statement then fails on every later run.
        let mut conn = options.connect().await?;
        migrate(&mut conn).await?;
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let job_inserter = JobInserter::start(
            writer.clone(),
            Batching {
                max_rows: restore::MAX_ROWS_PER_STATEMENT,
                // One write lock: a second statement would only wait for it.
                in_flight: 1,
            },
        );
        Ok(Self {
            pool,
            writer,
            job_inserter,
        })
    }

    /// The underlying pool, for the other tables' modules of this backend.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single connection of frequent writes and write transactions (see the field).
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Begins a write transaction holding the write lock from its first statement. A
    /// deferred `BEGIN` that reads and then writes fails at once with `SQLITE_BUSY` when
    /// another connection committed in between (`busy_timeout` cannot wait that out).
    pub async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::SqliteMetaStore;
    use crate::ids::{ClusterId, GroupId, OrgId};

    /// A store in `dir` holding one organization, project and cluster (of `type_name`,
    /// replica set `rs0`): the rows other tables refer to.
    pub async fn store_with_cluster(
        dir: &std::path::Path,
        type_name: &str,
    ) -> (SqliteMetaStore, GroupId, ClusterId) {
        let store = SqliteMetaStore::open(&dir.join("meta.sqlite"))
            .await
            .expect("open");
        let (org, group, cluster) = (
            OrgId::generate(),
            GroupId::generate(),
            ClusterId::generate(),
        );
        let account_rows = [
            ("INSERT INTO orgs (id, name, created) VALUES (?, 'o', 0)", vec![org.to_hex()]),
            (
                "INSERT INTO projects (id, org_id, name, created) VALUES (?, ?, 'p', 0)",
                vec![group.to_hex(), org.to_hex()],
            ),
            (
                "INSERT INTO clusters (id, project_id, cluster_name, type_name, replica_set_name, fcv, created) \
                 VALUES (?, ?, 'c', ?, 'rs0', '4.0', 0)",
                vec![cluster.to_hex(), group.to_hex(), type_name.to_owned()],
            ),
        ];
        for (sql, binds) in account_rows {
            let query = binds.into_iter().fold(sqlx::query(sql), |q, b| q.bind(b));
            query.execute(store.pool()).await.expect("account rows");
        }
        (store, group, cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_connection_syncs_each_commit_to_the_write_ahead_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
            .await
            .expect("open");
        for pool in [store.pool(), store.writer()] {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .expect("journal mode");
            assert_eq!(mode, "wal");
            // 2 is FULL: the log is synced at every commit, not only at checkpoints.
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .expect("synchronous");
            assert_eq!(synchronous, 2);
        }
    }
}
