//! Importing a snapshot: opening it with one uncommitted part per replica set, answering
//! which chunks the store lacks, and storing uploaded chunks as packs.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use rewind_api_types::ChunkUploadSummary;
use rewind_formats::frames::{split_frames, FrameError};

use super::packs;
use super::{invalid, parse_chunk_hex};
use crate::blocks::chunk::OBJECT_HEADER_BYTES;
use crate::blocks::{encode_chunk, BlockStore, ChunkId, Encoding, Pack, PackBuilder, Placement};
use crate::domain::{block_error, Clock};
use crate::domain::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClaimToken, ClusterId, GroupId, SnapshotId};
use crate::meta::snapshots::PackDeletionRule;
use crate::meta::MetaStore;
use crate::model::{
    ChunkInfo, ClusterType, OplogTs, SnapshotPartRecord, SnapshotRecord, UnixSeconds,
};

/// Most chunk ids one "which are missing" query may ask about.
pub const MAX_IDS_PER_QUERY: usize = 10_000;
/// How far in the future a snapshot's timestamp may lie (clock skew between hosts).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// What `POST …/snapshots` asks for.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub created: OplogTs,
    pub last_oplog_applied: Option<OplogTs>,
    pub mongod_version: String,
    pub storage_engine: Option<String>,
}

impl Services {
    /// Opens an import: an incomplete snapshot with one uncommitted part per replica set.
    pub async fn create_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        spec: NewSnapshot,
    ) -> DomainResult<SnapshotRecord> {
        let top = self
            .authorized_cluster(principal, group, cluster, GroupAccess::BackupAdmin)
            .await?;
        if top.parent_id.is_some() {
            return Err(invalid(
                "clusterId",
                "Snapshots are taken of a whole cluster: use the sharded cluster's id, not a shard's.",
            ));
        }
        let now = self.clock.now();
        if i64::from(spec.created.secs) > now + MAX_FUTURE_SKEW_SECS || spec.created.secs == 0 {
            return Err(invalid(
                "created",
                "Invalid attribute created specified: the timestamp is zero or in the future.",
            ));
        }
        if spec.last_oplog_applied.is_some_and(|t| t < spec.created) {
            return Err(invalid(
                "lastOplogAppliedTimestamp",
                "Invalid attribute lastOplogAppliedTimestamp specified: it precedes created.",
            ));
        }
        validate_version(&spec.mongod_version)?;
        let engine = spec
            .storage_engine
            .unwrap_or_else(|| "wiredTiger".to_owned());
        if engine.is_empty()
            || engine.len() > 32
            || !engine.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "storageEngine",
                "Invalid attribute storageEngine specified.",
            ));
        }
        let members = self.members_of(group, cluster).await?;
        let parts = members
            .iter()
            .filter(|m| m.type_name != ClusterType::ShardedReplicaSet)
            .filter_map(|m| {
                let replica_set = m.replica_set_name.clone()?;
                Some(SnapshotPartRecord::uncommitted(
                    m.id,
                    replica_set,
                    m.type_name,
                ))
            })
            .collect();
        let expires = self.imported_expiry(group, cluster, spec.created).await?;
        let snapshot = SnapshotRecord {
            id: SnapshotId::generate(),
            group_id: group,
            cluster_id: cluster,
            created: spec.created,
            last_oplog_applied: spec.last_oplog_applied,
            complete: false,
            expires,
            do_not_delete: false,
            deleted_at: None,
            mongod_version: spec.mongod_version,
            storage_engine: engine,
            recorded: now,
            parts,
        };
        self.meta.insert_snapshot(&snapshot).await?;
        Ok(snapshot)
    }

    /// Which of `ids` the store lacks (in the order asked).
    pub async fn missing_chunks(
        &self,
        principal: &Principal,
        group: GroupId,
        ids: &[String],
    ) -> DomainResult<Vec<String>> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        if ids.len() > MAX_IDS_PER_QUERY {
            return Err(invalid(
                "ids",
                format!("Ask about at most {MAX_IDS_PER_QUERY} chunk ids at a time."),
            ));
        }
        let parsed = ids
            .iter()
            .map(|t| parse_chunk_hex(t))
            .collect::<DomainResult<Vec<_>>>()?;
        let present = self.indexed_among(&parsed).await?;
        Ok(parsed
            .iter()
            .filter(|id| !present.contains(*id))
            .map(ChunkId::to_hex)
            .collect())
    }

    /// The chunks among `ids` the index holds; their idle clocks restart (see
    /// [`crate::meta::SnapshotMeta::find_chunks`]).
    async fn indexed_among(&self, ids: &[ChunkId]) -> DomainResult<HashSet<ChunkId>> {
        Ok(self
            .meta
            .find_chunks(ids, self.clock.now())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Stores a batch of uploaded chunks (frames of `id | len u32 BE | bytes`), verifying
    /// each against its id. A frame whose bytes do not hash to its id is refused and
    /// nothing of the batch is stored. The chunks the index lacks are stored as one pack.
    pub async fn store_chunks(
        &self,
        principal: &Principal,
        group: GroupId,
        body: Bytes,
    ) -> DomainResult<ChunkUploadSummary> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let frames = split_frames(&body).map_err(malformed_upload)?;
        let claimed: Vec<ChunkId> = frames.iter().map(|(id, _)| *id).collect();
        // Held from the index lookup until the new chunks are indexed, so nothing is
        // collected in between (the lookup also resets the idle clock of the chunks found).
        let gc_guard = self.gc_lock.clone().read_owned().await;
        let indexed = self.indexed_among(&claimed).await?;
        let batch = tokio::task::spawn_blocking(move || pack_new_chunks(frames, &indexed))
            .await
            .map_err(|e| DomainError::Internal(format!("chunk encoding task failed: {e}")))??;
        let mut summary = ChunkUploadSummary {
            bytes_newly_stored: 0,
            bytes_received: batch.bytes_received,
            chunks_newly_stored: 0,
            chunks_received: claimed.len() as u64,
        };
        let Some(pack) = batch.pack else {
            return Ok(summary);
        };
        // A received batch is stored and indexed to the end even if the client goes away
        // meanwhile (the request's future is then dropped, the task is not): otherwise its
        // pack could be written but not indexed, and its chunks uploaded again.
        let persist = persist_pack(
            self.blocks.clone(),
            self.meta.clone(),
            self.clock.clone(),
            self.gc_lock.clone(),
            gc_guard,
            pack,
            batch.chunks.clone(),
        );
        let inserted = tokio::spawn(persist)
            .await
            .map_err(|e| DomainError::Internal(format!("chunk storing task failed: {e}")))??;
        for (info, new) in batch.chunks.iter().zip(inserted) {
            if new {
                summary.chunks_newly_stored += 1;
                summary.bytes_newly_stored += u64::from(info.stored_bytes);
            }
        }
        Ok(summary)
    }
}

