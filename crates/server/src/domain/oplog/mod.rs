//! The oplog store: pushes of a replica set's oplog entries, their coverage and gaps, the
//! project's point-in-time window, and retention.
//!
//! A push is checked whole before anything is written: every entry well-formed and in
//! strictly increasing ts order, and every entry that falls inside a stored range identical to
//! the stored one (see [`crate::oplog::coverage`] for the model). Only then are the new
//! entries cut into slices, compressed (on blocking threads, several at once), written as
//! objects, and recorded with the new ranges in one metadata transaction. A crash in between
//! leaves only objects recorded as pending, which the sweeper deletes after the GC delay.
//!
//! Pushes of one replica set are serialized on this node by a per-replica-set lock (held
//! across the reads, writes and commit, hence an async mutex); pushes through two nodes at
//! once are caught by the commit, which refuses a plan made against ranges that changed.
//!
//! The parts: [`push`] accepts pushes, [`status`] reports what is stored, [`retention`]
//! retires and deletes what the window no longer needs. This module holds what they share:
//! finding a replica set's oplog, the per-replica-set lock, and reading slices back.

mod push;
mod retention;
mod status;

use std::sync::Arc;

pub use push::{PushOutcome, MAX_PUSH_BYTES};

use super::block_error;
use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::blocks::ObjectKey;
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::model::{ClusterType, OplogSliceRecord, OplogStream};
use crate::oplog::slice::slice_key;
use crate::oplog::{OplogSlice, SliceEntries};

fn corrupt_slice(stream: &OplogStream, id: OplogSliceId, reason: &str) -> DomainError {
    tracing::error!(
        cluster.id = %stream.cluster,
        replica_set = %stream.replica_set,
        slice.id = %id,
        %reason,
        "refusing corrupt oplog slice"
    );
    DomainError::Internal(format!("oplog slice {id} is corrupt: {reason}"))
}

fn slice_path(key: &ObjectKey) -> DomainResult<String> {
    Ok(key.path().map_err(block_error)?.to_string())
}

/// Threads for CPU-heavy work of one request.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs CPU-heavy work (parsing, compressing, inflating) on the blocking pool.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> DomainResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DomainError::Internal(format!("{what} task failed: {e}")))
}

impl Services {
    /// The replica set `replica_set` of cluster `cluster`, which must be a replica set or a
    /// sharded cluster (not one of its shards) of a project the caller may act on.
    async fn oplog_stream(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        replica_set: &str,
        access: GroupAccess,
    ) -> DomainResult<OplogStream> {
        let names = self
            .oplog_replica_sets(principal, group, cluster, access)
            .await?;
        if !names.iter().any(|n| n == replica_set) {
            return Err(DomainError::rejected(
                ErrorCode::ReplicaSetNotFound,
                format!(
                    "Cluster {cluster} has no replica set named {replica_set:?}; it has {}.",
                    names.join(", ")
                ),
                vec![replica_set.to_owned()],
            ));
        }
        Ok(OplogStream {
            cluster,
            replica_set: replica_set.to_owned(),
        })
    }

    /// The names of a cluster's replica sets (shards and config server for a sharded one).
    async fn oplog_replica_sets(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        access: GroupAccess,
    ) -> DomainResult<Vec<String>> {
        self.authorize_group(principal, group, access).await?;
        let top = self.find_cluster(group, cluster).await?;
        if top.parent_id.is_some() {
            return Err(DomainError::rejected(
                ErrorCode::InvalidAttribute,
                "The oplog is kept per cluster: use the sharded cluster's id and the shard's replica set name, not the shard's id.",
                vec!["clusterId".into()],
            ));
        }
        Ok(self
            .members_of(group, cluster)
            .await?
            .into_iter()
            .filter(|m| m.type_name != ClusterType::ShardedReplicaSet)
            .filter_map(|m| m.replica_set_name)
            .collect())
    }

