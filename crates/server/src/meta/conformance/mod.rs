//! The metadata store's conformance suite: every contract the area traits' doc comments
//! promise, written once against the [`MetaStore`] trait object and run against the backend
//! that `REWIND_TEST_DATABASE_URL` names (the model is garage's per-engine `test_suite(db)`
//! and kopia's `blobtesting/verify.go`).
//!
//! Each area's file holds its contracts as plain `async fn`s taking `&dyn MetaStore` (or an
//! `Arc` of it, for the ones that race tasks against each other), and a `tests` module whose
//! `#[tokio::test]` wrappers [`contract_tests!`] generates: each wrapper opens a
//! [`fresh_store`] and calls its contract. A second backend runs the very same functions;
//! it only needs an arm in [`fresh_store`].
//!
//! Contracts seed their data through trait methods only, never raw SQL, so that they hold
//! for any backend. What depends on one backend's internals (migrations, pragmas, cascades,
//! group commit) stays in that backend's own tests.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::ids::{ApiKeyId, ClusterId, GroupId, JobId, OrgId, SnapshotId};
use crate::meta::{BootstrapRecords, MetaError, MetaStore, PostgresMetaStore, SqliteMetaStore};
use crate::model::{
    ApiKeyRecord, ClusterRecord, ClusterType, DeliveryMethod, DeliveryStatus, GroupRecord,
    JobStatus, OplogTs, OrgRecord, PageRequest, RestoreJobRecord, Role, RoleGrant,
    SnapshotPartRecord, SnapshotRecord, UnixSeconds,
};

/// Generates one `#[tokio::test]` per contract of the enclosing area (`super::name`), each
/// with a fresh store. Contracts listed after `concurrent:` take an `Arc<dyn MetaStore>` and
/// run on a multi-thread runtime, so the tasks they spawn really run at the same time.
macro_rules! contract_tests {
    (concurrent: $($contract:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let store = $crate::meta::conformance::fresh_store().await;
                super::$contract(store.shared()).await;
                store.remove().await;
            }
        )*
    };
    ($($contract:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $contract() {
                let store = $crate::meta::conformance::fresh_store().await;
                super::$contract(store.meta()).await;
                store.remove().await;
            }
        )*
    };
}

mod accounts;
mod agents;
mod checkpoints;
mod downloads;
mod leases;
mod nonces;
mod oplog;
mod restore;
mod sessions;
mod snapshots;

/// Names the backend the suite runs against, as a database URL; unset means `sqlite:`.
pub const DATABASE_URL_VAR: &str = "REWIND_TEST_DATABASE_URL";

/// One test's own, empty metadata store, and whatever it lives in.
pub struct TestStore {
    // Declared first so that it is dropped before the place it lives in.
    meta: Arc<dyn MetaStore>,
    _home: StoreHome,
}

/// Where a test's store lives; dropping it removes the store's data.
enum StoreHome {
    Directory { _dir: tempfile::TempDir },
    Schema { schema: Box<TestSchema> },
}

impl TestStore {
    pub fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    /// A handle tasks can own, for the contracts that race several callers.
    pub fn shared(&self) -> Arc<dyn MetaStore> {
        self.meta.clone()
    }

    /// Removes the store once its test has passed. (A failed test leaves a PostgreSQL
    /// schema behind, harmlessly: its name is unique, and it shows what the test left.)
    pub async fn remove(self) {
        let TestStore { meta, _home: home } = self;
        drop(meta);
        if let StoreHome::Schema { schema } = home {
            schema.drop_schema().await;
        }
    }
}

/// A fresh, empty store of the backend [`DATABASE_URL_VAR`] names, chosen by the URL's
/// scheme. Every test gets its own: an SQLite store is always a new file in a new temporary
/// directory (whatever follows `sqlite:` is ignored); a PostgreSQL store is a new schema in
/// the database the URL names.
pub async fn fresh_store() -> TestStore {
    let url = match std::env::var(DATABASE_URL_VAR) {
        Ok(url) => url,
        Err(std::env::VarError::NotPresent) => "sqlite:".to_owned(),
        Err(err) => panic!("{DATABASE_URL_VAR} is unreadable: {err}"),
    };
    let scheme = url
        .split_once(':')
        .map_or(url.as_str(), |(scheme, _)| scheme);
    match scheme {
        "sqlite" => fresh_sqlite_store().await,
        "postgres" | "postgresql" => fresh_postgres_store(&url).await,
        other => panic!(
            "{DATABASE_URL_VAR}={other}:…: the suite runs against `sqlite:` or a `postgres://` URL"
        ),
    }
}

async fn fresh_sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    // Opened directly, not through `storage::MetaConfig`: storage sits above the metadata
    // store (it opens the backends), so the store's own suite must not reach up to it.
    let store = SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
        .await
        .expect("open a fresh SQLite store");
    let meta: Arc<dyn MetaStore> = Arc::new(store);
    TestStore {
        meta,
        _home: StoreHome::Directory { _dir: dir },
    }
}

