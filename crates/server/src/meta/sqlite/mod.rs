//! SQLite backend of the metadata store: the embedded default, one file in the data directory.
//!
//! Concurrency: WAL mode lets readers proceed while one writer commits; `busy_timeout` makes
//! concurrent writers queue instead of failing, and write transactions begin `IMMEDIATE`
//! so that they queue too. `synchronous=NORMAL` keeps every committed
//! transaction across a process crash; a power cut may roll back the last few commits, never
//! corrupt the file (PostgreSQL is the backend for stricter durability needs).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, SqlitePool};

mod agents;
mod checkpoints;
mod group_commit;
mod oplog;
mod restore;
mod snapshots;

use super::{AccountMeta, BootstrapRecords, GroupScope, MetaError, MetaResult};
use crate::ids::{ApiKeyId, ClusterId, GroupId, OrgId};
use crate::model::{
    AccessEntry, ApiKeyRecord, ClusterRecord, ClusterType, GroupRecord, OrgRecord, PageOf,
    PageRequest, Role, RoleGrant,
};

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
    job_inserter: group_commit::JobInserter,
}

impl From<sqlx::Error> for MetaError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                MetaError::Conflict(db.message().to_owned())
            }
            _ => MetaError::Backend(err.to_string()),
        }
    }
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| MetaError::Backend(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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
        let job_inserter = group_commit::JobInserter::start(writer.clone());
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

    async fn load_key_details(&self, mut key: ApiKeyRecord) -> MetaResult<ApiKeyRecord> {
        let id = key.id.to_hex();
        let roles = sqlx::query(
            "SELECT project_id, role_name FROM api_key_roles WHERE key_id = ? ORDER BY rowid",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?;
        key.roles = roles.iter().map(role_from_row).collect::<MetaResult<_>>()?;
        let access = sqlx::query(
            "SELECT cidr, created FROM api_key_access WHERE key_id = ? ORDER BY created, cidr",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?;
        key.access_list = access
            .iter()
            .map(access_from_row)
            .collect::<MetaResult<_>>()?;
        Ok(key)
    }
}

pub(crate) fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Corrupt(format!("{what}: {value:?}"))
}

macro_rules! parse_id {
    ($ty:ty, $text:expr) => {{
        let text: String = $text;
        <$ty>::parse(&text).ok_or_else(|| corrupt(stringify!($ty), &text))
    }};
}

fn org_from_row(row: &SqliteRow) -> MetaResult<OrgRecord> {
    Ok(OrgRecord {
        id: parse_id!(OrgId, row.try_get("id")?)?,
        name: row.try_get("name")?,
        created: row.try_get("created")?,
    })
}

fn group_from_row(row: &SqliteRow) -> MetaResult<GroupRecord> {
    Ok(GroupRecord {
        id: parse_id!(GroupId, row.try_get("id")?)?,
        org_id: parse_id!(OrgId, row.try_get("org_id")?)?,
        name: row.try_get("name")?,
        created: row.try_get("created")?,
    })
}

fn key_from_row(row: &SqliteRow) -> MetaResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse_id!(ApiKeyId, row.try_get("id")?)?,
        org_id: parse_id!(OrgId, row.try_get("org_id")?)?,
        public_key: row.try_get("public_key")?,
        desc: row.try_get("description")?,
        digest_ha1: row.try_get("digest_ha1")?,
        created: row.try_get("created")?,
        roles: Vec::new(),
        access_list: Vec::new(),
    })
}

fn role_from_row(row: &SqliteRow) -> MetaResult<RoleGrant> {
    let project: Option<String> = row.try_get("project_id")?;
    let name: String = row.try_get("role_name")?;
    Ok(RoleGrant {
        group_id: match project {
            Some(p) => Some(parse_id!(GroupId, p)?),
            None => None,
        },
        role: Role::parse(&name).ok_or_else(|| corrupt("role", &name))?,
    })
}

fn access_from_row(row: &SqliteRow) -> MetaResult<AccessEntry> {
    let cidr: String = row.try_get("cidr")?;
    Ok(AccessEntry {
        cidr: cidr.parse().map_err(|_| corrupt("cidr", &cidr))?,
        created: row.try_get("created")?,
    })
}

fn cluster_from_row(row: &SqliteRow) -> MetaResult<ClusterRecord> {
    let type_name: String = row.try_get("type_name")?;
    let parent: Option<String> = row.try_get("parent_id")?;
    Ok(ClusterRecord {
        id: parse_id!(ClusterId, row.try_get("id")?)?,
        group_id: parse_id!(GroupId, row.try_get("project_id")?)?,
        cluster_name: row.try_get("cluster_name")?,
        type_name: ClusterType::parse(&type_name).ok_or_else(|| corrupt("typeName", &type_name))?,
        replica_set_name: row.try_get("replica_set_name")?,
        shard_name: row.try_get("shard_name")?,
        parent_id: match parent {
            Some(p) => Some(parse_id!(ClusterId, p)?),
            None => None,
        },
        fcv: row.try_get("fcv")?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        created: row.try_get("created")?,
    })
}

pub(crate) fn page_limit(page: PageRequest) -> (i64, i64) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (clamp(page.limit), clamp(page.offset))
}

