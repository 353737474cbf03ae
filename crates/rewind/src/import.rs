//! `rewind snapshot import`: chunks data directories locally, uploads only the chunks the
//! server lacks, then commits one manifest per replica set.
//!
//! Memory stays bounded whatever the file sizes: files are read chunk by chunk, and at most
//! `QUEUED_BATCHES + UPLOADS_IN_FLIGHT` batches of `BATCH_BYTES` are held at once.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use rewind_api_types::{
    BsonTimestamp, ChunkQuery, ChunkUploadSummary, ImportSummary, ManifestDirectory, ManifestFile,
    MissingChunks, PartManifest, RegisteredCluster, Snapshot, SnapshotCreate,
};
use rewind_formats::frames::encode_frame;
use rewind_formats::{ChunkId, FileChunker};

use crate::client::ApiClient;

/// Upload batches are cut at this many bytes of chunk data.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Batches waiting for the uploader.
const QUEUED_BATCHES: usize = 2;
/// Upload requests in flight at once. Each becomes one pack put on the server; with blocks
/// on an object store a put is a round trip that leaves the server's CPU idle, so a third
/// keeps it busy where two left gaps; four took the client to 200 MiB (see "Reading and
/// writing S3 fast" in docs/decisions.md).
const UPLOADS_IN_FLIGHT: usize = 3;

/// One replica set's data directory.
#[derive(Debug, Clone)]
pub struct PartSource {
    pub replica_set: String,
    pub dir: PathBuf,
}

/// A file found under a part's directory.
#[derive(Debug, Clone)]
struct SourceFile {
    relative: String,
    absolute: PathBuf,
    size: u64,
    mode: u32,
    mtime: i64,
}

/// What a part's directory holds: its files and every directory below it (empty ones
/// too), each sorted by relative path.
#[derive(Debug, Clone, Default)]
struct SourceTree {
    files: Vec<SourceFile>,
    dirs: Vec<ManifestDirectory>,
}

/// Walks `root`, refusing symlinks, devices and other special files, and non-UTF-8 names.
/// Files come back sorted by relative path, so repeated imports read in the same order.
/// Directories are listed with their mode and modification time, read before the walk
/// lists them (listing a directory does not change its time).
fn scan_dir(root: &Path) -> Result<SourceTree> {
    let meta =
        fs::symlink_metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().into_string().map_err(|n| {
                anyhow!("refusing {}: the name is not UTF-8", dir.join(n).display())
            })?;
            let relative = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                bail!("refusing {}: symbolic links are not imported (copy the target into the directory)", path.display());
            } else if kind.is_dir() {
                dirs.push(ManifestDirectory {
                    mode: file_mode(&meta),
                    mtime: mtime_secs(&meta),
                    path: relative.clone(),
                });
                pending.push((path, relative));
            } else if kind.is_file() {
                files.push(SourceFile {
                    relative,
                    absolute: path,
                    size: meta.len(),
                    mode: file_mode(&meta),
                    mtime: mtime_secs(&meta),
                });
            } else {
                bail!(
                    "refusing {}: devices, sockets and pipes are not data files",
                    path.display()
                );
            }
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(SourceTree { files, dirs })
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else {
        0o644
    }
}

