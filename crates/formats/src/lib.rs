//! The byte formats Rewind's server, CLI and agent share, with nothing of the server in
//! them: clients depend on this crate and on `rewind-api-types` only.
//!
//! - [`chunking`]: how a data file is cut into content-defined chunks ([`FileChunker`]);
//! - [`ChunkId`]: a chunk's identity, the BLAKE3 of its plaintext;
//! - [`frames`]: the body of a chunk upload, frames of `id | length | bytes`;
//! - [`oplog`]: oplog entries as `mongodump` writes them ([`oplog::entry`]), their
//!   timestamps ([`OplogTs`]) and the largest push ([`oplog::MAX_PUSH_BYTES`]).

mod digest;

pub mod chunking;
pub mod frames;
pub mod oplog;

pub use chunking::{FileChunker, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES};
pub use digest::ChunkId;
pub use oplog::OplogTs;

/// What [`digest_id!`] expands to needs, reachable from any crate that invokes it.
#[doc(hidden)]
pub mod __private {
    pub use blake3;
    pub use hex;
}

/// Deterministic test data for this crate's tests and, with the `test-util` feature, other
/// crates'.
#[cfg(any(test, feature = "test-util"))]
pub mod test_data {
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
}