async fn insert_key_tx(tx: &mut sqlx::SqliteConnection, key: &ApiKeyRecord) -> MetaResult<()> {
    let id = key.id.to_hex();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, public_key, description, digest_ha1, created) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(key.org_id.to_hex())
    .bind(&key.public_key)
    .bind(&key.desc)
    .bind(&key.digest_ha1)
    .bind(key.created)
    .execute(&mut *tx)
    .await?;
    for grant in &key.roles {
        sqlx::query("INSERT INTO api_key_roles (key_id, project_id, role_name) VALUES (?, ?, ?)")
            .bind(&id)
            .bind(grant.group_id.map(|g| g.to_hex()))
            .bind(grant.role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    insert_access_tx(tx, key.id, &key.access_list).await
}

async fn insert_access_tx(
    tx: &mut sqlx::SqliteConnection,
    key: ApiKeyId,
    entries: &[AccessEntry],
) -> MetaResult<()> {
    for entry in entries {
        sqlx::query("INSERT INTO api_key_access (key_id, cidr, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(key.to_hex())
            .bind(entry.cidr.to_string())
            .bind(entry.created)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_group_tx(tx: &mut sqlx::SqliteConnection, group: &GroupRecord) -> MetaResult<()> {
    sqlx::query("INSERT INTO projects (id, org_id, name, created) VALUES (?, ?, ?, ?)")
        .bind(group.id.to_hex())
        .bind(group.org_id.to_hex())
        .bind(&group.name)
        .bind(group.created)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl AccountMeta for SqliteMetaStore {
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> MetaResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value_hex) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(hex::encode(&fresh))
        .execute(&self.pool)
        .await?;
        let value: String =
            sqlx::query_scalar("SELECT value_hex FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        hex::decode(&value).map_err(|_| corrupt("secret", name))
    }

    async fn bootstrap(&self, records: &BootstrapRecords) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO orgs (id, name, created) VALUES (?, ?, ?)")
            .bind(records.org.id.to_hex())
            .bind(&records.org.name)
            .bind(records.org.created)
            .execute(&mut *tx)
            .await?;
        insert_group_tx(&mut tx, &records.group).await?;
        insert_key_tx(&mut tx, &records.key).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_org(&self, id: OrgId) -> MetaResult<Option<OrgRecord>> {
        let row = sqlx::query("SELECT id, name, created FROM orgs WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn insert_group(&self, group: &GroupRecord) -> MetaResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_group_tx(&mut conn, group).await
    }

    async fn get_group(&self, id: GroupId) -> MetaResult<Option<GroupRecord>> {
        let row = sqlx::query("SELECT id, org_id, name, created FROM projects WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn list_groups(
        &self,
        scope: &GroupScope,
        page: PageRequest,
    ) -> MetaResult<PageOf<GroupRecord>> {
        // Scopes hold a handful of ids, so binding them into IN lists stays small.
        let orgs: Vec<String> = scope.org_ids.iter().map(|o| o.to_hex()).collect();
        let groups: Vec<String> = scope.group_ids.iter().map(|g| g.to_hex()).collect();
        let placeholders = |n: usize| {
            if n == 0 {
                "NULL".to_owned()
            } else {
                vec!["?"; n].join(", ")
            }
        };
        let filter = format!(
            "FROM projects WHERE org_id IN ({}) OR id IN ({})",
            placeholders(orgs.len()),
            placeholders(groups.len())
        );
        let count_sql = format!("SELECT COUNT(*) {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for v in orgs.iter().chain(&groups) {
            count = count.bind(v);
        }
        let total = count.fetch_one(&self.pool).await?;
        let list_sql =
            format!("SELECT id, org_id, name, created {filter} ORDER BY id LIMIT ? OFFSET ?");
        let mut list = sqlx::query(&list_sql);
        for v in orgs.iter().chain(&groups) {
            list = list.bind(v);
        }
        let (limit, offset) = page_limit(page);
        let rows = list.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok(PageOf {
            items: rows.iter().map(group_from_row).collect::<MetaResult<_>>()?,
            total: total as u64,
        })
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_key_tx(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_api_key_by_public(&self, public_key: &str) -> MetaResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE public_key = ?")
            .bind(public_key)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.load_key_details(key_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ? AND org_id = ?")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.load_key_details(key_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn list_api_keys(
        &self,
        org: OrgId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ApiKeyRecord>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE org_id = ?")
            .bind(org.to_hex())
            .fetch_one(&self.pool)
            .await?;
        let (limit, offset) = page_limit(page);
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE org_id = ? ORDER BY id LIMIT ? OFFSET ?")
                .bind(org.to_hex())
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.load_key_details(key_from_row(row)?).await?);
        }
        Ok(PageOf {
            items,
            total: total as u64,
        })
    }

    async fn delete_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND org_id = ?")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_access_entries(&self, key: ApiKeyId, entries: &[AccessEntry]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_access_tx(&mut tx, key, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_access_entry(&self, key: ApiKeyId, cidr: &ipnet::IpNet) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_key_access WHERE key_id = ? AND cidr = ?")
            .bind(key.to_hex())
            .bind(cidr.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_clusters(&self, clusters: &[ClusterRecord]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for c in clusters {
            sqlx::query(
                "INSERT INTO clusters (id, project_id, cluster_name, type_name, replica_set_name, shard_name, parent_id, fcv, last_heartbeat, created) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(c.id.to_hex())
            .bind(c.group_id.to_hex())
            .bind(&c.cluster_name)
            .bind(c.type_name.as_str())
            .bind(&c.replica_set_name)
            .bind(&c.shard_name)
            .bind(c.parent_id.map(|p| p.to_hex()))
            .bind(&c.fcv)
            .bind(c.last_heartbeat)
            .bind(c.created)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_clusters(
        &self,
        group: GroupId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ClusterRecord>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clusters WHERE project_id = ?")
            .bind(group.to_hex())
            .fetch_one(&self.pool)
            .await?;
        let (limit, offset) = page_limit(page);
        let rows =
            sqlx::query("SELECT * FROM clusters WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?")
                .bind(group.to_hex())
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
        Ok(PageOf {
            items: rows
                .iter()
                .map(cluster_from_row)
                .collect::<MetaResult<_>>()?,
            total: total as u64,
        })
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
