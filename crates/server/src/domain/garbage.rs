//! Retention and garbage collection of snapshot data: expired and abandoned snapshots,
//! the chunk references a deleted snapshot held, chunks and packs nothing references any
//! more, and pack objects the index never knew.
//!
//! Nothing is deleted eagerly. A deleted snapshot keeps its chunk references while a
//! restore still reads it; a chunk is collected only after it stayed unreferenced for the
//! GC delay; a pack goes with its last indexed chunk; an unindexed pack only once it is
//! older than the delay. The sweeper (`jobs::sweeper`) schedules these passes; the rules
//! are here. (Oplog slices follow the same delay; their retention is `domain::oplog`.)
//!
//! Several nodes may share one block store, so what keeps a pack safe is its row in the
//! metadata store, never the object store: `writing` (claimed by writers before their
//! put, [`claim_pack`](super::snapshots::packs::claim_pack)) → `live` (its chunks indexed, only while the claim holds) →
//! `deleting` (set in one conditional statement before the object is deleted, and the row
//! removed after it, [`delete_pack`]). A writer never indexes a pack whose deletion began,
//! and no deletion begins while a row says a writer may still reference the object.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::TryStreamExt;

use super::snapshots::manifest::manifest_key;
use super::snapshots::packs::delete_pack;
use super::{block_error, DomainResult, Services};
use crate::blocks::{ChunkId, ObjectKey, PackId};
use crate::ids::ClaimToken;
use crate::meta::snapshots::PackDeletionRule;
use crate::model::{SnapshotRecord, UnixSeconds};

/// How long a chunk must stay unreferenced before it is collected. It must exceed the
/// longest import: a chunk an import found present is referenced only when its manifest
/// is committed (and each lookup resets the clock).
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(3600);
/// An import not completed within this time is abandoned and its snapshot deleted.
pub const ABANDONED_IMPORT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Chunks collected per pass, so one pass never holds the GC lock for long.
const CHUNKS_PER_PASS: u32 = 2000;
/// Unsettled pack rows (abandoned claims, stale deletions) handled per orphan sweep.
const UNSETTLED_PACKS_PER_PASS: u32 = 2000;
/// How long a pack's deletion may stay under way before a sweep takes it over as left by a
/// crashed deleter. A deletion is one DELETE request, retried by the object store client
/// for at most its retry bound (`--s3-retry-timeout-secs`, well below this); a deleter
/// stalled longer than this between marking the row and deleting the object is the one
/// case a takeover could race.
pub const DELETION_LEASE: Duration = Duration::from_secs(15 * 60);

/// What one chunk collection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CollectedChunks {
    /// Chunks the index forgot.
    pub chunks: usize,
    /// Packs deleted because their last chunk was forgotten.
    pub packs: usize,
}

impl Services {
    /// Deletes snapshots past their expiry and imports abandoned for longer than
    /// [`ABANDONED_IMPORT_AFTER`]; how many.
    pub async fn delete_expired_snapshots(&self, now: UnixSeconds) -> DomainResult<usize> {
        let abandoned_before = now - ABANDONED_IMPORT_AFTER.as_secs() as i64;
        let deleted = self
            .meta
            .delete_expired_snapshots(now, abandoned_before)
            .await?;
        Ok(deleted.len())
    }

    /// Releases the chunk references of deleted snapshots that no restore reads any more
    /// (and removes their manifests); how many snapshots were released.
    pub async fn release_unread_snapshots(&self) -> DomainResult<usize> {
        let mut released = 0;
        for snapshot in self.meta.snapshots_holding_refs().await? {
            if self.is_snapshot_in_use(&snapshot).await? {
                continue;
            }
            self.release_snapshot(&snapshot).await?;
            released += 1;
        }
        Ok(released)
    }

    async fn release_snapshot(&self, snapshot: &SnapshotRecord) -> DomainResult<()> {
        let mut chunks = BTreeSet::new();
        for part in snapshot.parts.iter().filter(|p| p.committed) {
            let manifest = self.load_manifest(snapshot.id, part).await?;
            chunks.extend(
                manifest
                    .files
                    .iter()
                    .flat_map(|f| f.chunks.iter().map(|c| c.0)),
            );
        }
        let chunks: Vec<ChunkId> = chunks.into_iter().collect();
        self.meta
            .release_snapshot_refs(snapshot.id, &chunks, self.clock.now())
            .await?;
        for name in snapshot
            .parts
            .iter()
            .filter_map(|p| p.manifest_name.as_deref())
        {
            if let Err(err) = self.blocks.delete_object(&manifest_key(name)).await {
                tracing::warn!(snapshot.id = %snapshot.id, error = %err, "could not remove a released manifest");
            }
        }
        Ok(())
    }

