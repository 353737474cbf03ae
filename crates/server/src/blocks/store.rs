//! Where chunks live: the [`BlockStore`] trait and its `object_store` backend.
//!
//! The backend uses only what every `object_store` implementation offers (get, ranged get,
//! put, head, delete, list), so the same code runs on a local directory, in memory, or on S3.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path as FsPath;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectMeta, ObjectStore};

use super::chunk::MAX_OBJECT_BYTES;
use super::read_ahead::{coalesce, ReadAhead};
use super::{
    BlockError, BlockResult, ChunkId, ChunkLocation, EncodedChunk, Pack, PackId, Placement,
};
use crate::ids::{ClusterId, OplogSliceId};

/// Top-level folder of chunks stored one per object (before packs existed).
const CHUNKS_DIR: &str = "chunks";
/// Top-level folder of packs.
const PACKS_DIR: &str = "packs";
/// Top-level folder of manifests.
const MANIFESTS_DIR: &str = "manifests";
/// Top-level folder of oplog slices.
const OPLOG_DIR: &str = "oplog";
/// Longest manifest name accepted.
const MAX_MANIFEST_NAME_BYTES: usize = 200;
/// Chunks of one pack at most this many bytes apart are read with one ranged request: on
/// S3 a request costs about as much as reading 64 KiB more, in money and in time.
const COALESCE_GAP_BYTES: u64 = 64 * 1024;
/// Longest range one request reads, so one coalesced read stays within a read-ahead
/// window's memory.
const MAX_RANGE_BYTES: u64 = 8 * 1024 * 1024;
/// Requests one `get_many` call (one read-ahead window) has in flight at most.
pub(crate) const READS_IN_FLIGHT: usize = 8;
/// Pack puts one server sends to a shared store at once: the command-line client sends
/// a few batches at a time, so this leaves room for several imports.
const PACK_PUTS_IN_FLIGHT: usize = 16;

/// Names every object the block store keeps. All object paths are derived here, and only
/// here, so the layout cannot drift between writers and readers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    /// `chunks/ab/<64 hex>`: a chunk stored alone, as every chunk was before packs. Such
    /// objects are read and deleted, never written any more.
    Chunk(ChunkId),
    /// `packs/ab/<64 hex>`: 256 directories, as chunks had; at about 8 MiB a pack that is
    /// about 500 packs per directory at 1 TiB stored.
    Pack(PackId),
    /// `manifests/<name>`; `name` is one segment of `[A-Za-z0-9._-]`, not starting with `.`.
    Manifest { name: String },
    /// `oplog/<cluster>/<replica set name, hex>/<slice>`: one oplog slice. The name is
    /// hex-encoded so any replica set name makes one safe path segment.
    OplogSlice {
        cluster: ClusterId,
        replica_set: String,
        slice: OplogSliceId,
    },
}

impl ObjectKey {
    /// The object path for this key; [`BlockError::InvalidKey`] for an unusable manifest name.
    pub fn path(&self) -> BlockResult<ObjectPath> {
        match self {
            ObjectKey::Chunk(id) => Ok(chunk_path(id)),
            ObjectKey::Pack(id) => Ok(pack_path(id)),
            ObjectKey::Manifest { name } if is_valid_manifest_name(name) => {
                Ok(ObjectPath::from_iter([MANIFESTS_DIR, name.as_str()]))
            }
            ObjectKey::Manifest { name } => Err(BlockError::InvalidKey(format!(
                "manifest name {name:?} is not a single safe path segment"
            ))),
            ObjectKey::OplogSlice { replica_set, .. } if replica_set.is_empty() => Err(
                BlockError::InvalidKey("an oplog slice needs a replica set name".into()),
            ),
            ObjectKey::OplogSlice {
                cluster,
                replica_set,
                slice,
            } => Ok(ObjectPath::from_iter([
                OPLOG_DIR,
                &cluster.to_hex(),
                &hex::encode(replica_set),
                &slice.to_hex(),
            ])),
        }
    }
}

fn fanned_out_path(dir: &str, hex: &str) -> ObjectPath {
    ObjectPath::from_iter([dir, &hex[..2], hex])
}

fn chunk_path(id: &ChunkId) -> ObjectPath {
    fanned_out_path(CHUNKS_DIR, &id.to_hex())
}

fn pack_path(id: &PackId) -> ObjectPath {
    fanned_out_path(PACKS_DIR, &id.to_hex())
}

/// Names that are the same path on every backend: no separators, no `..`, nothing a file
/// system or URL would reinterpret (including the `#<n>` suffix local staging files use).
fn is_valid_manifest_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MANIFEST_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id of the pack object at `location`, if it is one laid out by [`ObjectKey::Pack`].
fn pack_id_at(location: &ObjectPath) -> Option<PackId> {
    let id = PackId::parse_hex(location.filename()?)?;
    (pack_path(&id) == *location).then_some(id)
}

/// A stored pack object, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedPack {
    pub id: PackId,
    pub bytes: u64,
    /// When the object was last written, in Unix seconds.
    pub last_modified: i64,
}

