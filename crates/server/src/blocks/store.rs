//! Where chunks live: the [`BlockStore`] trait and its `object_store` backend.
//!
//! The backend uses only what every `object_store` implementation offers (get, put, head,
//! delete, list), so the same code runs on a local directory, in memory, or on S3.

use std::path::Path as FsPath;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, ObjectMeta, ObjectStore};

use super::chunk::MAX_OBJECT_BYTES;
use super::{BlockError, BlockResult, ChunkId, EncodedChunk};
use crate::ids::{ClusterId, OplogSliceId};

/// Top-level folder of chunk objects.
const CHUNKS_DIR: &str = "chunks";
/// Top-level folder of manifests.
const MANIFESTS_DIR: &str = "manifests";
/// Top-level folder of oplog slices.
const OPLOG_DIR: &str = "oplog";
/// Longest manifest name accepted.
const MAX_MANIFEST_NAME_BYTES: usize = 200;

/// What a [`BlockStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A chunk with this id was already stored; nothing was written.
    AlreadyPresent,
    /// The chunk was written as an object of `bytes` bytes.
    Stored { bytes: u64 },
}

/// Names every object the block store keeps. All object paths are derived here, and only
/// here, so the layout cannot drift between writers and readers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    /// `chunks/ab/<64 hex>`: 256 directories keep each one small (about 4,000 chunks per
    /// directory at 32 GiB stored) while a store needs only 256 directory creations; a
    /// two-level fan-out made nearly every early chunk write also create a directory.
    Chunk(ChunkId),
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

fn chunk_path(id: &ChunkId) -> ObjectPath {
    let hex = id.to_hex();
    ObjectPath::from_iter([CHUNKS_DIR, &hex[..2], &hex])
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

/// The id of the chunk object at `location`, if it is one laid out by [`ObjectKey::Chunk`].
fn chunk_id_at(location: &ObjectPath) -> Option<ChunkId> {
    let id = ChunkId::parse_hex(location.filename()?)?;
    (chunk_path(&id) == *location).then_some(id)
}

/// A content-addressed chunk store, plus a few small named objects (snapshot manifests).
///
/// Contract for every backend: an object becomes visible only complete; `put` is idempotent;
/// `get` verifies every read and never returns a corrupt chunk.
#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    async fn contains(&self, id: ChunkId) -> BlockResult<bool>;

    /// Stores `chunk` unless a chunk with its id is already there (content addressing makes
    /// that one identical).
    async fn put(&self, chunk: &EncodedChunk) -> BlockResult<PutOutcome>;

    /// The stored chunk, its `check` verified; [`BlockError::NotFound`] if absent and
    /// [`BlockError::Corrupt`] (logged) if its bytes fail verification.
    async fn get(&self, id: ChunkId) -> BlockResult<EncodedChunk>;

    /// Several chunks, each verified as [`BlockStore::get`] does, in the order asked.
    /// Backends that can read many objects at once override it.
    async fn get_many(&self, ids: &[ChunkId]) -> Vec<BlockResult<EncodedChunk>> {
        futures::future::join_all(ids.iter().map(|id| self.get(*id))).await
    }

    /// Removes the chunk; removing a missing chunk is not an error.
    async fn delete(&self, id: ChunkId) -> BlockResult<()>;

    /// Every stored chunk id, in no particular order.
    fn list(&self) -> BoxStream<'static, BlockResult<ChunkId>>;

    /// Writes a non-chunk object (chunks go through [`BlockStore::put`] only).
    async fn put_object(&self, key: &ObjectKey, bytes: Bytes) -> BlockResult<()>;

    /// Reads a non-chunk object; `None` when it does not exist.
    async fn get_object(&self, key: &ObjectKey) -> BlockResult<Option<Bytes>>;

    /// Removes a non-chunk object; removing a missing one is not an error.
    async fn delete_object(&self, key: &ObjectKey) -> BlockResult<()>;
}

