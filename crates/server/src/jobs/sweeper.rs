//! The retention sweeper: deletes expired snapshots and abandoned imports, releases the
//! chunk references of deleted snapshots once no restore reads them, and collects chunks
//! that stayed unreferenced for longer than the GC delay. A separate pass retires oplog
//! slices that fell out of their project's point-in-time window and deletes retired (or
//! never committed) slice objects after the same delay.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{sleep_or_shutdown, Shutdown};
use crate::domain::snapshots::manifest_key;
use crate::domain::{DomainResult, Services};
use crate::model::SnapshotRecord;

/// How long a chunk must stay unreferenced before it is collected. It must exceed the
/// longest import: a chunk an import found present is referenced only when its manifest
/// is committed (and each lookup resets the clock).
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(3600);
/// An import not completed within this time is abandoned and its snapshot deleted.
pub const ABANDONED_IMPORT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the sweeper runs.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Chunks collected per pass, so one pass never holds the GC lock for long.
const CHUNKS_PER_PASS: u32 = 2000;

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub snapshots_deleted: usize,
    pub snapshots_released: usize,
    pub chunks_collected: usize,
    pub links_expired: u64,
    pub oplog_slices_retired: u64,
    pub oplog_slices_collected: usize,
}

pub struct Sweeper {
    services: Arc<Services>,
    gc_delay: Duration,
}

impl Sweeper {
    pub fn new(services: Arc<Services>, gc_delay: Duration) -> Self {
        Sweeper { services, gc_delay }
    }

    /// Runs passes every `interval` until shutdown. A failing pass is logged and retried.
    pub async fn run(self, interval: Duration, mut shutdown: Shutdown) {
        loop {
            match self.sweep_once().await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        snapshots_deleted = report.snapshots_deleted,
                        snapshots_released = report.snapshots_released,
                        chunks_collected = report.chunks_collected,
                        links_expired = report.links_expired,
                        oplog_slices_retired = report.oplog_slices_retired,
                        oplog_slices_collected = report.oplog_slices_collected,
                        "sweeper pass"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "sweeper pass failed"),
            }
            if !sleep_or_shutdown(interval, &mut shutdown).await {
                return;
            }
        }
    }

    pub async fn sweep_once(&self) -> DomainResult<SweepReport> {
        let services = &self.services;
        let now = services.clock.now();
        let abandoned_before = now - ABANDONED_IMPORT_AFTER.as_secs() as i64;
        let deleted = services
            .meta
            .delete_expired_snapshots(now, abandoned_before)
            .await?;
        let mut report = SweepReport {
            snapshots_deleted: deleted.len(),
            links_expired: services.meta.expire_deliveries(now).await?,
            ..SweepReport::default()
        };
        for snapshot in services.meta.snapshots_holding_refs().await? {
            if services.is_snapshot_in_use(&snapshot).await? {
                continue;
            }
            self.release(&snapshot).await?;
            report.snapshots_released += 1;
        }
        report.chunks_collected = self.collect_chunks(now).await?;
        self.sweep_oplog(now, &mut report).await?;
        Ok(report)
    }

    /// The oplog pass: retention by each project's window, then collection of slice objects
    /// retired (or left pending) for longer than the GC delay.
    async fn sweep_oplog(&self, now: i64, report: &mut SweepReport) -> DomainResult<()> {
        report.oplog_slices_retired = self.services.retain_oplog(now).await?;
        let before = now - self.gc_delay.as_secs() as i64;
        report.oplog_slices_collected = self.services.collect_oplog_slices(before).await?;
        Ok(())
    }

    async fn release(&self, snapshot: &SnapshotRecord) -> DomainResult<()> {
        let services = &self.services;
        let mut chunks = BTreeSet::new();
        for part in snapshot.parts.iter().filter(|p| p.committed) {
            let manifest = services.load_manifest(snapshot.id, part).await?;
            chunks.extend(
                manifest
                    .files
                    .iter()
                    .flat_map(|f| f.chunks.iter().map(|c| c.0)),
            );
        }
        let chunks: Vec<[u8; 32]> = chunks.into_iter().collect();
        services
            .meta
            .release_snapshot_refs(snapshot.id, &chunks, services.clock.now())
            .await?;
        for name in snapshot
            .parts
            .iter()
            .filter_map(|p| p.manifest_name.as_deref())
        {
            if let Err(err) = services.blocks.delete_object(&manifest_key(name)).await {
                tracing::warn!(snapshot.id = %snapshot.id, error = %err, "could not remove a released manifest");
            }
        }
        Ok(())
    }

    async fn collect_chunks(&self, now: i64) -> DomainResult<usize> {
        let services = &self.services;
        let before = now - self.gc_delay.as_secs() as i64;
        let _exclusive = services.gc_lock.write().await;
        let mut collected = 0;
        for id in services
            .meta
            .collectable_chunks(before, CHUNKS_PER_PASS)
            .await?
        {
            if services.meta.forget_chunk(id, before).await? {
                services
                    .blocks
                    .delete(crate::blocks::ChunkId::from_bytes(id))
                    .await
                    .map_err(crate::domain::snapshots::block_error)?;
                collected += 1;
            }
        }
        Ok(collected)
    }
}