/// An upload batch, verified, with its new chunks packed.
struct PackedBatch {
    /// `None` when the index already holds every chunk of the batch.
    pack: Option<Pack>,
    /// The chunks in the pack, in pack order, placed in it.
    chunks: Vec<ChunkInfo>,
    /// Plaintext bytes of every frame.
    bytes_received: u64,
}

/// Checks every frame against its id, and encodes and packs those chunks not in `indexed`
/// (each once, however often the batch names it). CPU-bound: runs on the blocking pool.
fn pack_new_chunks(
    frames: Vec<(ChunkId, Bytes)>,
    indexed: &HashSet<ChunkId>,
) -> DomainResult<PackedBatch> {
    let plain_bytes: usize = frames.iter().map(|(_, data)| data.len()).sum();
    let mut builder = PackBuilder::with_capacity(plain_bytes + frames.len() * OBJECT_HEADER_BYTES);
    let mut chunks: Vec<ChunkInfo> = Vec::new();
    let mut packed = HashSet::new();
    for (id, data) in &frames {
        if indexed.contains(id) || packed.contains(id) {
            if ChunkId::of(data) != *id {
                return Err(hash_mismatch(id));
            }
            continue;
        }
        let chunk = encode_chunk(data).map_err(block_error)?;
        if chunk.id() != *id {
            return Err(hash_mismatch(id));
        }
        builder.push(&chunk);
        packed.insert(*id);
        chunks.push(ChunkInfo {
            id: *id,
            raw_bytes: chunk.raw_len(),
            stored_bytes: chunk.payload().len() as u32,
            is_deflate: chunk.encoding() == Encoding::Deflate,
            placement: Placement::Loose,
        });
    }
    let bytes_received = plain_bytes as u64;
    if builder.is_empty() {
        return Ok(PackedBatch {
            pack: None,
            chunks,
            bytes_received,
        });
    }
    let pack = builder.finish();
    for (info, at) in chunks.iter_mut().zip(pack.chunks()) {
        info.placement = at.placement;
    }
    Ok(PackedBatch {
        pack: Some(pack),
        chunks,
        bytes_received,
    })
}

fn hash_mismatch(id: &ChunkId) -> DomainError {
    DomainError::rejected(
        ErrorCode::ChunkHashMismatch,
        format!("The bytes uploaded for chunk {id} do not hash to that id."),
        vec![id.to_hex()],
    )
}