/// A [`BlockStore`] over any `object_store` backend.
///
/// Durability of writes: `LocalFileSystem::put` writes a staging file and renames it into
/// place, and an S3 PUT is atomic, so readers never see a partial object. (The local backend
/// does not fsync; a machine crash right after a put may lose that put, which the next
/// snapshot's `contains` check repairs by writing the chunk again.)
#[derive(Debug, Clone)]
pub struct ObjectBlockStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store, for reading many chunks in one blocking task.
    local_root: Option<std::path::PathBuf>,
}

impl ObjectBlockStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            local_root: None,
        }
    }

    /// A store in the local directory `dir`, created if missing.
    pub fn local(dir: &FsPath) -> BlockResult<Self> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self {
            inner: Arc::new(fs),
            local_root: Some(dir.to_owned()),
        })
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

    async fn get_verified(&self, id: ChunkId) -> BlockResult<EncodedChunk> {
        let result = self
            .fetch(&chunk_path(&id))
            .await?
            .ok_or(BlockError::NotFound(id))?;
        if result.meta.size > MAX_OBJECT_BYTES as u64 {
            return Err(BlockError::Corrupt {
                id,
                reason: format!(
                    "object of {} bytes is larger than any chunk",
                    result.meta.size
                ),
            });
        }
        EncodedChunk::from_object_bytes(id, result.bytes().await?)
    }

    async fn delete_path(&self, path: &ObjectPath) -> BlockResult<()> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads and verifies one chunk file of a local store (see [`ObjectBlockStore::get_many`]).
fn read_local_chunk(root: &FsPath, id: ChunkId) -> BlockResult<EncodedChunk> {
    use std::io::Read;
    let path = root.join(chunk_path(&id).as_ref());
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BlockError::NotFound(id)),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_OBJECT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(BlockError::Corrupt {
            id,
            reason: "object is larger than any chunk".into(),
        });
    }
    let result = EncodedChunk::from_object_bytes(id, Bytes::from(bytes));
    if let Err(BlockError::Corrupt { reason, .. }) = &result {
        tracing::error!(chunk = %id, %reason, "refusing corrupt chunk");
    }
    result
}

/// The path of a non-chunk object; chunk keys are refused so every chunk object is written
/// by `put` and therefore well-formed.
fn non_chunk_path(key: &ObjectKey) -> BlockResult<ObjectPath> {
    match key {
        ObjectKey::Chunk(id) => Err(BlockError::InvalidKey(format!(
            "chunk {id} is only accessible through the chunk methods"
        ))),
        _ => key.path(),
    }
}

fn listed_chunk_id(meta: object_store::Result<ObjectMeta>) -> Option<BlockResult<ChunkId>> {
    match meta {
        Ok(meta) => {
            let id = chunk_id_at(&meta.location);
            if id.is_none() {
                tracing::warn!(location = %meta.location, "ignoring stray object among chunks");
            }
            id.map(Ok)
        }
        Err(e) => Some(Err(e.into())),
    }
}

#[async_trait]
impl BlockStore for ObjectBlockStore {
    async fn contains(&self, id: ChunkId) -> BlockResult<bool> {
        match self.inner.head(&chunk_path(&id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn put(&self, chunk: &EncodedChunk) -> BlockResult<PutOutcome> {
        if self.contains(chunk.id()).await? {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let bytes = chunk.to_object_bytes();
        let len = bytes.len() as u64;
        // A plain put (staging file renamed into place) rather than a conditional one: on
        // ext4 the conditional form's link-then-unlink makes every later file creation scan
        // recently deleted inodes, which cost a third of an import's CPU. Racing writers of
        // one id write identical bytes, so whichever rename lands last is right.
        self.inner
            .put(&chunk_path(&chunk.id()), bytes.into())
            .await?;
        Ok(PutOutcome::Stored { bytes: len })
    }

    /// On a local store, reads the whole window of chunk files in one blocking task:
    /// `object_store`'s local backend hands every read to the blocking pool, and for chunks of
    /// tens of KiB those thread hand-offs, not the reads, dominated delivery time. The files
    /// are the ones `put` wrote through `object_store`, found by the same `chunk_path`, and are
    /// verified exactly as `get` verifies them.
    async fn get_many(&self, ids: &[ChunkId]) -> Vec<BlockResult<EncodedChunk>> {
        let Some(root) = self.local_root.clone() else {
            return futures::future::join_all(ids.iter().map(|id| self.get(*id))).await;
        };
        let ids = ids.to_vec();
        let count = ids.len();
        let read = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| read_local_chunk(&root, id))
                .collect::<Vec<_>>()
        })
        .await;
        match read {
            Ok(results) => results,
            Err(e) => (0..count)
                .map(|_| Err(BlockError::Io(format!("chunk reading task failed: {e}"))))
                .collect(),
        }
    }

    async fn get(&self, id: ChunkId) -> BlockResult<EncodedChunk> {
        let result = self.get_verified(id).await;
        if let Err(BlockError::Corrupt { reason, .. }) = &result {
            tracing::error!(chunk = %id, %reason, "refusing corrupt chunk");
        }
        result
    }

    async fn delete(&self, id: ChunkId) -> BlockResult<()> {
        self.delete_path(&chunk_path(&id)).await
    }

    fn list(&self) -> BoxStream<'static, BlockResult<ChunkId>> {
        let prefix = ObjectPath::from(CHUNKS_DIR);
        self.inner
            .list(Some(&prefix))
            .filter_map(|meta| futures::future::ready(listed_chunk_id(meta)))
            .boxed()
    }

