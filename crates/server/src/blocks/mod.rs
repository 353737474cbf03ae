//! The block store: content-addressed, compressed, verified chunks of MongoDB data files.
//!
//! A data file is cut into content-defined chunks ([`FileChunker`]); each chunk is encoded
//! once ([`encode_chunk`]) as a complete raw-deflate stream (or kept as plaintext when it does
//! not compress) and identified by the BLAKE3 of its plaintext ([`ChunkId`]). A restore
//! later emits a `.tar.gz` **without recompressing anything**: every stored chunk becomes
//! one gzip member ([`gzip::member_header`] + [`EncodedChunk::deflate_stream`] +
//! [`gzip::member_trailer`]), and tar headers and padding become small members of their own
//! ([`gzip::compress_member`]). Readers of gzip treat concatenated members as one stream.
//!
//! Chunks are stored many to an object: each upload batch's new chunks become one pack
//! ([`pack`]), and the metadata index records where each chunk lies ([`ChunkLocation`]).
//! Chunks stored one per object before packs existed stay readable.
//!
//! Integrity: every stored chunk carries a BLAKE3 check over its header fields and payload,
//! verified on every read, so a corrupt chunk is never handed out (see [`chunk`]).

/// Declares a BLAKE3 digest newtype: 32 bytes, shown and parsed as 64 hex digits.
macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The id of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }

            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// 64 lowercase hex digits; the form used in object paths, manifests and the index.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly 64 hex digits (either case); `None` for anything else.
            pub fn parse_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

pub mod chunk;
pub mod chunking;
pub mod gzip;
pub mod pack;
pub mod store;

pub use chunk::{encode_chunk, ChunkId, EncodedChunk, Encoding};
pub use chunking::{FileChunker, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES};
pub use pack::{ChunkLocation, Pack, PackBuilder, PackId, Placement};
pub use store::{BlockStore, ListedPack, ObjectBlockStore, ObjectKey};

/// Errors of the block store. Backend details are flattened to text: callers decide on the
/// variant, and the text is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The chunk's object, or the pack holding it, is absent.
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    /// The stored bytes fail verification; the chunk must not be used.
    #[error("chunk {id} is corrupt: {reason}")]
    Corrupt { id: ChunkId, reason: String },
    /// The object store failed (network, permissions, disk).
    #[error("object store error: {0}")]
    Store(String),
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
        BlockError::Store(e.to_string())
    }
}

impl From<std::io::Error> for BlockError {
    fn from(e: std::io::Error) -> Self {
        BlockError::Io(e.to_string())
    }
}

pub type BlockResult<T> = Result<T, BlockError>;

/// Deterministic test data shared by the submodules' tests.
#[cfg(test)]
pub(crate) mod test_data {
    /// `len` pseudo-random (incompressible) bytes from `seed` (SplitMix64), stable across
    /// platforms and crate versions so cut points in tests never drift.
    pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        out
    }

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
