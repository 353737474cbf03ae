//! The retention sweeper: schedules the passes that delete expired snapshots and abandoned
//! imports, release the chunk references of deleted snapshots once no restore reads them,
//! collect chunks (and packs) unreferenced for longer than the GC delay, delete orphan
//! packs, expire download links, retire and collect oplog slices, and forget expired web
//! console sessions. What each pass may delete is decided in the domain (`domain::garbage`,
//! `domain::oplog`, `domain::sessions`); this only says when.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::lease::TaskLease;
use super::{sleep_or_shutdown, Shutdown};
use crate::domain::{DomainResult, Services};
use crate::model::UnixSeconds;

/// How often the sweeper runs.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// How often the store's packs are listed to find orphans. Orphans are rare (a crash, or a
/// batch whose every chunk a concurrent batch indexed first) and listing reads every pack's
/// name, so this runs far less often than the other sweeps.
pub const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub snapshots_deleted: usize,
    pub snapshots_released: usize,
    pub chunks_collected: usize,
    /// Packs deleted because their last chunk was collected.
    pub packs_deleted: usize,
    /// Pack objects deleted because the index never knew them.
    pub orphan_packs_deleted: usize,
    pub links_expired: u64,
    pub oplog_slices_retired: u64,
    pub oplog_slices_collected: usize,
    /// Web console sessions forgotten after they expired.
    pub console_sessions_purged: u64,
}

pub struct Sweeper {
    services: Arc<Services>,
    gc_delay: Duration,
    /// When the orphan sweep last ran (`i64::MIN`: not yet).
    last_orphan_sweep: AtomicI64,
}

impl Sweeper {
    pub fn new(services: Arc<Services>, gc_delay: Duration) -> Self {
        Sweeper {
            services,
            gc_delay,
            last_orphan_sweep: AtomicI64::new(i64::MIN),
        }
    }