    /// Forgets chunks unreferenced since before `unreferenced_before` and deletes what they
    /// leave unused: chunks stored alone, and packs none of whose chunks is indexed any
    /// more. Packs that still hold a live chunk are kept whole (no repacking).
    pub async fn collect_chunks(
        &self,
        unreferenced_before: UnixSeconds,
    ) -> DomainResult<CollectedChunks> {
        let _exclusive = self.gc_lock.write().await;
        let ids = self
            .meta
            .collectable_chunks(unreferenced_before, CHUNKS_PER_PASS)
            .await?;
        if ids.is_empty() {
            return Ok(CollectedChunks::default());
        }
        let deletion = ClaimToken::generate();
        let forgotten = self
            .meta
            .forget_chunks(&ids, unreferenced_before, deletion, self.clock.now())
            .await?;
        // The index no longer names these objects; one that fails to go now stays as dead
        // bytes (a pack's row stays `deleting`, and a later orphan sweep finishes it).
        for id in &forgotten.loose {
            let key = ObjectKey::Chunk(*id);
            if let Err(err) = self.blocks.delete_object(&key).await {
                tracing::warn!(object = ?key, error = %err, "could not delete a collected object");
            }
        }
        for pack in &forgotten.packs {
            if let Err(err) =
                delete_pack(self.meta.as_ref(), self.blocks.as_ref(), *pack, deletion).await
            {
                tracing::warn!(pack = %pack, error = %err, "could not delete a collected pack; a later sweep will");
            }
        }
        Ok(CollectedChunks {
            chunks: forgotten.chunks,
            packs: forgotten.packs.len(),
        })
    }