    async fn put_object(&self, key: &ObjectKey, bytes: Bytes) -> BlockResult<()> {
        let path = non_chunk_path(key)?;
        self.inner.put(&path, bytes.into()).await?;
        Ok(())
    }

    async fn get_object(&self, key: &ObjectKey) -> BlockResult<Option<Bytes>> {
        match self.fetch(&non_chunk_path(key)?).await? {
            Some(result) => Ok(Some(result.bytes().await?)),
            None => Ok(None),
        }
    }

    async fn delete_object(&self, key: &ObjectKey) -> BlockResult<()> {
        self.delete_path(&non_chunk_path(key)?).await
    }
}

/// One behavioural suite for every [`BlockStore`] backend.
#[cfg(test)]
pub(crate) async fn conformance(store: &dyn BlockStore) {
    use super::encode_chunk;
    use super::test_data::{compressible_bytes, random_bytes};

    let deflated = encode_chunk(&compressible_bytes(20_000)).expect("encode");
    let raw = encode_chunk(&random_bytes(9, 20_000)).expect("encode");
    for chunk in [&deflated, &raw] {
        let id = chunk.id();
        assert!(!store.contains(id).await.expect("contains"));
        assert!(matches!(store.get(id).await, Err(BlockError::NotFound(got)) if got == id));
        let stored = store.put(chunk).await.expect("put");
        assert_eq!(
            stored,
            PutOutcome::Stored {
                bytes: chunk.to_object_bytes().len() as u64
            }
        );
        assert_eq!(
            store.put(chunk).await.expect("put again"),
            PutOutcome::AlreadyPresent
        );
        assert!(store.contains(id).await.expect("contains"));
        let got = store.get(id).await.expect("get");
        assert_eq!(&got, chunk);
        assert_eq!(got.decode().expect("decode").len(), 20_000);
    }

    let missing = ChunkId::of(b"never stored");
    let many = store.get_many(&[raw.id(), missing, deflated.id()]).await;
    assert_eq!(many.len(), 3, "one result per id, in order");
    assert_eq!(many[0].as_ref().expect("get_many"), &raw);
    assert!(matches!(&many[1], Err(BlockError::NotFound(got)) if *got == missing));
    assert_eq!(many[2].as_ref().expect("get_many"), &deflated);

    let mut listed: Vec<ChunkId> = store.list().map(|r| r.expect("list")).collect().await;
    listed.sort();
    let mut expected = vec![deflated.id(), raw.id()];
    expected.sort();
    assert_eq!(listed, expected);

    store.delete(raw.id()).await.expect("delete");
    store
        .delete(raw.id())
        .await
        .expect("deleting a missing chunk is fine");
    assert!(!store.contains(raw.id()).await.expect("contains"));
    assert!(matches!(
        store.get(raw.id()).await,
        Err(BlockError::NotFound(_))
    ));

    object_conformance(store, deflated.id()).await;
}