    /// Runs passes every `interval` until shutdown, while `lease` is held: one node of
    /// several sweeps and collects at a time. A failing pass is logged and retried.
    pub async fn run(self, interval: Duration, mut lease: TaskLease, mut shutdown: Shutdown) {
        loop {
            match lease.run(self.sweep_once()).await {
                None => {}
                Some(Ok(report)) if report != SweepReport::default() => {
                    tracing::info!(
                        snapshots_deleted = report.snapshots_deleted,
                        snapshots_released = report.snapshots_released,
                        chunks_collected = report.chunks_collected,
                        packs_deleted = report.packs_deleted,
                        orphan_packs_deleted = report.orphan_packs_deleted,
                        links_expired = report.links_expired,
                        oplog_slices_retired = report.oplog_slices_retired,
                        oplog_slices_collected = report.oplog_slices_collected,
                        console_sessions_purged = report.console_sessions_purged,
                        "sweeper pass"
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => tracing::error!(error = %err, "sweeper pass failed"),
            }
            if !sleep_or_shutdown(interval, &mut shutdown).await {
                lease.release().await;
                return;
            }
        }
    }

    pub async fn sweep_once(&self) -> DomainResult<SweepReport> {
        let services = &self.services;
        let now = services.clock.now();
        let before = self.gc_horizon(now);
        let mut report = SweepReport {
            snapshots_deleted: services.delete_expired_snapshots(now).await?,
            links_expired: services.expire_links(now).await?,
            snapshots_released: services.release_unread_snapshots().await?,
            ..SweepReport::default()
        };
        let collected = services.collect_chunks(before).await?;
        (report.chunks_collected, report.packs_deleted) = (collected.chunks, collected.packs);
        let last = self.last_orphan_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= ORPHAN_SWEEP_INTERVAL.as_secs() as i64 {
            report.orphan_packs_deleted = services.delete_orphan_packs(before, before).await?;
            self.last_orphan_sweep.store(now, Ordering::Relaxed);
        }
        report.oplog_slices_retired = services.retain_oplog(now).await?;
        report.oplog_slices_collected = services.collect_oplog_slices(before).await?;
        report.console_sessions_purged = services.purge_console_sessions().await?;
        Ok(report)
    }

    /// Objects unreferenced (or written) before this time are old enough to collect.
    fn gc_horizon(&self, now: UnixSeconds) -> UnixSeconds {
        now - self.gc_delay.as_secs() as i64
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::blocks::{
        encode_chunk, BlockError, ChunkLocation, Encoding, ListedPack, ObjectBlockStore, Pack,
        PackBuilder, PackId,
    };
    use crate::domain::Clock;
    use crate::meta::SqliteMetaStore;
    use crate::model::ChunkInfo;

    const GC_DELAY: Duration = Duration::from_secs(3600);

    /// A clock the test moves by hand, starting at the wall clock (pack objects carry
    /// wall-clock modification times).
    struct ManualClock(AtomicI64);

    impl Clock for ManualClock {
        fn now(&self) -> UnixSeconds {
            self.0.load(Ordering::Relaxed)
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        meta: Arc<SqliteMetaStore>,
        services: Arc<Services>,
        sweeper: Sweeper,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("temp dir");
            let meta = Arc::new(
                SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
                    .await
                    .expect("meta"),
            );
            let blocks = ObjectBlockStore::local(&dir.path().join("blocks")).expect("blocks");
            let clock = Arc::new(ManualClock(AtomicI64::new(chrono::Utc::now().timestamp())));
            let services = Arc::new(Services::new(
                meta.clone(),
                Arc::new(blocks),
                clock.clone(),
                vec![0; 32],
            ));
            Fixture {
                _dir: dir,
                clock,
                meta,
                sweeper: Sweeper::new(services.clone(), GC_DELAY),
                services,
            }
        }

        fn advance(&self, by: Duration) {
            self.clock
                .0
                .fetch_add(by.as_secs() as i64, Ordering::Relaxed);
        }

        fn pack(&self, plaintexts: &[&[u8]]) -> Pack {
            let mut builder = PackBuilder::default();
            for plain in plaintexts {
                builder.push(&encode_chunk(plain).expect("encode"));
            }
            builder.finish()
        }

        /// Stores a pack of `plaintexts` and indexes its chunks, unreferenced, as an
        /// upload batch does.
        async fn store_pack(&self, plaintexts: &[&[u8]]) -> Pack {
            let pack = self.pack(plaintexts);
            self.services.blocks.put_pack(&pack).await.expect("put");
            let infos: Vec<ChunkInfo> = plaintexts
                .iter()
                .zip(pack.chunks())
                .map(|(plain, at)| {
                    let chunk = encode_chunk(plain).expect("encode");
                    ChunkInfo {
                        id: at.id,
                        raw_bytes: chunk.raw_len(),
                        stored_bytes: chunk.payload().len() as u32,
                        is_deflate: chunk.encoding() == Encoding::Deflate,
                        placement: at.placement,
                    }
                })
                .collect();
            let meta = &self.services.meta;
            let (id, bytes, now) = (pack.id(), pack.bytes().len() as u64, self.clock.now());
            let claim = meta
                .claim_pack(id, bytes, crate::ids::ClaimToken::generate(), now)
                .await
                .expect("claim")
                .expect("claimed");
            let recorded = meta
                .record_pack(id, bytes, &infos, claim, now)
                .await
                .expect("record")
                .expect("the claim holds");
            assert!(recorded.iter().all(|new| *new));
            pack
        }

        async fn is_stored(&self, at: &ChunkLocation) -> bool {
            match self.services.blocks.get(at).await {
                Ok(_) => true,
                Err(BlockError::NotFound(_)) => false,
                Err(e) => panic!("reading {at:?}: {e}"),
            }
        }

        async fn listed_packs(&self) -> Vec<PackId> {
            let listed: Vec<ListedPack> = self
                .services
                .blocks
                .list_packs()
                .try_collect()
                .await
                .expect("list");
            listed.iter().map(|p| p.id).collect()
        }
    }

    #[tokio::test]
    async fn a_pack_stays_while_one_of_its_chunks_is_indexed_and_goes_with_the_last() {
        let f = Fixture::new().await;
        let pack = f.store_pack(&[b"first chunk", b"second chunk"]).await;
        let (first, second) = (pack.chunks()[0], pack.chunks()[1]);
        f.advance(GC_DELAY / 2);
        // An import about to reuse the second chunk looks it up: its idle clock restarts.
        let now = f.clock.now();
        f.services
            .meta
            .find_chunks(&[second.id], now)
            .await
            .expect("find");
        f.advance(GC_DELAY / 2 + Duration::from_secs(1));

        let report = f.sweeper.sweep_once().await.expect("sweep");
        assert_eq!((report.chunks_collected, report.packs_deleted), (1, 0));
        assert!(f.is_stored(&second).await);
        assert!(
            f.is_stored(&first).await,
            "a collected chunk's bytes stay in a pack that is still used (no repacking)"
        );
        assert_eq!(f.listed_packs().await, vec![pack.id()]);

        f.advance(GC_DELAY);
        let report = f.sweeper.sweep_once().await.expect("sweep");
        assert_eq!((report.chunks_collected, report.packs_deleted), (1, 1));
        assert!(!f.is_stored(&second).await);
        assert_eq!(f.listed_packs().await, Vec::<PackId>::new());
        let report = f.sweeper.sweep_once().await.expect("sweep");
        assert_eq!(report, SweepReport::default(), "nothing left to do");
    }

    #[tokio::test]
    async fn a_chunk_stored_alone_is_deleted_when_collected() {
        let f = Fixture::new().await;
        let chunk = encode_chunk(b"stored before packs existed").expect("encode");
        let at = ChunkLocation {
            id: chunk.id(),
            placement: crate::blocks::Placement::Loose,
        };
        let dir = f._dir.path().join("blocks").join("chunks");
        let hex = chunk.id().to_hex();
        std::fs::create_dir_all(dir.join(&hex[..2])).expect("mkdir");
        std::fs::write(dir.join(&hex[..2]).join(&hex), chunk.to_object_bytes()).expect("write");
        sqlx::query(
            "INSERT INTO chunks (id, raw_bytes, stored_bytes, is_deflate, refcount, unreferenced_since) \
             VALUES (?, ?, ?, FALSE, 0, ?)",
        )
        .bind(hex)
        .bind(i64::from(chunk.raw_len()))
        .bind(chunk.payload().len() as i64)
        .bind(f.clock.now())
        .execute(f.meta.pool())
        .await
        .expect("indexed as before packs");
        assert!(f.is_stored(&at).await);

        f.advance(GC_DELAY + Duration::from_secs(1));
        let report = f.sweeper.sweep_once().await.expect("sweep");
        assert_eq!((report.chunks_collected, report.packs_deleted), (1, 0));
        assert!(!f.is_stored(&at).await);
    }

    #[tokio::test]
    async fn orphan_packs_are_deleted_once_older_than_the_gc_delay() {
        let f = Fixture::new().await;
        let indexed = f.store_pack(&[b"an indexed chunk"]).await;
        let orphan = f.pack(&[b"a chunk never indexed"]);
        f.services.blocks.put_pack(&orphan).await.expect("put");

        let report = f.sweeper.sweep_once().await.expect("sweep");
        assert_eq!(
            report.orphan_packs_deleted, 0,
            "a recent pack may yet be indexed"
        );
        let mut listed = f.listed_packs().await;
        listed.sort();
        let mut both = vec![indexed.id(), orphan.id()];
        both.sort();
        assert_eq!(listed, both);

        f.advance(GC_DELAY + Duration::from_secs(60));
        let now = f.clock.now();
        assert_eq!(
            f.services
                .delete_orphan_packs(
                    now - GC_DELAY.as_secs() as i64,
                    now - GC_DELAY.as_secs() as i64
                )
                .await
                .expect("sweep"),
            1
        );
        assert_eq!(f.listed_packs().await, vec![indexed.id()]);
        assert!(f.is_stored(&indexed.chunks()[0]).await);
        assert!(!f.is_stored(&orphan.chunks()[0]).await);
    }
}