fn mtime_secs(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Work for the uploader: chunks whose presence on the server is unknown.
struct Batch {
    chunks: Vec<(ChunkId, Bytes)>,
}

#[derive(Default)]
struct Counters {
    scanned: AtomicU64,
    uploaded: AtomicU64,
    newly_stored: AtomicU64,
}

/// Reads every file of every part, sending batches of not-yet-seen chunks to `tx`, and
/// returns the manifests. Runs on a blocking thread.
fn chunk_parts(
    parts: Vec<(String, SourceTree)>,
    tx: tokio::sync::mpsc::Sender<Batch>,
    progress: ProgressBar,
    counters: Arc<Counters>,
) -> Result<Vec<(String, PartManifest)>> {
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut batch = Batch { chunks: Vec::new() };
    let mut batch_bytes = 0usize;
    let mut manifests = Vec::new();
    for (replica_set, tree) in parts {
        let mut manifest = PartManifest {
            directories: tree.dirs,
            files: Vec::new(),
        };
        for file in tree.files {
            let reader = File::open(&file.absolute)
                .with_context(|| format!("cannot open {}", file.absolute.display()))?;
            let mut chunks = Vec::new();
            let mut total = 0u64;
            for chunk in FileChunker::new(BufReader::with_capacity(1 << 20, reader)) {
                let data =
                    chunk.with_context(|| format!("cannot read {}", file.absolute.display()))?;
                let id = ChunkId::of(&data);
                chunks.push((id.to_hex(), data.len() as u32));
                total += data.len() as u64;
                counters
                    .scanned
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                progress.inc(data.len() as u64);
                if seen.insert(id) {
                    batch_bytes += data.len();
                    batch.chunks.push((id, data));
                }
                if batch_bytes >= BATCH_BYTES {
                    let full = std::mem::replace(&mut batch, Batch { chunks: Vec::new() });
                    batch_bytes = 0;
                    tx.blocking_send(full)
                        .map_err(|_| anyhow!("the upload stopped"))?;
                }
            }
            if total != file.size {
                bail!(
                    "{} changed while it was read ({} bytes, then {total})",
                    file.absolute.display(),
                    file.size
                );
            }
            manifest.files.push(ManifestFile {
                chunks,
                mode: file.mode,
                mtime: file.mtime,
                path: file.relative,
                size: total,
            });
        }
        manifests.push((replica_set, manifest));
    }
    if !batch.chunks.is_empty() {
        tx.blocking_send(batch)
            .map_err(|_| anyhow!("the upload stopped"))?;
    }
    Ok(manifests)
}

/// Asks which chunks of `batch` the server lacks and uploads those, as binary frames.
async fn upload_batch(
    api: &ApiClient,
    group: &str,
    batch: Batch,
    counters: &Counters,
) -> Result<()> {
    let query = ChunkQuery {
        ids: batch.chunks.iter().map(|(id, _)| id.to_hex()).collect(),
    };
    let missing: MissingChunks = api
        .post_json(
            &format!("/api/rewind/v1/groups/{group}/chunks/missing"),
            &query,
        )
        .await?;
    let missing: HashSet<String> = missing.missing.into_iter().collect();
    let mut body = Vec::new();
    for (id, data) in batch
        .chunks
        .iter()
        .filter(|(id, _)| missing.contains(&id.to_hex()))
    {
        encode_frame(&mut body, id, data)?;
    }
    if body.is_empty() {
        return Ok(());
    }
    let response = api
        .send(
            Method::POST,
            &format!("/api/rewind/v1/groups/{group}/chunks"),
            Some(&body),
            "application/octet-stream",
        )
        .await?;
    let summary: ChunkUploadSummary = response.json()?;
    counters
        .uploaded
        .fetch_add(summary.bytes_received, Ordering::Relaxed);
    counters
        .newly_stored
        .fetch_add(summary.bytes_newly_stored, Ordering::Relaxed);
    Ok(())
}

/// Matches the directories given on the command line to the cluster's replica sets.
fn match_parts(
    cluster: &RegisteredCluster,
    from: Option<PathBuf>,
    parts: Vec<PartSource>,
) -> Result<Vec<PartSource>> {
    let expected = cluster.replica_set_names();
    let mut sources = parts;
    if let Some(dir) = from {
        if expected.len() != 1 {
            bail!(
                "this is a sharded cluster: give one --part NAME=DIR for each of {}",
                expected.join(", ")
            );
        }
        sources.push(PartSource {
            replica_set: expected[0].clone(),
            dir,
        });
    }
    for s in &sources {
        if !expected.contains(&s.replica_set) {
            bail!(
                "the cluster has no replica set {:?} (it has {})",
                s.replica_set,
                expected.join(", ")
            );
        }
    }
    for name in &expected {
        match sources.iter().filter(|s| &s.replica_set == name).count() {
            0 => bail!("no directory given for replica set {name:?} (use --part {name}=DIR)"),
            1 => {}
            _ => bail!("replica set {name:?} is given more than once"),
        }
    }
    Ok(sources)
}

/// What to import and how to label it.
pub struct ImportRequest {
    pub group: String,
    pub cluster: String,
    pub from: Option<PathBuf>,
    pub parts: Vec<PartSource>,
    pub taken_at: BsonTimestamp,
    pub mongod_version: Option<String>,
    pub show_progress: bool,
}

pub async fn import(api: &ApiClient, req: ImportRequest) -> Result<ImportSummary> {
    let (group, cluster) = (req.group.as_str(), req.cluster.as_str());
    let registered: RegisteredCluster = api
        .get_json(&format!("/api/rewind/v1/groups/{group}/clusters/{cluster}"))
        .await?;
    let sources = match_parts(&registered, req.from, req.parts)?;
    let mut scanned = Vec::new();
    for source in &sources {
        scanned.push((source.replica_set.clone(), scan_dir(&source.dir)?));
    }
    let total: u64 = scanned
        .iter()
        .flat_map(|(_, tree)| tree.files.iter().map(|f| f.size))
        .sum();
    let version = req
        .mongod_version
        .unwrap_or_else(|| format!("{}.0", registered.feature_compatibility_version));
    let create = SnapshotCreate {
        created: req.taken_at,
        last_oplog_applied_timestamp: None,
        mongod_version: version,
        storage_engine: None,
    };
    let snapshot: Snapshot = api
        .post_json(
            &format!("/api/rewind/v1/groups/{group}/clusters/{cluster}/snapshots"),
            &create,
        )
        .await?;
    let progress = if req.show_progress {
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let counters = Arc::new(Counters::default());
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(QUEUED_BATCHES);
    let producer = {
        let (progress, counters) = (progress.clone(), counters.clone());
        tokio::task::spawn_blocking(move || chunk_parts(scanned, tx, progress, counters))
    };
    let mut uploads = Box::pin(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|batch| upload_batch(api, group, batch, &counters))
            .buffer_unordered(UPLOADS_IN_FLIGHT),
    );
    let mut upload_error = None;
    while let Some(result) = uploads.next().await {
        if let Err(err) = result {
            upload_error = Some(err);
            break;
        }
    }
    // Dropping the uploader closes the channel, so a producer blocked on it stops.
    drop(uploads);
    let manifests = producer.await.context("the chunking thread failed")?;
    if let Some(err) = upload_error {
        return Err(err);
    }
    let manifests = manifests?;
    progress.finish_and_clear();
    for (replica_set, manifest) in manifests {
        let body = serde_json::to_vec(&manifest)?;
        api.send(
            Method::PUT,
            &format!(
                "/api/rewind/v1/groups/{group}/clusters/{cluster}/snapshots/{}/parts/{replica_set}",
                snapshot.id
            ),
            Some(&body),
            "application/json",
        )
        .await?
        .json::<Snapshot>()?;
    }
    let scanned = counters.scanned.load(Ordering::Relaxed);
    let uploaded = counters.uploaded.load(Ordering::Relaxed);
    Ok(ImportSummary {
        bytes_newly_stored: counters.newly_stored.load(Ordering::Relaxed),
        bytes_scanned: scanned,
        bytes_uploaded: uploaded,
        dedup_ratio: (uploaded > 0)
            .then(|| ((scanned as f64 / uploaded as f64) * 100.0).round() / 100.0),
        snapshot_id: snapshot.id,
    })
}

/// Parses `--taken-at`: RFC 3339 (increment 1) or `SECONDS:INCREMENT`.
pub fn parse_taken_at(text: &str) -> Result<BsonTimestamp> {
    if let Some((secs, inc)) = text
        .split_once(':')
        .filter(|(s, _)| s.bytes().all(|b| b.is_ascii_digit()))
    {
        let date: u32 = secs
            .parse()
            .context("--taken-at seconds must fit 32 bits")?;
        let increment: u32 = inc
            .parse()
            .context("--taken-at increment must be a 32-bit number")?;
        return Ok(BsonTimestamp {
            date: i64::from(date),
            increment,
        });
    }
    let secs = rewind_api_types::iso_seconds::parse_iso(text)
        .ok_or_else(|| anyhow!("--taken-at {text:?} is neither RFC 3339 nor SECONDS:INCREMENT"))?;
    Ok(BsonTimestamp {
        date: secs,
        increment: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_at_accepts_both_forms() {
        assert_eq!(
            parse_taken_at("1536610288:3").unwrap(),
            BsonTimestamp {
                date: 1536610288,
                increment: 3
            }
        );
        assert_eq!(
            parse_taken_at("2018-09-10T20:11:28Z").unwrap(),
            BsonTimestamp {
                date: 1536610288,
                increment: 1
            }
        );
        assert!(parse_taken_at("yesterday").is_err());
        assert!(parse_taken_at("99999999999:1").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn scanning_refuses_symlinks_and_sorts_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("journal")).unwrap();
        fs::write(dir.path().join("journal/WiredTigerLog.1"), b"x").unwrap();
        fs::write(dir.path().join("WiredTiger"), b"y").unwrap();
        fs::create_dir_all(dir.path().join("diagnostic.data/empty")).unwrap();
        let tree = scan_dir(dir.path()).unwrap();
        let names: Vec<_> = tree.files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(names, ["WiredTiger", "journal/WiredTigerLog.1"]);
        let dirs: Vec<_> = tree.dirs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            dirs,
            ["diagnostic.data", "diagnostic.data/empty", "journal"]
        );
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape")).unwrap();
        let err = scan_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic links"), "{err}");
    }
}