/// Claims the pack's row, writes the pack, then indexes its chunks while the claim holds:
/// an indexed chunk is always stored (see `domain::garbage`). Holds the shared GC guard
/// throughout, so no collection or orphan sweep of this node runs in between.
///
/// When indexing fails (a full metadata store), the pack is removed at once rather than
/// left for the hourly orphan sweep: its row is moved to `deleting` as the sweep would
/// (with `gc_lock` held exclusively, so no writer of this node is between claiming the
/// same pack and indexing it; one on another node then fails to index and resends). A
/// failed write of the pack leaves nothing to remove; its claim goes with the next sweep.
#[allow(clippy::too_many_arguments)]
async fn persist_pack(
    blocks: Arc<dyn BlockStore>,
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    gc_lock: Arc<tokio::sync::RwLock<()>>,
    gc_guard: tokio::sync::OwnedRwLockReadGuard<()>,
    pack: Pack,
    chunks: Vec<ChunkInfo>,
) -> DomainResult<Vec<bool>> {
    let pack_bytes = pack.bytes().len() as u64;
    let claim = packs::claim_pack(meta.as_ref(), clock.as_ref(), pack.id(), pack_bytes).await?;
    blocks.put_pack(&pack).await.map_err(block_error)?;
    let indexed = meta
        .record_pack(pack.id(), pack_bytes, &chunks, claim, clock.now())
        .await;
    let err = match indexed {
        Ok(Some(inserted)) => return Ok(inserted),
        Ok(None) => return Err(packs::claim_lost(pack.id())),
        Err(err) => DomainError::from(err),
    };
    drop(gc_guard);
    let _exclusive = gc_lock.write().await;
    let deletion = ClaimToken::generate();
    let now = clock.now();
    let any_claim = PackDeletionRule {
        claimed_before: now + 1,
        deletion_started_before: i64::MIN,
    };
    let cleanup = match meta
        .start_pack_deletion(pack.id(), deletion, now, any_claim)
        .await
    {
        Ok(true) => packs::delete_pack(meta.as_ref(), blocks.as_ref(), pack.id(), deletion).await,
        Ok(false) => Ok(()),
        Err(cleanup) => Err(cleanup.into()),
    };
    if let Err(cleanup) = cleanup {
        tracing::warn!(pack = %pack.id(), error = %cleanup, "could not remove the pack of a failed upload; the orphan sweep will");
    }
    Err(err)
}

fn validate_version(version: &str) -> DomainResult<()> {
    let parts: Vec<&str> = version.split('.').collect();
    let ok = (2..=3).contains(&parts.len())
        && version.len() <= 32
        && parts.iter().enumerate().all(|(i, p)| {
            let digits = p.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && (i + 1 == parts.len() || digits == p.len())
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "mongodVersion",
            format!(
                "Invalid attribute mongodVersion specified: {version:?} is not a MongoDB version."
            ),
        ))
    }
}

/// The refusal of an upload body that does not split into frames.
fn malformed_upload(err: FrameError) -> DomainError {
    DomainError::rejected(
        ErrorCode::InvalidAttribute,
        format!("Malformed chunk upload: {err}."),
        vec!["body".into()],
    )
}

impl Services {
    /// The expiry an import opened now gets from the project's retention (`None` while the
    /// project sets none), given the cluster's complete snapshots.
    async fn imported_expiry(
        &self,
        group: GroupId,
        cluster: ClusterId,
        created: OplogTs,
    ) -> DomainResult<Option<UnixSeconds>> {
        let Some(retention) = self.settings_of(group).await?.retention else {
            return Ok(None);
        };
        let others: Vec<UnixSeconds> = self
            .complete_snapshots_at_or_before(group, cluster, OplogTs::MAX)
            .await?
            .iter()
            .map(|s| i64::from(s.created.secs))
            .collect();
        Ok(Some(retention.expiry(
            i64::from(created.secs),
            self.clock.now(),
            &others,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_look_like_mongodb_versions() {
        for good in ["7.0.2", "4.2", "8.0.0-rc1"] {
            assert!(validate_version(good).is_ok(), "{good}");
        }
        for bad in ["", "7", "x.y", "7..1", "1.2.3.4"] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_uploads_keep_their_answers() {
        let cases = [
            (FrameError::TruncatedHeader, "truncated frame header"),
            (
                FrameError::BadLength,
                "a chunk length is zero or above the maximum",
            ),
            (FrameError::TruncatedChunk, "truncated chunk"),
        ];
        for (err, reason) in cases {
            let DomainError::Rejected {
                code,
                detail,
                parameters,
            } = malformed_upload(err)
            else {
                panic!("{err:?} is not a refusal");
            };
            assert_eq!(code, ErrorCode::InvalidAttribute);
            assert_eq!(detail, format!("Malformed chunk upload: {reason}."));
            assert_eq!(parameters, vec!["body".to_owned()]);
        }
    }
}