#[cfg(test)]
async fn object_conformance(store: &dyn BlockStore, chunk: ChunkId) {
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
    store.delete_object(&key).await.expect("delete object");
    store
        .delete_object(&key)
        .await
        .expect("delete missing object");
    assert_eq!(store.get_object(&key).await.expect("get deleted"), None);

    let listed: Vec<ChunkId> = store.list().map(|r| r.expect("list")).collect().await;
    assert_eq!(listed, vec![chunk], "manifests are not chunks");
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
    let chunk_key = ObjectKey::Chunk(chunk);
    let result = store
        .put_object(&chunk_key, Bytes::from_static(b"junk"))
        .await;
    assert!(matches!(result, Err(BlockError::InvalidKey(_))));
    assert!(matches!(
        store.get_object(&chunk_key).await,
        Err(BlockError::InvalidKey(_))
    ));
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;
    use crate::blocks::encode_chunk;
    use crate::blocks::test_data::compressible_bytes;

    fn in_memory() -> ObjectBlockStore {
        ObjectBlockStore::new(Arc::new(InMemory::new()))
    }

    #[tokio::test]
    async fn in_memory_backend_conforms() {
        conformance(&in_memory()).await;
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
        assert_eq!(chunk_id_at(&path), Some(id));
        let manifest = ObjectKey::Manifest {
            name: "m.json".to_owned(),
        };
        assert_eq!(
            manifest.path().expect("manifest path").as_ref(),
            "manifests/m.json"
        );
        assert_eq!(
            chunk_id_at(&ObjectPath::from(format!("chunks/00/{hex}"))),
            None
        );
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

    /// Writes `bytes` over the stored object of `id`, bypassing the block store.
    async fn tamper(store: &ObjectBlockStore, id: ChunkId, bytes: Vec<u8>) {
        let path = ObjectKey::Chunk(id).path().expect("path");
        store
            .inner
            .put(&path, Bytes::from(bytes).into())
            .await
            .expect("raw put");
    }

    async fn tampered_chunks_are_refused(store: ObjectBlockStore) {
        let chunk = encode_chunk(&compressible_bytes(30_000)).expect("encode");
        store.put(&chunk).await.expect("put");
        let mut flipped = chunk.to_object_bytes().to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let oversized = vec![0u8; crate::blocks::chunk::MAX_OBJECT_BYTES + 1];
        for bad in [flipped, b"garbage".to_vec(), oversized] {
            tamper(&store, chunk.id(), bad).await;
            let got = store.get(chunk.id()).await;
            assert!(matches!(got, Err(BlockError::Corrupt { id, .. }) if id == chunk.id()));
            let many = store.get_many(&[chunk.id()]).await;
            assert!(matches!(&many[0], Err(BlockError::Corrupt { id, .. }) if *id == chunk.id()));
        }
        // A chunk whose object exists is not rewritten by put: repair is a delete and a put.
        assert_eq!(
            store.put(&chunk).await.expect("put"),
            PutOutcome::AlreadyPresent
        );
        store.delete(chunk.id()).await.expect("delete");
        store.put(&chunk).await.expect("put again");
        assert_eq!(store.get(chunk.id()).await.expect("repaired"), chunk);
    }

    #[tokio::test]
    async fn tampered_chunks_are_refused_in_memory() {
        tampered_chunks_are_refused(in_memory()).await;
    }

    #[tokio::test]
    async fn tampered_chunks_are_refused_locally() {
        let dir = tempfile::tempdir().expect("temp dir");
        tampered_chunks_are_refused(ObjectBlockStore::local(dir.path()).expect("local")).await;
    }

    #[tokio::test]
    async fn stray_objects_under_chunks_are_not_listed() {
        let store = in_memory();
        let chunk = encode_chunk(b"listed").expect("encode");
        store.put(&chunk).await.expect("put");
        for stray in ["chunks/readme.txt", "chunks/ab/not-hex"] {
            store
                .inner
                .put(&ObjectPath::from(stray), Bytes::new().into())
                .await
                .expect("put");
        }
        let listed: Vec<ChunkId> = store.list().map(|r| r.expect("list")).collect().await;
        assert_eq!(listed, vec![chunk.id()]);
    }
}
