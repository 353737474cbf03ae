//! A replica set's part manifest: its stored form, checking a client's manifest against the
//! chunk index, committing it (the snapshot completes with its last part), and reading it
//! back.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use rewind_api_types::{ManifestDirectory, ManifestFile, PartManifest};
use serde::{Deserialize, Serialize};

use super::{invalid, parse_chunk_hex};
use crate::blocks::{ChunkId, ObjectKey, MAX_CHUNK_BYTES};
use crate::domain::block_error;
use crate::domain::{DomainError, DomainResult, ErrorCode, Principal, Services};
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::meta::snapshots::PartCommit;
use crate::model::{ChunkInfo, PartStats, SnapshotPartRecord, SnapshotRecord};

/// Most files one part manifest may list (and, apart, most directories).
pub const MAX_FILES_PER_PART: usize = 1_000_000;
/// Longest relative path accepted in a manifest, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// What Rewind keeps of a committed part: the client's manifest plus, per chunk, how it is
/// stored, so a restore can size and lay out the archive without touching the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredManifest {
    /// The part's directories, in path order. Manifests stored before directories were
    /// recorded have none: their archives imply directories from the files' paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<StoredDir>,
    pub files: Vec<StoredFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDir {
    pub path: String,
    pub mode: u32,
    pub mtime: i64,
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

/// WiredTiger's collection and index files: the part's data proper.
fn is_data_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.starts_with("collection-") || name.starts_with("index-")) && name.ends_with(".wt")
}

impl Services {
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
        let gc_guard = self.gc_lock.read().await;
        let (stored, stats, distinct) = self.resolve_manifest(manifest).await?;
        let body = serde_json::to_vec(&stored).map_err(|e| DomainError::Internal(e.to_string()))?;
        let name = manifest_name(snapshot, replica_set, &body);
        self.blocks
            .put_object(&manifest_key(&name), Bytes::from(body))
            .await
            .map_err(block_error)?;
        let committed = self
            .meta
            .commit_part(snapshot, replica_set, stats, &distinct, &name)
            .await;
        let committed = match committed {
            Ok(committed) => committed,
            Err(err) => {
                // The manifest is removed at once unless the part records it: a commit of
                // the same manifest by another request of this node holds the GC lock
                // shared until it has committed, so the exclusive hold waits for it.
                drop(gc_guard);
                let _exclusive = self.gc_lock.write().await;
                self.discard_losing_manifest(
                    principal,
                    group,
                    cluster,
                    snapshot,
                    replica_set,
                    &name,
                )
                .await;
                return Err(err.into());
            }
        };
        match committed {
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
        if manifest.directories.len() > MAX_FILES_PER_PART {
            return Err(invalid(
                "directories",
                format!("A part may list at most {MAX_FILES_PER_PART} directories."),
            ));
        }
        check_paths(&manifest.files, &manifest.directories)?;
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
        let mut dirs: Vec<StoredDir> = manifest
            .directories
            .into_iter()
            .map(|d| StoredDir {
                path: d.path,
                mode: d.mode & 0o7777,
                mtime: d.mtime,
            })
            .collect();
        dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((StoredManifest { dirs, files }, stats, distinct))
    }

    /// Removes the manifest a commit wrote before losing a race to another commit of the
    /// same part, or before failing, unless the part records the very same object.
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
}

fn unknown_chunk(id: &ChunkId) -> DomainError {
    invalid(
        "files.chunks",
        format!("Chunk {id} is not in the store: upload it before committing the manifest."),
    )
}

/// Refuses unsafe paths, duplicates (a directory listed as a file too, among them), and
/// a file that is also the directory of another file or of a listed directory.
fn check_paths(files: &[ManifestFile], dirs: &[ManifestDirectory]) -> DomainResult<()> {
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
    let mut seen_dirs = HashSet::with_capacity(dirs.len());
    for dir in dirs {
        validate_path(&dir.path).map_err(|_| {
            invalid(
                "directories.path",
                format!(
                    "Invalid attribute directories.path specified: {:?} is not a safe relative path.",
                    dir.path
                ),
            )
        })?;
        if seen.contains(dir.path.as_str()) || !seen_dirs.insert(dir.path.as_str()) {
            return Err(invalid(
                "directories.path",
                format!("Directory {:?} is listed twice.", dir.path),
            ));
        }
    }
    let paths = files
        .iter()
        .map(|f| f.path.as_str())
        .chain(dirs.iter().map(|d| d.path.as_str()));
    for path in paths {
        let mut prefix = path;
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
        let dir = |p: &str| ManifestDirectory {
            mode: 0o755,
            mtime: 0,
            path: p.into(),
        };
        assert!(check_paths(&[file("a"), file("a/b")], &[]).is_err());
        assert!(check_paths(&[file("a/b"), file("a/c")], &[]).is_ok());
        assert!(check_paths(&[file("a"), file("a")], &[]).is_err());
        assert!(check_paths(&[file("a/b")], &[dir("a"), dir("a/c"), dir("d")]).is_ok());
        assert!(check_paths(&[file("a")], &[dir("a")]).is_err(), "both");
        assert!(
            check_paths(&[file("a")], &[dir("a/c")]).is_err(),
            "under a file"
        );
        assert!(check_paths(&[], &[dir("d"), dir("d")]).is_err(), "twice");
        assert!(check_paths(&[], &[dir("d/")]).is_err(), "trailing slash");
    }

    #[test]
    fn manifests_stored_before_directories_were_recorded_still_read() {
        let old = r#"{"files":[{"path":"journal/WiredTigerLog.1","size":0,"mode":420,"mtime":7,"chunks":[]}]}"#;
        let manifest: StoredManifest = serde_json::from_str(old).expect("an old manifest reads");
        assert!(manifest.dirs.is_empty());
        assert_eq!(manifest.files[0].mtime, 7);
        let again = serde_json::to_string(&manifest).unwrap();
        assert!(
            !again.contains("dirs"),
            "a manifest without directories keeps its old form"
        );
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
}
