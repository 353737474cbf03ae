//! A project over real stores for the domain's tests: a temporary SQLite metadata store,
//! an in-memory object store the test can list, a clock the test moves, and the bootstrap
//! key as an `ORG_OWNER` principal.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use object_store::memory::InMemory;

use super::clusters::ClusterSpec;
use super::{bootstrap, Clock, Principal, Services};
use crate::blocks::{BlockStore, ObjectBlockStore};
use crate::ids::{ClusterId, GroupId};
use crate::meta::{MetaStore, SqliteMetaStore};
use crate::model::{OplogTs, Role, RoleGrant, SnapshotRecord, UnixSeconds};

/// The time a project's clock starts at.
pub const NOW: UnixSeconds = 1_700_000_000;

pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> UnixSeconds {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    pub fn set(&self, now: UnixSeconds) {
        self.0.store(now, Ordering::SeqCst);
    }
}

/// A bootstrapped project with one registered cluster.
pub struct TestProject {
    pub services: Services,
    pub objects: Arc<InMemory>,
    pub clock: Arc<TestClock>,
    pub principal: Principal,
    pub group: GroupId,
    /// The registered cluster (the top-level row of a sharded one).
    pub cluster: ClusterId,
    pub dir: tempfile::TempDir,
}

impl TestProject {
    pub async fn start(spec: ClusterSpec) -> TestProject {
        let objects = Arc::new(InMemory::new());
        let blocks = Arc::new(ObjectBlockStore::new(objects.clone()));
        TestProject::start_over(spec, objects, blocks).await
    }

    /// A project whose block store is `blocks` (say, on S3); `objects` is then an empty
    /// in-memory store nothing uses.
    pub async fn start_on(spec: ClusterSpec, blocks: Arc<dyn BlockStore>) -> TestProject {
        TestProject::start_over(spec, Arc::new(InMemory::new()), blocks).await
    }

    async fn start_over(
        spec: ClusterSpec,
        objects: Arc<InMemory>,
        blocks: Arc<dyn BlockStore>,
    ) -> TestProject {
        let dir = tempfile::tempdir().unwrap();
        let meta: Arc<dyn MetaStore> = Arc::new(
            SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
                .await
                .unwrap(),
        );
        let clock = Arc::new(TestClock(AtomicI64::new(NOW)));
        let boot = bootstrap::bootstrap(meta.as_ref(), clock.as_ref())
            .await
            .unwrap()
            .unwrap();
        let key = meta
            .get_api_key_by_public(&boot.public_key)
            .await
            .unwrap()
            .unwrap();
        let services = Services::new(meta, blocks, clock.clone(), vec![0; 32]);
        let principal = Principal {
            key_id: key.id,
            org_id: key.org_id,
            public_key: key.public_key,
            roles: vec![RoleGrant {
                group_id: None,
                role: Role::OrgOwner,
            }],
        };
        let group = GroupId::parse(&boot.group_id).unwrap();
        let cluster = services
            .register_cluster(&principal, group, &spec)
            .await
            .unwrap()[0]
            .id;
        TestProject {
            services,
            objects,
            clock,
            principal,
            group,
            cluster,
            dir,
        }
    }

    /// Another server node: its own services over the same stores and clock.
    pub fn second_node(&self) -> Services {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Services::new(
            self.services.meta.clone(),
            self.services.blocks.clone(),
            clock,
            vec![0; 32],
        )
    }
}

/// A complete, live snapshot taken at `created`, of no cluster in particular.
pub fn complete_snapshot_at(created: OplogTs) -> SnapshotRecord {
    SnapshotRecord {
        id: crate::ids::SnapshotId::generate(),
        group_id: GroupId::generate(),
        cluster_id: ClusterId::generate(),
        created,
        last_oplog_applied: None,
        complete: true,
        expires: None,
        do_not_delete: false,
        deleted_at: None,
        mongod_version: "4.0.0".into(),
        storage_engine: "wiredTiger".into(),
        recorded: 0,
        parts: vec![],
    }
}
