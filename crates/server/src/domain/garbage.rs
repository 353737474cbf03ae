//! Retention and garbage collection of snapshot data: expired and abandoned snapshots,
//! the chunk references a deleted snapshot held, chunks and packs nothing references any
//! more, and pack objects the index never knew.
//!
//! Nothing is deleted eagerly. A deleted snapshot keeps its chunk references while a
//! restore still reads it; a chunk is collected only after it stayed unreferenced for the
//! GC delay; a pack goes with its last indexed chunk; an unindexed pack only once it is
//! older than the delay. The sweeper (`jobs::sweeper`) schedules these passes; the rules
//! are here. (Oplog slices follow the same delay; their retention is `domain::oplog`.)

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use futures::TryStreamExt;

use super::snapshots::manifest::manifest_key;
use super::{block_error, DomainResult, Services};
use crate::blocks::{ChunkId, ObjectKey, PackId};
use crate::model::{SnapshotRecord, UnixSeconds};

/// How long a chunk must stay unreferenced before it is collected. It must exceed the
/// longest import: a chunk an import found present is referenced only when its manifest
/// is committed (and each lookup resets the clock).
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(3600);
/// An import not completed within this time is abandoned and its snapshot deleted.
pub const ABANDONED_IMPORT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Chunks collected per pass, so one pass never holds the GC lock for long.
const CHUNKS_PER_PASS: u32 = 2000;

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
        let forgotten = self.meta.forget_chunks(&ids, unreferenced_before).await?;
        // The index no longer names these objects; one that fails to go now stays as dead
        // bytes (a pack is found again by the orphan sweep).
        let unused = forgotten
            .loose
            .iter()
            .map(|id| ObjectKey::Chunk(*id))
            .chain(forgotten.packs.iter().map(|id| ObjectKey::Pack(*id)));
        for key in unused {
            if let Err(err) = self.blocks.delete_object(&key).await {
                tracing::warn!(object = ?key, error = %err, "could not delete a collected object");
            }
        }
        Ok(CollectedChunks {
            chunks: forgotten.chunks,
            packs: forgotten.packs.len(),
        })
    }

    /// Deletes pack objects the index does not know that were last written before
    /// `written_before`: a writer that crashed between writing its pack and indexing it,
    /// or whose every chunk a concurrent batch indexed first, leaves one. Returns how many.
    ///
    /// The listing runs without the GC lock; the index is checked and the objects deleted
    /// under it, held exclusively. An upload holds that lock shared from writing its pack
    /// until indexing it, so a pack being written again right now (renewed on a local
    /// store, found in place on a write-once one) is either indexed before the check or
    /// written after the deletion. That holds on one node; see `docs/decisions.md` for
    /// nodes sharing a bucket.
    pub async fn delete_orphan_packs(&self, written_before: UnixSeconds) -> DomainResult<usize> {
        let old: Vec<PackId> = self
            .blocks
            .list_packs()
            .try_filter_map(|p| {
                futures::future::ready(Ok((p.last_modified < written_before).then_some(p.id)))
            })
            .try_collect()
            .await
            .map_err(block_error)?;
        if old.is_empty() {
            return Ok(0);
        }
        let _exclusive = self.gc_lock.write().await;
        let known: HashSet<PackId> = self.meta.known_packs(&old).await?.into_iter().collect();
        let mut deleted = 0;
        for id in old.into_iter().filter(|id| !known.contains(id)) {
            self.blocks
                .delete_object(&ObjectKey::Pack(id))
                .await
                .map_err(block_error)?;
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
    use object_store::memory::InMemory;
    use rewind_formats::frames::encode_frame;

    use crate::blocks::{BlockStore, ChunkId, ChunkLocation, ObjectBlockStore};
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::TestProject;

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
                    .delete_orphan_packs(horizon)
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