/// A content-addressed chunk store, plus a few small named objects (snapshot manifests).
///
/// Chunks are written many at a time, as a [`Pack`], because a write per chunk made file
/// creation (or, on S3, request count) the cost of an import; they are read one by one by
/// the location the metadata index records. Every backend guarantees: an object becomes
/// visible only complete; writing a pack again is harmless; every chunk read is verified
/// against its id, and a corrupt chunk is never returned.
#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    /// Writes the pack's object. Writing an existing pack again succeeds and leaves one
    /// complete copy: a local store rewrites the same bytes (renewing the modification
    /// time), a store several nodes share keeps the first copy (a write-once put). What
    /// keeps a pack a writer is about to index safe from the orphan sweep is the GC
    /// protocol (`domain::garbage`), not the object's time.
    async fn put_pack(&self, pack: &Pack) -> BlockResult<()>;

    /// The chunk at `at`, its `check` verified; [`BlockError::NotFound`] if its object (or
    /// pack) is absent and [`BlockError::Corrupt`] (logged) if the bytes there are not that
    /// chunk, whole and intact.
    async fn get(&self, at: &ChunkLocation) -> BlockResult<EncodedChunk>;

    /// Several chunks, each verified as [`BlockStore::get`] does, in the order asked.
    /// Backends that read many ranges at once (a restore reads chunks in windows) override it.
    async fn get_many(&self, at: &[ChunkLocation]) -> Vec<BlockResult<EncodedChunk>> {
        futures::future::join_all(at.iter().map(|at| self.get(at))).await
    }

    /// How far ahead of a long sequential read (a restore archive) this backend should be
    /// read: see [`super::read_ahead`].
    fn read_ahead_policy(&self) -> ReadAhead {
        ReadAhead::REMOTE
    }

    /// Every stored pack object, in no particular order: the orphan sweep compares it with
    /// the index.
    fn list_packs(&self) -> BoxStream<'static, BlockResult<ListedPack>>;

    /// Writes a manifest (chunks and packs only through [`BlockStore::put_pack`], so every
    /// one of them is well-formed).
    async fn put_object(&self, key: &ObjectKey, bytes: Bytes) -> BlockResult<()>;

    /// Reads a manifest; `None` when it does not exist.
    async fn get_object(&self, key: &ObjectKey) -> BlockResult<Option<Bytes>>;

    /// Removes any object: a manifest, a pack, or a chunk stored alone. Removing a missing
    /// object is not an error.
    async fn delete_object(&self, key: &ObjectKey) -> BlockResult<()>;
}

/// A [`BlockStore`] over any `object_store` backend.
///
/// Durability of writes: a put returns once the object is durable, so the metadata commit
/// that follows may reference it. On a local directory the store writes objects itself
/// (staging file, fsync, rename, fsync of the directory; see [`super::durable`]), because
/// `LocalFileSystem::put` never syncs; an S3 PUT is atomic and durable when answered.
/// Either way readers never see a partial object.
#[derive(Debug, Clone)]
pub struct ObjectBlockStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store, for reading many chunks in one blocking task.
    local_root: Option<std::path::PathBuf>,
    /// How packs are written.
    pack_writes: PackWrites,
    /// How far ahead long reads run.
    read_ahead: ReadAhead,
    /// Pack puts in flight at once on a shared store, at most [`PACK_PUTS_IN_FLIGHT`].
    pack_puts: Arc<tokio::sync::Semaphore>,
    /// Packs longer than this are written in parts (write-once stores only).
    multipart_threshold: usize,
}

/// How a backend writes a pack object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackWrites {
    /// A plain put, which rewrites an existing pack (a local staging file renamed into place).
    Overwrite,
    /// A conditional put that leaves an existing pack alone ([`super::s3::put_once`]): what
    /// several writers sharing one bucket use.
    Once,
}