/// Connections of one test's PostgreSQL store: tests run in parallel against one server.
const TEST_POOL_CONNECTIONS: u32 = 4;

async fn fresh_postgres_store(url: &str) -> TestStore {
    let server = PgConnectOptions::from_str(url)
        .unwrap_or_else(|err| panic!("{DATABASE_URL_VAR} is no PostgreSQL URL: {err}"));
    let name = format!("rewind_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = server.connect().await.expect("connect to PostgreSQL");
    sqlx::raw_sql(&format!("CREATE SCHEMA {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test's schema");
    admin.close().await.expect("close the admin connection");
    let options = server.clone().options([("search_path", name.as_str())]);
    let meta = PostgresMetaStore::open(options, TEST_POOL_CONNECTIONS)
        .await
        .expect("open a fresh PostgreSQL store");
    let schema = TestSchema {
        name,
        server,
        pool: meta.pool().clone(),
    };
    TestStore {
        meta: Arc::new(meta),
        _home: StoreHome::Schema {
            schema: Box::new(schema),
        },
    }
}

/// A test's own schema, and the pool of the store living in it.
struct TestSchema {
    name: String,
    server: PgConnectOptions,
    pool: sqlx::PgPool,
}

impl TestSchema {
    async fn drop_schema(self) {
        // Closing waits for every connection to come back: a transaction a contract left
        // behind is rolled back on its way into the pool, releasing its locks.
        self.pool.close().await;
        let mut conn = self.server.connect().await.expect("connect to PostgreSQL");
        sqlx::raw_sql(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&mut conn)
            .await
            .expect("drop the test's schema");
        conn.close().await.expect("close the admin connection");
    }
}

/// Runs `racers` instances of `racer` as separate tasks, released together by one barrier
/// so that their calls overlap; returns their results in the order of their index.
pub async fn race<T, F, Fut>(meta: &Arc<dyn MetaStore>, racers: usize, racer: F) -> Vec<T>
where
    F: Fn(Arc<dyn MetaStore>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(racers));
    let tasks: Vec<_> = (0..racers)
        .map(|i| {
            let start = start.clone();
            // Futures are lazy: nothing of `racer` runs before the barrier opens.
            let run = racer(meta.clone(), i);
            tokio::spawn(async move {
                start.wait().await;
                run.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(racers);
    for task in tasks {
        results.push(task.await.expect("a racing task panicked"));
    }
    results
}

/// Asserts that `result` failed with [`MetaError::Conflict`].
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, MetaError>, what: &str) {
    match result {
        Err(MetaError::Conflict(_)) => {}
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

/// Every item at once (the suite's lists stay far below this).
pub const ALL: PageRequest = PageRequest {
    offset: 0,
    limit: 1_000,
};

pub fn page(offset: u64, limit: u64) -> PageRequest {
    PageRequest { offset, limit }
}

pub fn ts(secs: u32, inc: u32) -> OplogTs {
    OplogTs { secs, inc }
}

/// The first organization, project and key of a store, as `bootstrap` writes them.
#[derive(Debug, Clone)]
pub struct Account {
    pub org: OrgRecord,
    pub group: GroupRecord,
    pub key: ApiKeyRecord,
}

impl From<BootstrapRecords> for Account {
    fn from(records: BootstrapRecords) -> Self {
        Account {
            org: records.org,
            group: records.group,
            key: records.key,
        }
    }
}

/// Bootstrap records whose names and public key carry `tag`, so racing callers differ.
pub fn bootstrap_records(tag: &str) -> BootstrapRecords {
    let org = OrgRecord {
        id: OrgId::generate(),
        name: format!("org {tag}"),
        created: 10,
    };
    let group = group_record(org.id, &format!("project {tag}"));
    let mut key = api_key(org.id, &format!("boot{tag}"));
    key.roles = vec![RoleGrant {
        group_id: None,
        role: Role::OrgOwner,
    }];
    BootstrapRecords { org, group, key }
}

/// Bootstraps the store (the only way to create an organization) and returns what it wrote.
pub async fn seed_account(meta: &dyn MetaStore) -> Account {
    let records = bootstrap_records("0");
    assert!(meta.bootstrap(&records).await.unwrap(), "a fresh store");
    records.into()
}

pub fn group_record(org: OrgId, name: &str) -> GroupRecord {
    GroupRecord {
        id: GroupId::generate(),
        org_id: org,
        name: name.to_owned(),
        created: 20,
    }
}

pub async fn seed_group(meta: &dyn MetaStore, org: OrgId, name: &str) -> GroupRecord {
    let group = group_record(org, name);
    meta.insert_group(&group).await.unwrap();
    group
}

/// A key with no roles and no access list.
pub fn api_key(org: OrgId, public_key: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::generate(),
        org_id: org,
        public_key: public_key.to_owned(),
        desc: format!("key {public_key}"),
        digest_ha1: format!("ha1 of {public_key}"),
        created: 30,
        roles: Vec::new(),
        access_list: Vec::new(),
    }
}

/// A replica set cluster row named `name` whose replica set is `rs-{name}`.
pub fn replica_set(group: GroupId, name: &str) -> ClusterRecord {
    ClusterRecord {
        id: ClusterId::generate(),
        group_id: group,
        cluster_name: name.to_owned(),
        type_name: ClusterType::ReplicaSet,
        replica_set_name: Some(format!("rs-{name}")),
        shard_name: None,
        parent_id: None,
        fcv: "7.0".to_owned(),
        last_heartbeat: None,
        created: 40,
    }
}

/// The rows of a sharded cluster: its top-level row first, then `shards` shards and the
/// config server, all under the cluster's name as registration writes them.
pub fn sharded_cluster(group: GroupId, name: &str, shards: usize) -> Vec<ClusterRecord> {
    let top = ClusterRecord {
        type_name: ClusterType::ShardedReplicaSet,
        replica_set_name: None,
        fcv: "4.0".to_owned(),
        ..replica_set(group, name)
    };
    let member = |type_name, replica_set: String, shard: Option<String>| ClusterRecord {
        id: ClusterId::generate(),
        type_name,
        replica_set_name: Some(replica_set),
        shard_name: shard,
        parent_id: Some(top.id),
        ..top.clone()
    };
    let mut rows = vec![top.clone()];
    for i in 0..shards {
        let rs = format!("{name}-shard-{i}");
        rows.push(member(ClusterType::ReplicaSet, rs.clone(), Some(rs)));
    }
    rows.push(member(
        ClusterType::ConfigServerReplicaSet,
        format!("{name}-config"),
        None,
    ));
    rows
}

pub async fn seed_replica_set(meta: &dyn MetaStore, group: GroupId, name: &str) -> ClusterRecord {
    let cluster = replica_set(group, name);
    meta.insert_clusters(std::slice::from_ref(&cluster))
        .await
        .unwrap();
    cluster
}

/// A bootstrapped store's project with one replica set, `c`: the rows most areas refer to.
pub async fn seed_cluster(meta: &dyn MetaStore) -> ClusterRecord {
    let account = seed_account(meta).await;
    seed_replica_set(meta, account.group.id, "c").await
}

/// An open import of `cluster` taken at `created`, with one uncommitted part per replica set
/// named in `replica_sets`.
pub fn snapshot_of(
    cluster: &ClusterRecord,
    created: OplogTs,
    replica_sets: &[&str],
) -> SnapshotRecord {
    SnapshotRecord {
        id: SnapshotId::generate(),
        group_id: cluster.group_id,
        cluster_id: cluster.id,
        created,
        last_oplog_applied: None,
        complete: false,
        expires: None,
        do_not_delete: false,
        deleted_at: None,
        mongod_version: "7.0.2".to_owned(),
        storage_engine: "wiredTiger".to_owned(),
        recorded: i64::from(created.secs),
        parts: replica_sets
            .iter()
            .map(|rs| {
                SnapshotPartRecord::uncommitted(cluster.id, (*rs).to_owned(), cluster.type_name)
            })
            .collect(),
    }
}

/// Records a complete snapshot of a replica set cluster taken at `created` seconds.
pub async fn seed_snapshot(
    meta: &dyn MetaStore,
    cluster: &ClusterRecord,
    created: u32,
) -> SnapshotRecord {
    let snapshot = SnapshotRecord {
        complete: true,
        ..snapshot_of(cluster, ts(created, 1), &[])
    };
    meta.insert_snapshot(&snapshot).await.unwrap();
    snapshot
}

/// A new HTTP restore job of `snapshot`, waiting for preparation, created at `created`.
pub fn http_job(snapshot: &SnapshotRecord, created: UnixSeconds) -> RestoreJobRecord {
    RestoreJobRecord {
        id: JobId::generate(),
        batch_id: None,
        group_id: snapshot.group_id,
        cluster_id: snapshot.cluster_id,
        snapshot_id: snapshot.id,
        replica_set_name: "rs0".to_owned(),
        part_type: ClusterType::ReplicaSet,
        created,
        status: JobStatus::InProgress,
        delivery_status: DeliveryStatus::NotStarted,
        method: DeliveryMethod::Http {
            max_downloads: 1,
            expiration_hours: Some(1),
        },
        expires: None,
        point_in_time: false,
        timestamp: snapshot.created,
        file_name: "archive".to_owned(),
        archive_bytes: None,
        archive_sha1: None,
        downloads_started: 0,
        downloads_completed: 0,
        resume_offset: None,
        resent_bytes: 0,
        finished_at: None,
        failure: None,
        attempts: 0,
    }
}

/// A new automated restore of `snapshot` into `target`, in progress.
pub fn automated_job(
    snapshot: &SnapshotRecord,
    target: &ClusterRecord,
    created: UnixSeconds,
) -> RestoreJobRecord {
    RestoreJobRecord {
        method: DeliveryMethod::Automated {
            target_group: target.group_id,
            target_cluster: target.id,
        },
        ..http_job(snapshot, created)
    }
}