    /// The lock that serializes the pushes (and retention) of one replica set on this node.
    fn oplog_lock(&self, stream: &OplogStream) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.oplog_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(stream.clone()).or_default().clone()
    }

    /// Reads, verifies and decodes stored slices.
    pub(crate) async fn load_slices(
        &self,
        stream: &OplogStream,
        records: Vec<OplogSliceRecord>,
    ) -> DomainResult<Vec<(OplogSliceRecord, Arc<SliceEntries>)>> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let key = slice_key(stream, record.id);
            let path = slice_path(&key)?;
            let bytes = self
                .blocks
                .get_object(&key)
                .await
                .map_err(block_error)?
                .ok_or_else(|| corrupt_slice(stream, record.id, "the object is missing"))?;
            let expected = record.clone();
            let entries = blocking("oplog slice decoding", move || {
                let slice = OplogSlice::from_object_bytes(&path, bytes)?;
                let matches = slice.first() == expected.first
                    && slice.last() == expected.last
                    && u64::from(slice.entry_count()) == expected.entry_count;
                if !matches {
                    return Err(crate::oplog::SliceCorrupt(
                        "the object disagrees with its metadata".into(),
                    ));
                }
                slice.decode()
            })
            .await?
            .map_err(|e| corrupt_slice(stream, record.id, &e.0))?;
            out.push((record, Arc::new(entries)));
        }
        Ok(out)
    }
}

/// A project with one replica set and the calls the tests of every part make.
#[cfg(test)]
mod test_fixture {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    use super::PushOutcome;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::{TestClock, TestProject};
    use crate::domain::{DomainResult, Principal, Services};
    use crate::ids::{ClusterId, GroupId};
    use crate::model::{OplogStream, OplogStreamSummary, OplogTs};

    /// A project with one replica set `rs0`, over a temporary SQLite store and an in-memory
    /// object store the test can list.
    pub(super) struct Fixture {
        pub services: Services,
        pub objects: Arc<InMemory>,
        pub clock: Arc<TestClock>,
        pub principal: Principal,
        pub group: GroupId,
        pub cluster: ClusterId,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        pub async fn new() -> Fixture {
            let spec = ClusterSpec {
                name: "rs0".into(),
                shards: None,
                fcv: None,
            };
            let p = TestProject::start(spec).await;
            Fixture {
                services: p.services,
                objects: p.objects,
                clock: p.clock,
                principal: p.principal,
                group: p.group,
                cluster: p.cluster,
                _dir: p.dir,
            }
        }

        pub async fn push(
            &self,
            body: Vec<u8>,
            after: Option<OplogTs>,
        ) -> DomainResult<PushOutcome> {
            self.services
                .push_oplog(
                    &self.principal,
                    self.group,
                    self.cluster,
                    "rs0",
                    after,
                    body.into(),
                )
                .await
        }

        pub async fn summary(&self) -> OplogStreamSummary {
            self.services
                .replica_set_oplog_status(&self.principal, self.group, self.cluster, "rs0")
                .await
                .unwrap()
        }

        pub async fn object_count(&self) -> usize {
            let listed: Vec<_> = self.objects.list(None).try_collect().await.unwrap();
            listed.len()
        }

        pub fn stream(&self) -> OplogStream {
            OplogStream {
                cluster: self.cluster,
                replica_set: "rs0".into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use rewind_formats::oplog::entry::test_entries::run;

    use super::test_fixture::Fixture;
    use super::*;

    #[tokio::test]
    async fn a_corrupt_slice_is_never_used() {
        let f = Fixture::new().await;
        f.push(run(100, 5, "a"), None).await.unwrap();
        let listed: Vec<_> = f.objects.list(None).try_collect().await.unwrap();
        let path = &listed[0].location;
        let mut bytes = f
            .objects
            .get(path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        f.objects
            .put(path, Bytes::from(bytes).into())
            .await
            .unwrap();
        let err = f.push(run(100, 5, "a"), None).await.unwrap_err();
        assert!(matches!(err, DomainError::Internal(_)), "{err:?}");
    }
}