impl ObjectBlockStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            local_root: None,
            pack_writes: PackWrites::Overwrite,
            read_ahead: ReadAhead::REMOTE,
            pack_puts: Arc::new(tokio::sync::Semaphore::new(PACK_PUTS_IN_FLIGHT)),
            multipart_threshold: super::s3::MULTIPART_THRESHOLD_BYTES,
        }
    }

    /// The same store over `wrap(its object store)`: tests put probes in between.
    #[cfg(test)]
    pub(crate) fn map_inner(
        self,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            inner: wrap(self.inner.clone()),
            ..self
        }
    }

    /// The same store, writing packs longer than `bytes` in parts (tests use small ones).
    #[cfg(test)]
    pub(crate) fn with_multipart_threshold(self, bytes: usize) -> Self {
        Self {
            multipart_threshold: bytes,
            ..self
        }
    }

    /// The same store, read ahead by `policy` instead of its backend's default.
    pub fn with_read_ahead(self, policy: ReadAhead) -> Self {
        Self {
            read_ahead: policy,
            ..self
        }
    }

    /// A store whose packs are written once, by conditional puts: for object stores several
    /// nodes share.
    pub fn write_once(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            pack_writes: PackWrites::Once,
            ..Self::new(inner)
        }
    }

    /// A store in the local directory `dir`, created if missing.
    pub fn local(dir: &FsPath) -> BlockResult<Self> {
        super::durable::create_dir_durably(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            local_root: Some(dir.to_owned()),
            read_ahead: ReadAhead::LOCAL,
            ..Self::new(Arc::new(fs))
        })
    }

    /// Writes the object at `path`, durably before returning (see the type's comment).
    async fn put_bytes(&self, path: &ObjectPath, bytes: Bytes) -> BlockResult<()> {
        let Some(root) = &self.local_root else {
            self.inner.put(path, bytes.into()).await?;
            return Ok(());
        };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || super::durable::write_durably(&file, &bytes))
            .await
            .map_err(|e| BlockError::Io(format!("object writing task failed: {e}")))??;
        Ok(())
    }

    /// Starts reading the object at `path`; `Ok(None)` when it does not exist. The body is
    /// not downloaded yet, so callers can check its size first.
    async fn fetch(&self, path: &ObjectPath) -> BlockResult<Option<GetResult>> {
        match self.inner.get(path).await {
            Ok(result) => Ok(Some(result)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_loose(&self, id: ChunkId) -> BlockResult<EncodedChunk> {
        let result = self
            .fetch(&chunk_path(&id))
            .await?
            .ok_or(BlockError::NotFound(id))?;
        if result.meta.size > MAX_OBJECT_BYTES as u64 {
            return Err(oversized(id));
        }
        EncodedChunk::from_object_bytes(id, result.bytes().await?)
    }

    async fn get_packed(
        &self,
        id: ChunkId,
        pack: PackId,
        offset: u64,
        len: u32,
    ) -> BlockResult<EncodedChunk> {
        let range = packed_range(id, offset, len)?;
        let path = pack_path(&pack);
        match self.inner.get_range(&path, range.clone()).await {
            Ok(bytes) => EncodedChunk::from_object_bytes(id, bytes),
            Err(object_store::Error::NotFound { .. }) => Err(BlockError::NotFound(id)),
            Err(e) => Err(self.explain_range_failure(&path, id, range, e).await),
        }
    }

    /// Backends answer a range beyond an object's end with an error of their own kind; a
    /// look at the object's size tells a truncated pack (corrupt) from a failing store.
    async fn explain_range_failure(
        &self,
        path: &ObjectPath,
        id: ChunkId,
        range: Range<u64>,
        err: object_store::Error,
    ) -> BlockError {
        match self.inner.head(path).await {
            Ok(meta) if meta.size < range.end => BlockError::Corrupt {
                id,
                reason: format!(
                    "the pack holds {} bytes but the chunk ends at byte {}",
                    meta.size, range.end
                ),
            },
            Err(object_store::Error::NotFound { .. }) => BlockError::NotFound(id),
            _ => err.into(),
        }
    }

    /// The chunks of one coalesced range of `pack` (`entries` are `(position, chunk,
    /// offset, len)`), read with one ranged request. A missing pack makes every one of them
    /// missing; any other failure, or an answer of the wrong length, is sorted out chunk by
    /// chunk (a truncated pack is then told from a failing store).
    async fn get_span(
        &self,
        pack: PackId,
        span: Range<u64>,
        entries: Vec<(usize, ChunkId, u64, u32)>,
    ) -> Positioned {
        let path = pack_path(&pack);
        match self.inner.get_range(&path, span.clone()).await {
            Ok(bytes) if bytes.len() as u64 == span.end - span.start => entries
                .into_iter()
                .map(|(i, id, offset, len)| {
                    let from = (offset - span.start) as usize;
                    let object = bytes.slice(from..from + len as usize);
                    (i, EncodedChunk::from_object_bytes(id, object))
                })
                .collect(),
            Err(object_store::Error::NotFound { .. }) => entries
                .into_iter()
                .map(|(i, id, _, _)| (i, Err(BlockError::NotFound(id))))
                .collect(),
            Err(err) => {
                let first = entries[0].1;
                match self.explain_range_failure(&path, first, span, err).await {
                    // A damaged pack: chunk by chunk, so the intact ones before the damage
                    // are still served and the error names the first damaged chunk.
                    BlockError::Corrupt { .. } => self.get_each_packed(pack, entries).await,
                    // A failing store fails the whole span at once: one request per chunk,
                    // each waiting out the retry bound, would stall the reader for minutes.
                    failed => entries
                        .into_iter()
                        .map(|(i, _, _, _)| (i, Err(failed.clone())))
                        .collect(),
                }
            }
            Ok(_) => self.get_each_packed(pack, entries).await,
        }
    }

    /// The chunks of `entries` read from `pack` one request each.
    async fn get_each_packed(
        &self,
        pack: PackId,
        entries: Vec<(usize, ChunkId, u64, u32)>,
    ) -> Positioned {
        let mut out = Vec::with_capacity(entries.len());
        for (i, id, offset, len) in entries {
            out.push((i, self.get_packed(id, pack, offset, len).await));
        }
        out
    }

    /// [`BlockStore::get_many`] through `object_store`: the chunks of each pack coalesced
    /// into as few ranged requests as [`COALESCE_GAP_BYTES`] and [`MAX_RANGE_BYTES`]
    /// allow, one get per chunk stored alone, at most [`READS_IN_FLIGHT`] requests at a
    /// time.
    async fn get_many_remote(&self, at: &[ChunkLocation]) -> Vec<BlockResult<EncodedChunk>> {
        let mut results: Vec<Option<BlockResult<EncodedChunk>>> = at.iter().map(|_| None).collect();
        let mut by_pack: HashMap<PackId, Vec<(usize, ChunkId, u64, u32)>> = HashMap::new();
        let mut loose = Vec::new();
        for (i, location) in at.iter().enumerate() {
            match location.placement {
                Placement::Packed { pack, offset, len } => {
                    match packed_range(location.id, offset, len) {
                        Ok(_) => {
                            by_pack
                                .entry(pack)
                                .or_default()
                                .push((i, location.id, offset, len))
                        }
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
                Placement::Loose => loose.push((i, location.id)),
            }
        }
        let mut reads: Vec<futures::future::BoxFuture<'_, Positioned>> = Vec::new();
        for (pack, entries) in by_pack {
            let places: Vec<(u64, u32)> = entries.iter().map(|&(_, _, o, l)| (o, l)).collect();
            for (span, members) in coalesce(&places, COALESCE_GAP_BYTES, MAX_RANGE_BYTES) {
                let members = members.into_iter().map(|m| entries[m]).collect();
                reads.push(Box::pin(self.get_span(pack, span, members)));
            }
        }
        for (i, id) in loose {
            reads.push(Box::pin(async move { vec![(i, self.get_loose(id).await)] }));
        }
        let mut done = futures::stream::iter(reads).buffer_unordered(READS_IN_FLIGHT);
        while let Some(read) = done.next().await {
            for (i, result) in read {
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(BlockError::Io("a chunk read went missing".into()))))
            .collect()
    }
}

/// Chunks read, each with its position in the window asked for.
type Positioned = Vec<(usize, BlockResult<EncodedChunk>)>;

fn oversized(id: ChunkId) -> BlockError {
    BlockError::Corrupt {
        id,
        reason: "object is larger than any chunk".into(),
    }
}

/// The byte range of a packed chunk, refused when the index claims a length no chunk has
/// (so a damaged index cannot make a read allocate without bound).
fn packed_range(id: ChunkId, offset: u64, len: u32) -> BlockResult<Range<u64>> {
    if len as usize > MAX_OBJECT_BYTES {
        return Err(oversized(id));
    }
    let end = offset
        .checked_add(u64::from(len))
        .ok_or_else(|| BlockError::Corrupt {
            id,
            reason: "the chunk's recorded offset is out of range".into(),
        })?;
    Ok(offset..end)
}

/// Logs a corrupt chunk where it is refused.
fn refusing_corrupt(result: BlockResult<EncodedChunk>) -> BlockResult<EncodedChunk> {
    if let Err(BlockError::Corrupt { id, reason }) = &result {
        tracing::error!(chunk = %id, %reason, "refusing corrupt chunk");
    }
    result
}

/// Reads and verifies a window of chunks of a local store in the calling (blocking)
/// thread, opening each pack once and reading each chunk with one positioned read.
fn read_local(root: &FsPath, at: &[ChunkLocation]) -> Vec<BlockResult<EncodedChunk>> {
    let mut packs: HashMap<PackId, std::io::Result<File>> = HashMap::new();
    at.iter()
        .map(|location| {
            let id = location.id;
            match location.placement {
                Placement::Loose => read_local_loose(root, id),
                Placement::Packed { pack, offset, len } => {
                    let file = packs
                        .entry(pack)
                        .or_insert_with(|| File::open(root.join(pack_path(&pack).as_ref())));
                    match file {
                        Ok(file) => read_local_packed(file, id, offset, len),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            Err(BlockError::NotFound(id))
                        }
                        Err(e) => Err(BlockError::Io(e.to_string())),
                    }
                }
            }
        })
        .collect()
}

/// Reads a whole local object; `None` when it does not exist. The buffer is allocated on
/// the calling task's thread and only filled on a blocking thread: an allocator frees a
/// block cheaply on the thread that owns it, while blocks of short-lived blocking threads
/// freed elsewhere linger (delivering a day of oplog slices grew the server by hundreds of
/// MiB that way).
async fn read_local_object(file: std::path::PathBuf) -> BlockResult<Option<Bytes>> {
    let len = match tokio::fs::metadata(&file).await {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = usize::try_from(len).map_err(|_| BlockError::Io("object too large".into()))?;
    let mut buffer = vec![0u8; len];
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let file = File::open(&file)?;
        if file.metadata()?.len() != buffer.len() as u64 {
            return Err(std::io::Error::other("the object changed size while read"));
        }
        file.read_exact_at(&mut buffer, 0)?;
        Ok(buffer)
    })
    .await
    .map_err(|e| BlockError::Io(format!("read task failed: {e}")))?;
    match read {
        Ok(bytes) => Ok(Some(Bytes::from(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn read_local_packed(file: &File, id: ChunkId, offset: u64, len: u32) -> BlockResult<EncodedChunk> {
    let range = packed_range(id, offset, len)?;
    let mut bytes = vec![0u8; len as usize];
    match file.read_exact_at(&mut bytes, range.start) {
        Ok(()) => EncodedChunk::from_object_bytes(id, Bytes::from(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(BlockError::Corrupt {
            id,
            reason: format!(
                "the pack ends before byte {} where the chunk ends",
                range.end
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

fn read_local_loose(root: &FsPath, id: ChunkId) -> BlockResult<EncodedChunk> {
    use std::io::Read;
    let file = match File::open(root.join(chunk_path(&id).as_ref())) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlockError::NotFound(id)),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_OBJECT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(oversized(id));
    }
    EncodedChunk::from_object_bytes(id, Bytes::from(bytes))
}

/// The path of a named object (a manifest or an oplog slice); chunk and pack keys are
/// refused so that every chunk and pack object is written by `put_pack` and therefore
/// well-formed.
fn named_object_path(key: &ObjectKey) -> BlockResult<ObjectPath> {
    match key {
        ObjectKey::Chunk(_) | ObjectKey::Pack(_) => Err(BlockError::InvalidKey(format!(
            "{key:?} is only accessible through the chunk methods"
        ))),
        ObjectKey::Manifest { .. } | ObjectKey::OplogSlice { .. } => key.path(),
    }
}

fn listed_pack(meta: object_store::Result<ObjectMeta>) -> Option<BlockResult<ListedPack>> {
    match meta {
        Ok(meta) => {
            let id = pack_id_at(&meta.location);
            if id.is_none() {
                tracing::warn!(location = %meta.location, "ignoring stray object among packs");
            }
            id.map(|id| {
                Ok(ListedPack {
                    id,
                    bytes: meta.size,
                    last_modified: meta.last_modified.timestamp(),
                })
            })
        }
        Err(e) => Some(Err(e.into())),
    }
}

#[async_trait]
impl BlockStore for ObjectBlockStore {
    async fn put_pack(&self, pack: &Pack) -> BlockResult<()> {
        let path = pack_path(&pack.id());
        if self.pack_writes == PackWrites::Once {
            // Bounded so that any number of concurrent uploads opens a bounded number of
            // connections to the store; the packs waiting are held by their requests anyway.
            let _permit = self
                .pack_puts
                .acquire()
                .await
                .map_err(|_| BlockError::Store("the store is shutting down".into()))?;
            let bytes = pack.bytes().clone();
            if bytes.len() > self.multipart_threshold {
                return super::s3::put_once_in_parts(self.inner.as_ref(), &path, bytes).await;
            }
            return super::s3::put_once(self.inner.as_ref(), &path, bytes).await;
        }
        // A plain put (staging file renamed into place) rather than a conditional one: the
        // bytes are named by their hash, so racing writers of one pack write the same bytes,
        // and the rewrite renews the modification time the orphan sweep goes by.
        self.put_bytes(&path, pack.bytes().clone()).await
    }

    async fn get(&self, at: &ChunkLocation) -> BlockResult<EncodedChunk> {
        refusing_corrupt(match at.placement {
            Placement::Loose => self.get_loose(at.id).await,
            Placement::Packed { pack, offset, len } => {
                self.get_packed(at.id, pack, offset, len).await
            }
        })
    }

    /// On a local store, reads the whole window in one blocking task: `object_store`'s
    /// local backend hands every read to the blocking pool, and for chunks of tens of KiB
    /// those thread hand-offs, not the reads, dominated delivery time. Each pack is opened
    /// once per window and each chunk read with one `pread`; the files are the ones
    /// `put_pack` wrote through `object_store`, found by the same paths, and every chunk is
    /// verified exactly as `get` verifies it.
    async fn get_many(&self, at: &[ChunkLocation]) -> Vec<BlockResult<EncodedChunk>> {
        let results = match self.local_root.clone() {
            Some(root) => {
                let window = at.to_vec();
                match tokio::task::spawn_blocking(move || read_local(&root, &window)).await {
                    Ok(results) => results,
                    Err(e) => at
                        .iter()
                        .map(|_| Err(BlockError::Io(format!("chunk reading task failed: {e}"))))
                        .collect(),
                }
            }
            None => self.get_many_remote(at).await,
        };
        results.into_iter().map(refusing_corrupt).collect()
    }

    fn read_ahead_policy(&self) -> ReadAhead {
        self.read_ahead
    }

    fn list_packs(&self) -> BoxStream<'static, BlockResult<ListedPack>> {
        let prefix = ObjectPath::from(PACKS_DIR);
        self.inner
            .list(Some(&prefix))
            .filter_map(|meta| futures::future::ready(listed_pack(meta)))
            .boxed()
    }

    async fn put_object(&self, key: &ObjectKey, bytes: Bytes) -> BlockResult<()> {
        let path = named_object_path(key)?;
        self.put_bytes(&path, bytes).await
    }

    async fn get_object(&self, key: &ObjectKey) -> BlockResult<Option<Bytes>> {
        let path = named_object_path(key)?;
        if let Some(root) = &self.local_root {
            return read_local_object(root.join(path.as_ref())).await;
        }
        match self.fetch(&path).await? {
            Some(result) => Ok(Some(result.bytes().await?)),
            None => Ok(None),
        }
    }

    async fn delete_object(&self, key: &ObjectKey) -> BlockResult<()> {
        match self.inner.delete(&key.path()?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A pack of `chunks`, for tests.
#[cfg(test)]
pub(crate) fn pack_of(chunks: &[&EncodedChunk]) -> Pack {
    let mut builder = super::PackBuilder::default();
    for chunk in chunks {
        builder.push(chunk);
    }
    builder.finish()
}

/// One behavioural suite for every [`BlockStore`] backend.
#[cfg(test)]
pub(crate) async fn conformance(store: &dyn BlockStore) {
    use futures::TryStreamExt;

    use super::encode_chunk;
    use super::test_data::{compressible_bytes, random_bytes};

    let deflated = encode_chunk(&compressible_bytes(20_000)).expect("encode");
    let raw = encode_chunk(&random_bytes(9, 20_000)).expect("encode");
    let pack = pack_of(&[&deflated, &raw]);
    let (at_deflated, at_raw) = (pack.chunks()[0], pack.chunks()[1]);
    for at in pack.chunks() {
        assert!(matches!(store.get(at).await, Err(BlockError::NotFound(got)) if got == at.id));
    }
    let listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
    assert!(listed.is_empty());

    store.put_pack(&pack).await.expect("put pack");
    store
        .put_pack(&pack)
        .await
        .expect("writing a pack again is fine");
    for (chunk, at) in [(&deflated, &at_deflated), (&raw, &at_raw)] {
        let got = store.get(at).await.expect("get");
        assert_eq!(&got, chunk);
        assert_eq!(got.decode().expect("decode").len(), 20_000);
    }

    let never = ChunkId::of(b"never stored");
    let in_missing_pack = ChunkLocation {
        id: never,
        placement: Placement::Packed {
            pack: PackId::of(b"no such pack"),
            offset: 0,
            len: 100,
        },
    };
    let missing_alone = ChunkLocation {
        id: never,
        placement: Placement::Loose,
    };
    let many = store
        .get_many(&[at_raw, in_missing_pack, at_deflated, missing_alone])
        .await;
    assert_eq!(many.len(), 4, "one result per location, in order");
    assert_eq!(many[0].as_ref().expect("get_many"), &raw);
    assert!(matches!(&many[1], Err(BlockError::NotFound(got)) if *got == never));
    assert_eq!(many[2].as_ref().expect("get_many"), &deflated);
    assert!(matches!(&many[3], Err(BlockError::NotFound(got)) if *got == never));

    let other = encode_chunk(b"another pack's only chunk").expect("encode");
    let other_pack = pack_of(&[&other]);
    store.put_pack(&other_pack).await.expect("put pack");
    let mut listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
    listed.sort_by_key(|p| p.id);
    let mut expected = vec![
        (pack.id(), pack.bytes().len() as u64),
        (other_pack.id(), other_pack.bytes().len() as u64),
    ];
    expected.sort();
    let got: Vec<(PackId, u64)> = listed.iter().map(|p| (p.id, p.bytes)).collect();
    assert_eq!(got, expected);
    assert!(listed.iter().all(|p| p.last_modified > 1_600_000_000));

    let key = ObjectKey::Pack(pack.id());
    store.delete_object(&key).await.expect("delete pack");
    store
        .delete_object(&key)
        .await
        .expect("deleting a missing pack is fine");
    assert!(matches!(
        store.get(&at_raw).await,
        Err(BlockError::NotFound(_))
    ));
    assert_eq!(
        store.get(&other_pack.chunks()[0]).await.expect("get"),
        other
    );

    object_conformance(store, other_pack.id()).await;
    creators_of_one_pack_at_once_all_succeed(store).await;
    a_grace_period_sweep_spares_packs_written_while_it_runs(store).await;
}

/// Writers racing to create the same pack (two nodes storing the same batch) all succeed,
/// and the one object they leave reads back intact.
#[cfg(test)]
async fn creators_of_one_pack_at_once_all_succeed(store: &dyn BlockStore) {
    use futures::TryStreamExt;

    use super::encode_chunk;
    use super::test_data::random_bytes;

    const WRITERS: usize = 8;
    let chunks: Vec<EncodedChunk> = (0..4)
        .map(|seed| encode_chunk(&random_bytes(100 + seed, 64 * 1024)).expect("encode"))
        .collect();
    let pack = pack_of(&chunks.iter().collect::<Vec<_>>());
    let writes = futures::future::join_all((0..WRITERS).map(|_| store.put_pack(&pack))).await;
    for (writer, result) in writes.into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("writer {writer} of the same pack failed: {e}"));
    }
    for (chunk, result) in chunks.iter().zip(store.get_many(pack.chunks()).await) {
        assert_eq!(&result.expect("a chunk of the raced pack"), chunk);
    }
    let listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
    let copies: Vec<&ListedPack> = listed.iter().filter(|p| p.id == pack.id()).collect();
    assert_eq!(copies.len(), 1, "one object however many writers");
    assert_eq!(copies[0].bytes, pack.bytes().len() as u64);
}

/// The block store's half of the orphan sweep's grace period: a sweep that deletes every
/// listed pack last written before `now - grace` (here without any index, so every pack
/// counts as an orphan), racing writers that store packs and read them back, deletes none
/// of theirs. Backends must report a just-written object's time no earlier than the wall
/// clock allows (a server clock behind ours by less than the grace period is fine).
#[cfg(test)]
async fn a_grace_period_sweep_spares_packs_written_while_it_runs(store: &dyn BlockStore) {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::TryStreamExt;

    use super::encode_chunk;
    use super::test_data::random_bytes;

    const GRACE_SECS: i64 = 60;
    const PACKS: u8 = 12;
    let written_before = chrono::Utc::now().timestamp() - GRACE_SECS;
    let writing = AtomicBool::new(true);
    let write = async {
        let mut written = Vec::new();
        for n in 0..PACKS {
            let chunk = encode_chunk(&random_bytes(200 + u64::from(n), 4096)).expect("encode");
            let pack = pack_of(&[&chunk]);
            store.put_pack(&pack).await.expect("put pack");
            assert_eq!(
                store.get(&pack.chunks()[0]).await.expect("read back"),
                chunk
            );
            written.push(pack);
            tokio::task::yield_now().await;
        }
        writing.store(false, Ordering::SeqCst);
        written
    };
    let sweep = async {
        let mut deleted = Vec::new();
        while writing.load(Ordering::SeqCst) {
            let listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
            for old in listed.iter().filter(|p| p.last_modified < written_before) {
                store
                    .delete_object(&ObjectKey::Pack(old.id))
                    .await
                    .expect("delete");
                deleted.push(old.id);
            }
            tokio::task::yield_now().await;
        }
        deleted
    };
    let (written, deleted) = futures::future::join(write, sweep).await;
    for pack in &written {
        assert!(
            !deleted.contains(&pack.id()),
            "the sweep deleted a pack just written"
        );
        assert!(store.get(&pack.chunks()[0]).await.is_ok());
    }
}

#[cfg(test)]
async fn object_conformance(store: &dyn BlockStore, pack: PackId) {
    use futures::TryStreamExt;

    let key = ObjectKey::Manifest {
        name: "snap-1.json".to_owned(),
    };
    assert_eq!(store.get_object(&key).await.expect("get missing"), None);
    store
        .put_object(&key, Bytes::from_static(b"{}"))
        .await
        .expect("put object");
    store
        .put_object(&key, Bytes::from_static(b"{\"v\":2}"))
        .await
        .expect("overwrite");
    let got = store.get_object(&key).await.expect("get object");
    assert_eq!(got.as_deref(), Some(&b"{\"v\":2}"[..]));

    let listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
    let listed: Vec<PackId> = listed.iter().map(|p| p.id).collect();
    assert_eq!(listed, vec![pack], "manifests are not packs");

    store.delete_object(&key).await.expect("delete object");
    store
        .delete_object(&key)
        .await
        .expect("delete missing object");
    assert_eq!(store.get_object(&key).await.expect("get deleted"), None);

    for bad in [
        "",
        "a/b",
        "..",
        ".hidden",
        "x#1",
        "sp ace",
        &"n".repeat(201),
    ] {
        let bad = ObjectKey::Manifest {
            name: bad.to_owned(),
        };
        let result = store.put_object(&bad, Bytes::new()).await;
        assert!(matches!(result, Err(BlockError::InvalidKey(_))), "{bad:?}");
    }
    for reserved in [
        ObjectKey::Chunk(ChunkId::of(b"a chunk")),
        ObjectKey::Pack(pack),
    ] {
        let result = store
            .put_object(&reserved, Bytes::from_static(b"junk"))
            .await;
        assert!(matches!(result, Err(BlockError::InvalidKey(_))));
        assert!(matches!(
            store.get_object(&reserved).await,
            Err(BlockError::InvalidKey(_))
        ));
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    use super::*;
    use crate::blocks::encode_chunk;
    use crate::blocks::test_data::{compressible_bytes, random_bytes};

    fn in_memory() -> ObjectBlockStore {
        ObjectBlockStore::new(Arc::new(InMemory::new()))
    }

    /// A local store in a fresh directory, with the directory kept alive.
    fn local() -> (tempfile::TempDir, ObjectBlockStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ObjectBlockStore::local(dir.path()).expect("local");
        (dir, store)
    }

    #[tokio::test]
    async fn in_memory_backend_conforms() {
        conformance(&in_memory()).await;
    }

    #[tokio::test]
    async fn write_once_in_memory_backend_conforms() {
        conformance(&ObjectBlockStore::write_once(Arc::new(InMemory::new()))).await;
    }

    #[tokio::test]
    async fn s3_backend_conforms() {
        if let Some(store) = crate::blocks::s3::test_store("s3_backend_conforms") {
            conformance(&store).await;
        }
    }

    #[tokio::test]
    async fn local_backend_conforms() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ObjectBlockStore::local(&dir.path().join("not/yet/there")).expect("local");
        conformance(&store).await;
    }

    #[test]
    fn object_paths_are_laid_out_by_key() {
        let id = ChunkId::of(b"abc");
        let hex = id.to_hex();
        let path = ObjectKey::Chunk(id).path().expect("chunk path");
        assert_eq!(path.as_ref(), format!("chunks/{}/{hex}", &hex[..2]));
        let pack = PackId::of(b"abc");
        let path = ObjectKey::Pack(pack).path().expect("pack path");
        assert_eq!(path.as_ref(), format!("packs/{}/{hex}", &hex[..2]));
        assert_eq!(pack_id_at(&path), Some(pack));
        let manifest = ObjectKey::Manifest {
            name: "m.json".to_owned(),
        };
        assert_eq!(
            manifest.path().expect("manifest path").as_ref(),
            "manifests/m.json"
        );
        for stray in [
            format!("packs/00/{hex}"),
            format!("chunks/{}/{hex}", &hex[..2]),
        ] {
            assert_eq!(pack_id_at(&ObjectPath::from(stray)), None);
        }
        let cluster = ClusterId::generate();
        let slice = OplogSliceId::generate();
        let key = ObjectKey::OplogSlice {
            cluster,
            replica_set: "rs 0/x".to_owned(),
            slice,
        };
        assert_eq!(
            key.path().expect("slice path").as_ref(),
            format!("oplog/{cluster}/727320302f78/{slice}")
        );
    }

    /// Writes `bytes` as the object at `key`, bypassing the block store.
    async fn write_raw(store: &ObjectBlockStore, key: &ObjectKey, bytes: Vec<u8>) {
        let path = key.path().expect("path");
        store
            .inner
            .put(&path, Bytes::from(bytes).into())
            .await
            .expect("raw put");
    }

    fn assert_corrupt(result: &BlockResult<EncodedChunk>, expected: ChunkId, what: &str) {
        assert!(
            matches!(result, Err(BlockError::Corrupt { id, .. }) if *id == expected),
            "{what}: {result:?}"
        );
    }

    /// Reads `at` both alone and in a window, expecting the same outcome.
    async fn read_both_ways(
        store: &ObjectBlockStore,
        at: &ChunkLocation,
    ) -> [BlockResult<EncodedChunk>; 2] {
        let alone = store.get(at).await;
        let mut many = store.get_many(&[*at]).await;
        let in_window = many
            .pop()
            .unwrap_or_else(|| Err(BlockError::Io("no result".into())));
        [alone, in_window]
    }

    async fn damaged_packs_are_refused_chunk_by_chunk(store: ObjectBlockStore) {
        let chunks = [
            encode_chunk(&compressible_bytes(30_000)).expect("encode"),
            encode_chunk(&random_bytes(5, 30_000)).expect("encode"),
            encode_chunk(&compressible_bytes(10_000)).expect("encode"),
        ];
        let pack = pack_of(&[&chunks[0], &chunks[1], &chunks[2]]);
        let at = pack.chunks().to_vec();
        let key = ObjectKey::Pack(pack.id());
        let Placement::Packed { offset, len, .. } = at[1].placement else {
            panic!("packed");
        };

        let mut flipped = pack.bytes().to_vec();
        flipped[offset as usize + len as usize / 2] ^= 0x40;
        write_raw(&store, &key, flipped).await;
        for result in read_both_ways(&store, &at[1]).await {
            assert_corrupt(
                &result,
                chunks[1].id(),
                "a flipped byte in the middle chunk",
            );
        }
        let many = store.get_many(&at).await;
        assert_eq!(many[0].as_ref().expect("first chunk intact"), &chunks[0]);
        assert_corrupt(&many[1], chunks[1].id(), "in a window");
        assert_eq!(many[2].as_ref().expect("last chunk intact"), &chunks[2]);

        let mut truncated = pack.bytes().to_vec();
        truncated.truncate(truncated.len() - 10);
        write_raw(&store, &key, truncated).await;
        for result in read_both_ways(&store, &at[2]).await {
            assert_corrupt(&result, chunks[2].id(), "a truncated pack");
        }
        assert_eq!(store.get(&at[0]).await.expect("intact"), chunks[0]);

        write_raw(&store, &key, b"garbage".to_vec()).await;
        for result in read_both_ways(&store, &at[0]).await {
            assert_corrupt(&result, chunks[0].id(), "garbage");
        }

        write_raw(&store, &key, pack.bytes().to_vec()).await;
        let wrong_places = [
            (chunks[0].id(), offset, len),
            (chunks[1].id(), offset, len + 1),
            (chunks[1].id(), offset + 1, len),
            (chunks[1].id(), offset, MAX_OBJECT_BYTES as u32 + 1),
            (chunks[1].id(), u64::MAX, len),
        ];
        for (id, offset, len) in wrong_places {
            let wrong = ChunkLocation {
                id,
                placement: Placement::Packed {
                    pack: pack.id(),
                    offset,
                    len,
                },
            };
            for result in read_both_ways(&store, &wrong).await {
                assert_corrupt(&result, id, &format!("misplaced at {offset}+{len}"));
            }
        }
        assert_eq!(store.get_many(&at).await.len(), 3);
        for (chunk, result) in chunks.iter().zip(store.get_many(&at).await) {
            assert_eq!(&result.expect("restored pack reads"), chunk);
        }
    }

    #[tokio::test]
    async fn damaged_packs_are_refused_chunk_by_chunk_on_every_backend() {
        damaged_packs_are_refused_chunk_by_chunk(in_memory()).await;
        let (_dir, store) = local();
        damaged_packs_are_refused_chunk_by_chunk(store).await;
        if let Some(store) =
            crate::blocks::s3::test_store("damaged_packs_are_refused_chunk_by_chunk")
        {
            damaged_packs_are_refused_chunk_by_chunk(store).await;
        }
    }

    /// Chunks stored one per object by earlier versions stay readable next to packed ones,
    /// verified the same way, and can be deleted.
    async fn chunks_stored_alone_are_read_beside_packed_ones(store: ObjectBlockStore) {
        let alone = encode_chunk(&compressible_bytes(12_000)).expect("encode");
        let packed = encode_chunk(&random_bytes(6, 12_000)).expect("encode");
        let key = ObjectKey::Chunk(alone.id());
        write_raw(&store, &key, alone.to_object_bytes().to_vec()).await;
        let pack = pack_of(&[&packed]);
        store.put_pack(&pack).await.expect("put pack");
        let at_alone = ChunkLocation {
            id: alone.id(),
            placement: Placement::Loose,
        };
        let window = [at_alone, pack.chunks()[0], at_alone];
        let many = store.get_many(&window).await;
        assert_eq!(many[0].as_ref().expect("loose"), &alone);
        assert_eq!(many[1].as_ref().expect("packed"), &packed);
        assert_eq!(many[2].as_ref().expect("loose again"), &alone);
        assert_eq!(store.get(&at_alone).await.expect("loose"), alone);

        let mut flipped = alone.to_object_bytes().to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let oversized = vec![0u8; MAX_OBJECT_BYTES + 1];
        for bad in [flipped, b"garbage".to_vec(), oversized] {
            write_raw(&store, &key, bad).await;
            for result in read_both_ways(&store, &at_alone).await {
                assert_corrupt(&result, alone.id(), "a damaged chunk stored alone");
            }
        }
        store.delete_object(&key).await.expect("delete");
        for result in read_both_ways(&store, &at_alone).await {
            assert!(matches!(result, Err(BlockError::NotFound(id)) if id == alone.id()));
        }
        assert_eq!(store.get(&pack.chunks()[0]).await.expect("packed"), packed);
    }

    #[tokio::test]
    async fn chunks_stored_alone_are_read_beside_packed_ones_on_every_backend() {
        chunks_stored_alone_are_read_beside_packed_ones(in_memory()).await;
        let (_dir, store) = local();
        chunks_stored_alone_are_read_beside_packed_ones(store).await;
        if let Some(store) =
            crate::blocks::s3::test_store("chunks_stored_alone_are_read_beside_packed_ones")
        {
            chunks_stored_alone_are_read_beside_packed_ones(store).await;
        }
    }

    /// On a write-once backend the second create of an object is refused by the store
    /// itself (so racing writers really do not overwrite each other), a pack put again is
    /// left as it was, and an object of the wrong size at a pack's name is replaced.
    async fn write_once_puts_keep_an_intact_pack_and_replace_a_damaged_one(
        store: ObjectBlockStore,
    ) {
        use object_store::{PutMode, PutOptions};

        let chunk = encode_chunk(&random_bytes(77, 50_000)).expect("encode");
        let pack = pack_of(&[&chunk]);
        let path = pack_path(&pack.id());
        store.put_pack(&pack).await.expect("put pack");
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let again = store
            .inner
            .put_opts(&path, Bytes::from_static(b"junk").into(), create)
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "the store must refuse a second create: {again:?}"
        );
        let first = store.inner.head(&path).await.expect("head");
        store.put_pack(&pack).await.expect("put pack again");
        let kept = store.inner.head(&path).await.expect("head");
        assert_eq!(kept.e_tag, first.e_tag, "an intact pack is left alone");

        write_raw(&store, &ObjectKey::Pack(pack.id()), b"truncated".to_vec()).await;
        store
            .put_pack(&pack)
            .await
            .expect("put over a damaged pack");
        assert_eq!(store.get(&pack.chunks()[0]).await.expect("repaired"), chunk);
    }

    #[tokio::test]
    async fn write_once_puts_keep_an_intact_pack_and_replace_a_damaged_one_on_every_backend() {
        let in_memory = ObjectBlockStore::write_once(Arc::new(InMemory::new()));
        write_once_puts_keep_an_intact_pack_and_replace_a_damaged_one(in_memory).await;
        let test = "write_once_puts_keep_an_intact_pack_and_replace_a_damaged_one";
        if let Some(store) = crate::blocks::s3::test_store(test) {
            write_once_puts_keep_an_intact_pack_and_replace_a_damaged_one(store).await;
        }
    }

    /// A pack above the multipart threshold is uploaded in parts and reads back whole;
    /// putting it again leaves it alone, and racing writers of it all succeed.
    async fn a_pack_over_the_threshold_is_written_in_parts_once(store: ObjectBlockStore) {
        let chunks: Vec<EncodedChunk> = (0..72)
            .map(|seed| encode_chunk(&random_bytes(300 + seed, 128 * 1024)).expect("encode"))
            .collect();
        let pack = pack_of(&chunks.iter().collect::<Vec<_>>());
        assert!(
            pack.bytes().len() > crate::blocks::s3::PART_BYTES,
            "two parts at least"
        );
        let store = store.with_multipart_threshold(1024 * 1024);
        store.put_pack(&pack).await.expect("put in parts");
        let path = pack_path(&pack.id());
        let first = store.inner.head(&path).await.expect("head");
        assert_eq!(first.size, pack.bytes().len() as u64);
        store.put_pack(&pack).await.expect("put again");
        let kept = store.inner.head(&path).await.expect("head");
        assert_eq!(kept.e_tag, first.e_tag, "an intact pack is left alone");
        for (chunk, read) in chunks.iter().zip(store.get_many(pack.chunks()).await) {
            assert_eq!(&read.expect("a chunk of a pack written in parts"), chunk);
        }
        write_raw(&store, &ObjectKey::Pack(pack.id()), b"truncated".to_vec()).await;
        let racing = futures::future::join_all((0..3).map(|_| store.put_pack(&pack))).await;
        for result in racing {
            result.expect("a racing writer in parts");
        }
        for (chunk, read) in chunks.iter().zip(store.get_many(pack.chunks()).await) {
            assert_eq!(&read.expect("the damaged pack was replaced"), chunk);
        }
    }

    #[tokio::test]
    async fn a_pack_over_the_threshold_is_written_in_parts_once_on_every_write_once_backend() {
        let in_memory = ObjectBlockStore::write_once(Arc::new(InMemory::new()));
        a_pack_over_the_threshold_is_written_in_parts_once(in_memory).await;
        let test = "a_pack_over_the_threshold_is_written_in_parts_once";
        if let Some(store) = crate::blocks::s3::test_store(test) {
            a_pack_over_the_threshold_is_written_in_parts_once(store).await;
        }
    }

    #[tokio::test]
    async fn stray_objects_under_packs_are_not_listed() {
        let store = in_memory();
        let chunk = encode_chunk(b"listed").expect("encode");
        let pack = pack_of(&[&chunk]);
        store.put_pack(&pack).await.expect("put");
        let hex = pack.id().to_hex();
        for stray in [
            "packs/readme.txt".to_owned(),
            "packs/ab/not-hex".to_owned(),
            format!("packs/zz/{hex}"),
            format!("packs/{}/{hex}#1", &hex[..2]),
        ] {
            store
                .inner
                .put(&ObjectPath::from(stray), Bytes::new().into())
                .await
                .expect("put");
        }
        let listed: Vec<ListedPack> = store.list_packs().try_collect().await.expect("list");
        let listed: Vec<PackId> = listed.iter().map(|p| p.id).collect();
        assert_eq!(listed, vec![pack.id()]);
    }
}