    /// Deletes what no pack row protects: pack objects last written before
    /// `written_before` that have no row (a writer that crashed before claiming, or whose
    /// claim was swept), rows `writing` whose claim was last renewed before
    /// `claimed_before` (their writers gave up or crashed; a writer still at work then
    /// fails to index and its batch is sent again), and deletions left unfinished for
    /// longer than [`DELETION_LEASE`]. Returns how many packs were deleted.
    ///
    /// The listing runs without the GC lock; the rest under it, held exclusively: an upload
    /// on this node holds it shared from its claim until its index, so on one node even a
    /// sweep without any grace period spares every pack being written. Across nodes the
    /// claim's grace period does (see the module's comment).
    pub async fn delete_orphan_packs(
        &self,
        written_before: UnixSeconds,
        claimed_before: UnixSeconds,
    ) -> DomainResult<usize> {
        let old: Vec<PackId> = self
            .blocks
            .list_packs()
            .try_filter_map(|p| {
                futures::future::ready(Ok((p.last_modified < written_before).then_some(p.id)))
            })
            .try_collect()
            .await
            .map_err(block_error)?;
        let _exclusive = self.gc_lock.write().await;
        let rule = PackDeletionRule {
            claimed_before,
            deletion_started_before: self.clock.now() - DELETION_LEASE.as_secs() as i64,
        };
        let known: HashSet<PackId> = self.meta.known_packs(&old).await?.into_iter().collect();
        let mut candidates: Vec<PackId> =
            old.into_iter().filter(|id| !known.contains(id)).collect();
        candidates.extend(
            self.meta
                .unsettled_packs(rule, UNSETTLED_PACKS_PER_PASS)
                .await?,
        );
        let mut deleted = 0;
        for id in candidates {
            let deletion = ClaimToken::generate();
            if !self
                .meta
                .start_pack_deletion(id, deletion, self.clock.now(), rule)
                .await?
            {
                continue;
            }
            delete_pack(self.meta.as_ref(), self.blocks.as_ref(), id, deletion).await?;
            tracing::info!(pack = %id, "deleted an orphan pack");
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use rewind_formats::frames::encode_frame;

    use crate::blocks::{
        BlockError, BlockResult, BlockStore, ChunkId, ChunkLocation, EncodedChunk, ListedPack,
        ObjectBlockStore, ObjectKey,
    };
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::TestProject;
    use crate::domain::{Clock, ErrorCode, Services};

    /// An orphan sweep with no grace period at all (every unindexed pack is a candidate),
    /// run over and over while imports store batches (two of them the same batch, so the
    /// same pack): every chunk an import stored stays readable where the index places it.
    /// On one node the GC lock, not the object's time, keeps a pack safe between its write
    /// and its index.
    async fn an_orphan_sweep_racing_imports_deletes_no_pack_they_index(
        blocks: Arc<dyn BlockStore>,
    ) {
        const BATCHES: u64 = 6;
        const CHUNKS_PER_BATCH: u64 = 8;
        let spec = ClusterSpec {
            name: "rs0".into(),
            shards: None,
            fcv: None,
        };
        let p = TestProject::start_on(spec, blocks).await;
        let batch = |n: u64| {
            let mut body = Vec::new();
            let mut ids = Vec::new();
            for i in 0..CHUNKS_PER_BATCH {
                let data = rewind_formats::test_data::random_bytes(n * 100 + i, 16 * 1024);
                let id = ChunkId::of(&data);
                encode_frame(&mut body, &id, &data).expect("frame");
                ids.push(id);
            }
            (Bytes::from(body), ids)
        };
        // Batch 0 twice: the second writer finds its pack in place.
        let batches: Vec<(Bytes, Vec<ChunkId>)> =
            [0, 0].into_iter().chain(1..BATCHES).map(batch).collect();
        let importing = AtomicBool::new(true);
        let imports = async {
            let uploads = batches
                .iter()
                .map(|(body, _)| p.services.store_chunks(&p.principal, p.group, body.clone()));
            let results = futures::future::join_all(uploads).await;
            importing.store(false, Ordering::SeqCst);
            results
        };
        let sweeps = async {
            let mut passes = 0;
            while importing.load(Ordering::SeqCst) || passes == 0 {
                let horizon = chrono::Utc::now().timestamp() + 3600;
                p.services
                    .delete_orphan_packs(horizon, horizon)
                    .await
                    .expect("orphan sweep");
                passes += 1;
                tokio::task::yield_now().await;
            }
        };
        let (results, ()) = futures::future::join(imports, sweeps).await;
        for result in results {
            result.expect("an upload batch");
        }
        let ids: Vec<ChunkId> = batches.iter().flat_map(|(_, ids)| ids.clone()).collect();
        let indexed = p.services.meta.locate_chunks(&ids).await.expect("locate");
        assert_eq!(indexed.len() as u64, BATCHES * CHUNKS_PER_BATCH);
        for info in indexed {
            let at = ChunkLocation {
                id: info.id,
                placement: info.placement,
            };
            p.services
                .blocks
                .get(&at)
                .await
                .unwrap_or_else(|e| panic!("an indexed chunk is gone: {e}"));
        }
    }

    /// A block store whose pack deletions take a while, as a remote store's do: it widens
    /// the window between a collector's decision and its delete.
    struct SlowPackDeletes(Arc<dyn BlockStore>);

    #[async_trait::async_trait]
    impl BlockStore for SlowPackDeletes {
        async fn put_pack(&self, pack: &crate::blocks::Pack) -> BlockResult<()> {
            self.0.put_pack(pack).await
        }
        async fn get(&self, at: &ChunkLocation) -> BlockResult<EncodedChunk> {
            self.0.get(at).await
        }
        fn list_packs(&self) -> BoxStream<'static, BlockResult<ListedPack>> {
            self.0.list_packs()
        }
        async fn put_object(&self, key: &ObjectKey, bytes: Bytes) -> BlockResult<()> {
            self.0.put_object(key, bytes).await
        }
        async fn get_object(&self, key: &ObjectKey) -> BlockResult<Option<Bytes>> {
            self.0.get_object(key).await
        }
        async fn delete_object(&self, key: &ObjectKey) -> BlockResult<()> {
            if matches!(key, ObjectKey::Pack(_)) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            self.0.delete_object(key).await
        }
    }

    /// Two nodes on one metadata store and one block store: one collects every chunk the
    /// moment it is unreferenced and sweeps orphans of any age, over and over, while the
    /// other imports the very same batch again and again (so the same pack, found in place
    /// or being deleted). Whenever the importer finds a chunk indexed, its bytes are where
    /// the index says, unless the collector forgot the chunk first. Across nodes no lock
    /// is shared: the pack rows' states alone keep the importer's pack.
    async fn gc_on_one_node_racing_imports_of_one_batch_on_another_deletes_nothing_indexed(
        blocks: Arc<dyn BlockStore>,
    ) {
        const ROUNDS: usize = 25;
        let spec = ClusterSpec {
            name: "rs0".into(),
            shards: None,
            fcv: None,
        };
        let p = TestProject::start_on(spec, blocks).await;
        let importer = &p.services;
        let collector = Services::new(
            importer.meta.clone(),
            Arc::new(SlowPackDeletes(importer.blocks.clone())),
            p.clock.clone(),
            vec![0; 32],
        );
        let mut body = Vec::new();
        let mut ids = Vec::new();
        for i in 0..8 {
            let data = rewind_formats::test_data::random_bytes(900 + i, 16 * 1024);
            let id = ChunkId::of(&data);
            encode_frame(&mut body, &id, &data).expect("frame");
            ids.push(id);
        }
        let body = Bytes::from(body);
        let importing = AtomicBool::new(true);
        let imports = async {
            let (mut stored, mut checked) = (0, 0);
            for _ in 0..ROUNDS {
                match importer
                    .store_chunks(&p.principal, p.group, body.clone())
                    .await
                {
                    Ok(summary) => stored += summary.chunks_newly_stored,
                    Err(e) if e.code() == ErrorCode::StorageUnavailable => {}
                    Err(e) => panic!("an upload batch failed: {e}"),
                }
                for info in importer.meta.locate_chunks(&ids).await.expect("locate") {
                    let at = ChunkLocation {
                        id: info.id,
                        placement: info.placement,
                    };
                    match importer.blocks.get(&at).await {
                        Ok(_) => checked += 1,
                        Err(BlockError::NotFound(_)) => {
                            let still = importer
                                .meta
                                .locate_chunks(&[info.id])
                                .await
                                .expect("locate");
                            assert!(
                                still.iter().all(|c| c.placement != info.placement),
                                "chunk {} is indexed in a pack that was deleted",
                                info.id
                            );
                        }
                        Err(e) => panic!("reading an indexed chunk: {e}"),
                    }
                }
                tokio::task::yield_now().await;
            }
            importing.store(false, Ordering::SeqCst);
            (stored, checked)
        };
        let sweeps = async {
            let mut passes = 0;
            while importing.load(Ordering::SeqCst) {
                let now = p.clock.now();
                let every_object = chrono::Utc::now().timestamp() + 3600;
                collector
                    .collect_chunks(now + 3600)
                    .await
                    .expect("collection");
                collector
                    .delete_orphan_packs(every_object, now - 60)
                    .await
                    .expect("orphan sweep");
                passes += 1;
                tokio::task::yield_now().await;
            }
            passes
        };
        let ((stored, checked), passes) = futures::future::join(imports, sweeps).await;
        assert!(
            stored > 0 && checked > 0 && passes > 0,
            "{stored} {checked} {passes}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn gc_on_one_node_racing_imports_of_one_batch_on_another_deletes_nothing_indexed_on_every_backend(
    ) {
        let objects = || Arc::new(InMemory::new());
        gc_on_one_node_racing_imports_of_one_batch_on_another_deletes_nothing_indexed(Arc::new(
            ObjectBlockStore::write_once(objects()),
        ))
        .await;
        let test = "gc_on_one_node_racing_imports_of_one_batch_on_another";
        if let Some(store) = crate::blocks::s3::test_store(test) {
            gc_on_one_node_racing_imports_of_one_batch_on_another_deletes_nothing_indexed(
                Arc::new(store),
            )
            .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_orphan_sweep_racing_imports_deletes_no_pack_they_index_on_every_backend() {
        let in_memory = |store: ObjectBlockStore| -> Arc<dyn BlockStore> { Arc::new(store) };
        let objects = || Arc::new(InMemory::new());
        an_orphan_sweep_racing_imports_deletes_no_pack_they_index(in_memory(
            ObjectBlockStore::new(objects()),
        ))
        .await;
        an_orphan_sweep_racing_imports_deletes_no_pack_they_index(in_memory(
            ObjectBlockStore::write_once(objects()),
        ))
        .await;
        let test = "an_orphan_sweep_racing_imports_deletes_no_pack_they_index";
        if let Some(store) = crate::blocks::s3::test_store(test) {
            an_orphan_sweep_racing_imports_deletes_no_pack_they_index(Arc::new(store)).await;
        }
    }
}
