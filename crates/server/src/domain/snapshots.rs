//! Snapshots: importing a cluster's data files chunk by chunk, committing per-replica-set
//! manifests, retention settings, deletion, and verification.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use rewind_api_types::{ChunkUploadSummary, ManifestFile, PartManifest, VerifyReport};
use rewind_formats::frames::{split_frames, FrameError};
use serde::{Deserialize, Serialize};

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use std::sync::Arc;

use crate::blocks::chunk::OBJECT_HEADER_BYTES;
use crate::blocks::{
    encode_chunk, BlockError, BlockStore, ChunkId, ChunkLocation, Encoding, ObjectKey, Pack,
    PackBuilder, Placement, MAX_CHUNK_BYTES,
};
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::meta::snapshots::PartCommit;
use crate::meta::MetaStore;
use crate::model::{
    ChunkInfo, ClusterRecord, ClusterType, OplogTs, PageOf, PageRequest, PartStats,
    SnapshotPartRecord, SnapshotRecord, UnixSeconds,
};

/// Most chunk ids one "which are missing" query may ask about.
pub const MAX_IDS_PER_QUERY: usize = 10_000;
/// Most files one part manifest may list.
pub const MAX_FILES_PER_PART: usize = 1_000_000;
/// Longest relative path accepted in a manifest, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// How far in the future a snapshot's timestamp may lie (clock skew between hosts).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;
/// Chunks read per store call while verifying (one blocking task on local files).
const VERIFY_WINDOW_CHUNKS: usize = 64;
/// Index rows read per query while verifying the whole store.
const VERIFY_PAGE_CHUNKS: u32 = 10_000;

/// What Rewind keeps of a committed part: the client's manifest plus, per chunk, how it is
/// stored, so a restore can size and lay out the archive without touching the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredManifest {
    pub files: Vec<StoredFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub path: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: i64,
    pub chunks: Vec<StoredChunkRef>,
}

/// `(id hex, plaintext bytes, stored payload bytes, deflate-encoded?)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunkRef(
    #[serde(with = "hex_id")] pub ChunkId,
    pub u32,
    pub u32,
    pub bool,
);

impl StoredChunkRef {
    pub fn id(&self) -> ChunkId {
        self.0
    }
    pub fn raw_len(&self) -> u32 {
        self.1
    }
    pub fn stored_len(&self) -> u32 {
        self.2
    }
    pub fn is_deflate(&self) -> bool {
        self.3
    }
}

mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::blocks::ChunkId;

    pub fn serialize<S: Serializer>(id: &ChunkId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChunkId, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(ChunkId::from_bytes(out))
    }
}

/// The object name of a part's stored manifest, derived from its content: two commits of
/// one part racing each other write different objects, and the part row records the one
/// whose chunks it referenced. The replica set name is hex-encoded so any name a cluster
/// may have makes one safe path segment.
fn manifest_name(snapshot: SnapshotId, replica_set: &str, body: &[u8]) -> String {
    let digest = blake3::hash(body).to_hex();
    format!(
        "{snapshot}-{}-{}.json",
        hex::encode(replica_set),
        &digest[..32]
    )
}

/// The object key of a stored manifest, by the name its part row records.
pub fn manifest_key(name: &str) -> ObjectKey {
    ObjectKey::Manifest {
        name: name.to_owned(),
    }
}

/// What `POST …/snapshots` asks for.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub created: OplogTs,
    pub last_oplog_applied: Option<OplogTs>,
    pub mongod_version: String,
    pub storage_engine: Option<String>,
}

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::rejected(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

fn snapshot_not_found(id: SnapshotId, cluster: ClusterId) -> DomainError {
    DomainError::rejected(
        ErrorCode::SnapshotNotFound,
        format!("No snapshot with ID {id} exists for cluster {cluster}."),
        vec![id.to_hex(), cluster.to_hex()],
    )
}

/// Checks a manifest path: relative, `/`-separated, no empty, `.` or `..` components.
pub fn validate_path(path: &str) -> DomainResult<()> {
    let ok = !path.is_empty()
        && path.len() <= MAX_PATH_BYTES
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "files.path",
            format!(
                "Invalid attribute files.path specified: {path:?} is not a safe relative path."
            ),
        ))
    }
}

fn parse_chunk_hex(text: &str) -> DomainResult<ChunkId> {
    ChunkId::parse_hex(text).ok_or_else(|| {
        invalid(
            "ids",
            format!("Invalid attribute ids specified: {text:?} is not a 64-hex chunk id."),
        )
    })
}

/// WiredTiger's collection and index files: the part's data proper.
fn is_data_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.starts_with("collection-") || name.starts_with("index-")) && name.ends_with(".wt")
}

