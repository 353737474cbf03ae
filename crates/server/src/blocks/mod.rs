//! The block store: content-addressed, compressed, verified chunks of MongoDB data files.
//!
//! A data file is cut into content-defined chunks ([`rewind_formats::FileChunker`]); each
//! chunk is encoded once ([`encode_chunk`]) as a complete raw-deflate stream (or kept as
//! plaintext when it does not compress) and identified by the BLAKE3 of its plaintext
//! ([`ChunkId`]). A restore later emits a `.tar.gz` **without recompressing anything**:
//! every stored chunk becomes one gzip member ([`gzip::member_header`] +
//! [`EncodedChunk::deflate_stream`] + [`gzip::member_trailer`]), and tar headers and padding
//! become small members of their own ([`gzip::compress_member`]). Readers of gzip treat
//! concatenated members as one stream.
//!
//! Chunks are stored many to an object: each upload batch's new chunks become one pack
//! ([`pack`]), and the metadata index records where each chunk lies ([`ChunkLocation`]).
//! Chunks stored one per object before packs existed stay readable.
//!
//! Integrity: every stored chunk carries a BLAKE3 check over its header fields and payload,
//! verified on every read, so a corrupt chunk is never handed out (see [`chunk`]).

pub mod chunk;
mod durable;
pub mod gzip;
pub mod pack;
pub mod read_ahead;
pub mod s3;
pub mod store;

pub use chunk::{encode_chunk, EncodedChunk, Encoding};
pub use pack::{ChunkLocation, Pack, PackBuilder, PackId, Placement};
pub use read_ahead::{read_ahead, Fetched, ReadAhead, Wanted};
pub use rewind_formats::{ChunkId, MAX_CHUNK_BYTES};
pub use s3::{S3Config, S3Credentials};
pub use store::{BlockStore, ListedPack, ObjectBlockStore, ObjectKey};

/// Errors of the block store. Backend details are flattened to text: callers decide on the
/// variant, and the text is for logs only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockError {
    /// The chunk's object, or the pack holding it, is absent.
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    /// The stored bytes fail verification; the chunk must not be used.
    #[error("chunk {id} is corrupt: {reason}")]
    Corrupt { id: ChunkId, reason: String },
    /// The object store failed (network, disk).
    #[error("object store error: {0}")]
    Store(String),
    /// The storage is full (no space left, or a quota reached): nothing of the write stayed.
    #[error("out of storage space: {0}")]
    StorageFull(String),
    /// The storage refuses access (permissions, credentials, a read-only file system).
    #[error("the storage refused access: {0}")]
    Refused(String),
    /// A remote store could not be reached, or kept failing (5xx answers, throttling,
    /// broken connections) until the client's retry bound.
    #[error("the object store is unavailable: {0}")]
    Unavailable(String),
    #[error("i/o error: {0}")]
    Io(String),
    /// A named object (an oplog slice) is absent or fails verification.
    #[error("object {path} is missing or corrupt: {reason}")]
    BadObject { path: String, reason: String },
    /// A chunk larger than [`MAX_CHUNK_BYTES`] was offered; only the chunker's output is stored.
    #[error("chunk of {len} bytes exceeds the {max} byte limit")]
    TooLarge { len: usize, max: usize },
    /// An [`ObjectKey`] that cannot name an object (bad manifest name, or a chunk or pack
    /// key used where only manifests are allowed).
    #[error("invalid object key: {0}")]
    InvalidKey(String),
}

impl From<object_store::Error> for BlockError {
    fn from(e: object_store::Error) -> Self {
        use object_store::Error::{PermissionDenied, Unauthenticated};
        if matches!(e, PermissionDenied { .. } | Unauthenticated { .. }) {
            return BlockError::Refused(e.to_string());
        }
        // `object_store`'s S3 client reports every request that failed after its retries
        // (connections refused or broken, timeouts, 5xx, throttling) as `Generic`.
        if matches!(&e, object_store::Error::Generic { store, .. } if *store == s3::STORE_NAME) {
            return BlockError::Unavailable(e.to_string());
        }
        // Backends wrap the file system's error (the local one as `Generic`): its kind
        // decides, wherever in the chain it sits.
        match io_cause(&e) {
            Some(io) if durable::is_storage_full(io) => BlockError::StorageFull(e.to_string()),
            Some(io) if durable::is_refusal(io) => BlockError::Refused(e.to_string()),
            _ => BlockError::Store(e.to_string()),
        }
    }
}

/// The first `std::io::Error` in `err`'s chain of causes.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        next = err.source();
    }
    None
}

impl From<std::io::Error> for BlockError {
    fn from(e: std::io::Error) -> Self {
        if durable::is_storage_full(&e) {
            BlockError::StorageFull(e.to_string())
        } else if durable::is_refusal(&e) {
            BlockError::Refused(e.to_string())
        } else {
            BlockError::Io(e.to_string())
        }
    }
}

pub type BlockResult<T> = Result<T, BlockError>;

/// Deterministic test data shared by the submodules' tests.
#[cfg(test)]
pub(crate) mod test_data {
    pub use rewind_formats::test_data::random_bytes;

    /// `len` bytes of repetitive, BSON-like text that deflate shrinks well.
    pub fn compressible_bytes(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut n = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!("{{\"_id\":{n},\"name\":\"user-{}\"}}", n % 97).as_bytes(),
            );
            n += 1;
        }
        out.truncate(len);
        out
    }
}
