//! Verification: re-reading and decoding a snapshot's chunks, or every chunk the store
//! indexes, and reporting those missing or corrupt.

use std::collections::{BTreeSet, HashSet};

use rewind_api_types::VerifyReport;

use crate::blocks::{BlockError, ChunkId, ChunkLocation};
use crate::domain::block_error;
use crate::domain::{DomainError, DomainResult, Principal, Services};
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::model::ChunkInfo;

/// Chunks read per store call while verifying (one blocking task on local files).
const VERIFY_WINDOW_CHUNKS: usize = 64;
/// Index rows read per query while verifying the whole store.
const VERIFY_PAGE_CHUNKS: u32 = 10_000;

impl Services {
    /// Re-reads and fully verifies every chunk of a snapshot's committed parts. A chunk the
    /// index lacks, or whose object is gone, is reported missing.
    pub async fn verify_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<VerifyReport> {
        let record = self.get_snapshot(principal, group, cluster, id).await?;
        let mut ids = BTreeSet::new();
        for part in record.parts.iter().filter(|p| p.committed) {
            let manifest = self.load_manifest(id, part).await?;
            ids.extend(
                manifest
                    .files
                    .iter()
                    .flat_map(|f| f.chunks.iter().map(|c| c.0)),
            );
        }
        let ids: Vec<ChunkId> = ids.into_iter().collect();
        let mut located = self.meta.locate_chunks(&ids).await?;
        located.sort_by_key(|c| c.id);
        let mut report = VerifyReport::default();
        let indexed: HashSet<ChunkId> = located.iter().map(|c| c.id).collect();
        for id in ids.iter().filter(|id| !indexed.contains(*id)) {
            report.chunks_checked += 1;
            report.missing.push(id.to_hex());
        }
        self.verify_chunks(&located, &mut report).await?;
        Ok(finish_report(report))
    }

    /// Re-reads every chunk the index holds (organization owners only).
    pub async fn verify_store(&self, principal: &Principal) -> DomainResult<VerifyReport> {
        if !principal.may_administer_org(principal.org_id) {
            return Err(DomainError::unauthorized());
        }
        let mut report = VerifyReport::default();
        let mut after = None;
        loop {
            let page = self.meta.list_chunks(after, VERIFY_PAGE_CHUNKS).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            self.verify_chunks(&page, &mut report).await?;
        }
        Ok(finish_report(report))
    }

    /// Reads and decodes `chunks` where the index places them, a window at a time.
    async fn verify_chunks(
        &self,
        chunks: &[ChunkInfo],
        report: &mut VerifyReport,
    ) -> DomainResult<()> {
        for window in chunks.chunks(VERIFY_WINDOW_CHUNKS) {
            let locations: Vec<ChunkLocation> = window.iter().map(location_of).collect();
            let read = self.blocks.get_many(&locations).await;
            for (at, stored) in locations.iter().zip(read) {
                report.chunks_checked += 1;
                match stored.and_then(|chunk| chunk.decode()) {
                    Ok(plain) => report.bytes_checked += plain.len() as u64,
                    Err(BlockError::NotFound(_)) => report.missing.push(at.id.to_hex()),
                    Err(BlockError::Corrupt { .. }) => report.corrupt.push(at.id.to_hex()),
                    Err(e) => return Err(block_error(e)),
                }
            }
        }
        Ok(())
    }
}

/// Sorts a verification's findings by id and logs damage once.
fn finish_report(mut report: VerifyReport) -> VerifyReport {
    report.missing.sort();
    report.corrupt.sort();
    if !report.corrupt.is_empty() || !report.missing.is_empty() {
        tracing::warn!(
            corrupt = report.corrupt.len(),
            missing = report.missing.len(),
            "verification found damaged chunks"
        );
    }
    report
}

/// Where the index places a chunk, as the block store reads it.
fn location_of(info: &ChunkInfo) -> ChunkLocation {
    ChunkLocation {
        id: info.id,
        placement: info.placement,
    }
}