impl Services {
    async fn authorized_cluster(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        access: GroupAccess,
    ) -> DomainResult<ClusterRecord> {
        self.authorize_group(principal, group, access).await?;
        self.find_cluster(group, cluster).await
    }

    /// Loads a live snapshot of a cluster the caller may read.
    pub async fn get_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<SnapshotRecord> {
        self.live_snapshot(principal, group, cluster, id, GroupAccess::Read)
            .await
    }

    /// A snapshot that is not deleted, of a cluster the caller may act on as `access` says.
    async fn live_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
        access: GroupAccess,
    ) -> DomainResult<SnapshotRecord> {
        self.authorized_cluster(principal, group, cluster, access)
            .await?;
        match self.meta.get_snapshot(group, cluster, id).await? {
            Some(s) if s.deleted_at.is_none() => Ok(s),
            _ => Err(snapshot_not_found(id, cluster)),
        }
    }

    pub async fn list_snapshots(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> DomainResult<PageOf<SnapshotRecord>> {
        self.authorized_cluster(principal, group, cluster, GroupAccess::Read)
            .await?;
        Ok(self.meta.list_snapshots(group, cluster, page).await?)
    }

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
        let snapshot = SnapshotRecord {
            id: SnapshotId::generate(),
            group_id: group,
            cluster_id: cluster,
            created: spec.created,
            last_oplog_applied: spec.last_oplog_applied,
            complete: false,
            expires: None,
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
            gc_guard,
            pack,
            batch.chunks.clone(),
            self.clock.now(),
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

    /// Commits one replica set's manifest; the snapshot completes with its last part.
    pub async fn commit_part(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        snapshot: SnapshotId,
        replica_set: &str,
        manifest: PartManifest,
    ) -> DomainResult<SnapshotRecord> {
        let record = self
            .get_snapshot_for_write(principal, group, cluster, snapshot)
            .await?;
        let part = record
            .parts
            .iter()
            .find(|p| p.replica_set_name == replica_set)
            .ok_or_else(|| {
                invalid(
                    "replicaSetName",
                    format!("Snapshot {snapshot} has no part for replica set {replica_set:?}."),
                )
            })?;
        if part.committed {
            return Err(DomainError::rejected(
                ErrorCode::SnapshotPartAlreadyCommitted,
                format!("The part {replica_set} of snapshot {snapshot} is already committed."),
                vec![replica_set.to_owned()],
            ));
        }
        let _gc_guard = self.gc_lock.read().await;
        let (stored, stats, distinct) = self.resolve_manifest(manifest).await?;
        let body = serde_json::to_vec(&stored).map_err(|e| DomainError::Internal(e.to_string()))?;
        let name = manifest_name(snapshot, replica_set, &body);
        self.blocks
            .put_object(&manifest_key(&name), Bytes::from(body))
            .await
            .map_err(block_error)?;
        match self
            .meta
            .commit_part(snapshot, replica_set, stats, &distinct, &name)
            .await?
        {
            PartCommit::Committed { .. } => {}
            PartCommit::AlreadyCommitted => {
                self.discard_losing_manifest(
                    principal,
                    group,
                    cluster,
                    snapshot,
                    replica_set,
                    &name,
                )
                .await;
                return Err(DomainError::rejected(
                    ErrorCode::SnapshotPartAlreadyCommitted,
                    format!("The part {replica_set} of snapshot {snapshot} is already committed."),
                    vec![replica_set.to_owned()],
                ));
            }
            PartCommit::UnknownChunk(id) => return Err(unknown_chunk(&id)),
        }
        tracing::info!(snapshot.id = %snapshot, replica_set, files = stats.file_count, size_bytes = stats.file_size_bytes, "snapshot part committed");
        self.get_snapshot(principal, group, cluster, snapshot).await
    }

    async fn get_snapshot_for_write(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<SnapshotRecord> {
        self.live_snapshot(principal, group, cluster, id, GroupAccess::BackupAdmin)
            .await
    }

    /// Validates a client manifest against the chunk index and sizes it. Called with the
    /// GC guard held, shared.
    async fn resolve_manifest(
        &self,
        manifest: PartManifest,
    ) -> DomainResult<(StoredManifest, PartStats, Vec<ChunkId>)> {
        if manifest.files.len() > MAX_FILES_PER_PART {
            return Err(invalid(
                "files",
                format!("A part may list at most {MAX_FILES_PER_PART} files."),
            ));
        }
        check_paths(&manifest.files)?;
        let mut distinct = BTreeSet::new();
        for file in &manifest.files {
            let mut total = 0u64;
            for (hex_id, len) in &file.chunks {
                distinct.insert(parse_chunk_hex(hex_id)?);
                if *len == 0 || *len as usize > MAX_CHUNK_BYTES {
                    return Err(invalid(
                        "files.chunks",
                        format!("Chunk {hex_id} has an impossible length {len}."),
                    ));
                }
                total += u64::from(*len);
            }
            if total != file.size {
                return Err(invalid(
                    "files.size",
                    format!(
                        "File {:?} declares {} bytes but its chunks hold {total}.",
                        file.path, file.size
                    ),
                ));
            }
        }
        let distinct: Vec<ChunkId> = distinct.into_iter().collect();
        // A read, not `find_chunks`: the caller holds the GC guard until the commit that
        // references these chunks, so no idle clock needs resetting (and rewriting every
        // row of a large part was the largest cost of a commit).
        let known: HashMap<ChunkId, ChunkInfo> = self
            .meta
            .locate_chunks(&distinct)
            .await?
            .into_iter()
            .map(|info| (info.id, info))
            .collect();
        let mut stats = PartStats {
            file_count: manifest.files.len() as u64,
            ..PartStats::default()
        };
        let mut files = Vec::with_capacity(manifest.files.len());
        for file in manifest.files {
            stats.file_size_bytes += file.size;
            if is_data_file(&file.path) {
                stats.data_size_bytes += file.size;
            }
            let mut chunks = Vec::with_capacity(file.chunks.len());
            for (hex_id, len) in &file.chunks {
                let id = parse_chunk_hex(hex_id)?;
                let info = known.get(&id).ok_or_else(|| unknown_chunk(&id))?;
                if info.raw_bytes != *len {
                    return Err(invalid(
                        "files.chunks",
                        format!("Chunk {hex_id} holds {} bytes, not {len}.", info.raw_bytes),
                    ));
                }
                chunks.push(StoredChunkRef(
                    id,
                    info.raw_bytes,
                    info.stored_bytes,
                    info.is_deflate,
                ));
            }
            files.push(StoredFile {
                path: file.path,
                size: file.size,
                mode: file.mode & 0o7777,
                mtime: file.mtime,
                chunks,
            });
        }
        stats.storage_size_bytes = known.values().map(|c| u64::from(c.stored_bytes)).sum();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((StoredManifest { files }, stats, distinct))
    }

    /// Removes the manifest a commit wrote before losing a race to another commit of the
    /// same part, unless the winner wrote the very same object.
    async fn discard_losing_manifest(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        snapshot: SnapshotId,
        replica_set: &str,
        name: &str,
    ) {
        let Ok(record) = self.get_snapshot(principal, group, cluster, snapshot).await else {
            return;
        };
        let winner = record
            .parts
            .iter()
            .find(|p| p.replica_set_name == replica_set)
            .and_then(|p| p.manifest_name.as_deref());
        if winner != Some(name) {
            if let Err(err) = self.blocks.delete_object(&manifest_key(name)).await {
                tracing::warn!(snapshot.id = %snapshot, error = %err, "could not remove an unused manifest");
            }
        }
    }

    /// Reads a committed part's manifest.
    pub async fn load_manifest(
        &self,
        snapshot: SnapshotId,
        part: &SnapshotPartRecord,
    ) -> DomainResult<StoredManifest> {
        let replica_set = &part.replica_set_name;
        let name = part.manifest_name.as_deref().ok_or_else(|| {
            DomainError::Internal(format!(
                "part {snapshot}/{replica_set} has no committed manifest"
            ))
        })?;
        let bytes = self
            .blocks
            .get_object(&manifest_key(name))
            .await
            .map_err(block_error)?
            .ok_or_else(|| {
                DomainError::Internal(format!("manifest of {snapshot}/{replica_set} is missing"))
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            DomainError::Internal(format!(
                "manifest of {snapshot}/{replica_set} is unreadable: {e}"
            ))
        })
    }

    /// `PATCH …/snapshots/{S}`: `doNotDelete` true clears `expires`; an expiry already in the
    /// past cannot be edited, and a new one must lie in the future.
    pub async fn update_snapshot_retention(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
        expires: Option<UnixSeconds>,
        do_not_delete: Option<bool>,
    ) -> DomainResult<SnapshotRecord> {
        let record = self
            .get_snapshot_for_write(principal, group, cluster, id)
            .await?;
        let now = self.clock.now();
        if expires.is_some() && record.expires.is_some_and(|e| e < now) {
            return Err(invalid("expires", "Invalid attribute expires specified: this snapshot's expiry has passed and cannot be edited."));
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(invalid(
                "expires",
                "Invalid attribute expires specified: it must lie in the future.",
            ));
        }
        let do_not_delete = do_not_delete.unwrap_or(record.do_not_delete);
        let expires = if do_not_delete {
            None
        } else {
            expires.or(record.expires)
        };
        self.meta
            .set_snapshot_retention(id, expires, do_not_delete)
            .await?;
        self.get_snapshot(principal, group, cluster, id).await
    }

    /// Deletes a snapshot. Its chunks are released by the sweeper once no restore reads
    /// them, and collected only after the GC delay.
    pub async fn delete_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<()> {
        let record = self
            .get_snapshot_for_write(principal, group, cluster, id)
            .await?;
        if record.do_not_delete {
            return Err(DomainError::rejected(
                ErrorCode::SnapshotMarkedDoNotDelete,
                format!("Snapshot {id} is marked doNotDelete; clear that flag first."),
                vec![id.to_hex()],
            ));
        }
        self.meta
            .mark_snapshot_deleted(id, self.clock.now())
            .await?;
        tracing::info!(snapshot.id = %id, "snapshot deleted");
        Ok(())
    }

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
pub(crate) fn location_of(info: &ChunkInfo) -> ChunkLocation {
    ChunkLocation {
        id: info.id,
        placement: info.placement,
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

/// Writes the pack, then indexes its chunks: an indexed chunk is always stored. Holds the
/// shared GC guard throughout, so no collection or orphan sweep runs in between.
async fn persist_pack(
    blocks: Arc<dyn BlockStore>,
    meta: Arc<dyn MetaStore>,
    _gc_guard: tokio::sync::OwnedRwLockReadGuard<()>,
    pack: Pack,
    chunks: Vec<ChunkInfo>,
    now: UnixSeconds,
) -> DomainResult<Vec<bool>> {
    blocks.put_pack(&pack).await.map_err(block_error)?;
    Ok(meta
        .record_pack(pack.id(), pack.bytes().len() as u64, &chunks, now)
        .await?)
}

fn unknown_chunk(id: &ChunkId) -> DomainError {
    invalid(
        "files.chunks",
        format!("Chunk {id} is not in the store: upload it before committing the manifest."),
    )
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

/// Refuses unsafe paths, duplicates, and a file that is also another file's directory.
fn check_paths(files: &[ManifestFile]) -> DomainResult<()> {
    let mut seen = HashSet::with_capacity(files.len());
    for file in files {
        validate_path(&file.path)?;
        if !seen.insert(file.path.as_str()) {
            return Err(invalid(
                "files.path",
                format!("File {:?} is listed twice.", file.path),
            ));
        }
    }
    for file in files {
        let mut prefix = file.path.as_str();
        while let Some((dir, _)) = prefix.rsplit_once('/') {
            if seen.contains(dir) {
                return Err(invalid(
                    "files.path",
                    format!("{dir:?} is both a file and a directory."),
                ));
            }
            prefix = dir;
        }
    }
    Ok(())
}

/// The refusal of an upload body that does not split into frames.
fn malformed_upload(err: FrameError) -> DomainError {
    DomainError::rejected(
        ErrorCode::InvalidAttribute,
        format!("Malformed chunk upload: {err}."),
        vec!["body".into()],
    )
}

pub(crate) fn block_error(err: BlockError) -> DomainError {
    DomainError::Internal(format!("block store: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a\\b",
            "..",
            "a/",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        for good in [
            "WiredTiger",
            "journal/WiredTigerLog.0000000001",
            "db/collection-0-1.wt",
        ] {
            assert!(validate_path(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        let file = |p: &str| ManifestFile {
            chunks: vec![],
            mode: 0o644,
            mtime: 0,
            path: p.into(),
            size: 0,
        };
        assert!(check_paths(&[file("a"), file("a/b")]).is_err());
        assert!(check_paths(&[file("a/b"), file("a/c")]).is_ok());
        assert!(check_paths(&[file("a"), file("a")]).is_err());
    }

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
    fn stored_chunk_refs_keep_their_stored_form() {
        let chunk = StoredChunkRef(ChunkId::from_bytes([0xab; 32]), 40, 12, true);
        let text = serde_json::to_string(&chunk).expect("serializes");
        assert_eq!(text, format!("[\"{}\",40,12,true]", "ab".repeat(32)));
        let upper = text.to_uppercase().replace("TRUE", "true");
        assert_eq!(
            serde_json::from_str::<StoredChunkRef>(&upper).ok(),
            Some(chunk)
        );
        assert!(serde_json::from_str::<StoredChunkRef>("[\"ab\",40,12,true]").is_err());
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
