//! One chunk: its id, its encoding, and the byte format it is stored in.
//!
//! # Object byte format (version 1)
//!
//! All integers are big-endian. The header is [`OBJECT_HEADER_BYTES`] (52) bytes:
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! | 0      | 4    | magic `b"RWCK"`                                        |
//! | 4      | 1    | format version, `1`                                    |
//! | 5      | 1    | encoding: `0` = raw plaintext, `1` = raw deflate       |
//! | 6      | 2    | reserved, zero                                         |
//! | 8      | 4    | `raw_len`: plaintext length in bytes                   |
//! | 12     | 4    | `crc32`: CRC-32 (gzip polynomial) of the plaintext     |
//! | 16     | 4    | `payload_len`: length of the payload that follows      |
//! | 20     | 32   | `check` = BLAKE3(id ‖ encoding ‖ raw_len ‖ crc32 ‖ payload) |
//! | 52     | n    | payload                                                |
//!
//! `check` binds the payload to the chunk id it is stored under and to every header field
//! that is not otherwise validated (magic, version, reserved and `payload_len` are checked
//! exactly), so any flipped bit is caught on every read without inflating. The full proof
//! that a chunk is right — inflate, length, CRC-32, BLAKE3(plaintext) == id — is
//! [`EncodedChunk::decode`], which `verify` runs.
//!
//! The CRC-32 is stored because a gzip member trailer needs it: a restore writes it without
//! touching the plaintext.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{BlockError, BlockResult, ChunkId, MAX_CHUNK_BYTES};

/// Magic bytes opening every stored chunk object.
pub const OBJECT_MAGIC: [u8; 4] = *b"RWCK";
/// The only object format version this code writes and reads.
pub const OBJECT_VERSION: u8 = 1;
/// Length of the fixed object header that precedes the payload.
pub const OBJECT_HEADER_BYTES: usize = 52;
/// Largest object a chunk can be stored as: payloads never exceed the plaintext.
pub const MAX_OBJECT_BYTES: usize = OBJECT_HEADER_BYTES + MAX_CHUNK_BYTES;

/// Deflate level for stored chunks and small members. Level 1 is the fastest; with the
/// zlib-rs backend level 2 measured about 1.5x slower but 35% smaller on text-like data.
const DEFLATE_LEVEL: u32 = 1;
/// Size of the prefix compressed first to guess whether a chunk compresses at all.
const SAMPLE_BYTES: usize = 4 * 1024;
/// A sample must shrink by at least this many percent for the whole chunk to be compressed.
const MIN_SAMPLE_SAVING_PERCENT: usize = 3;
/// Largest payload of one stored (uncompressed) deflate block, RFC 1951 §3.2.4.
pub(crate) const STORED_BLOCK_MAX_BYTES: usize = 65_535;
/// Per-block framing of a stored block: 1 header byte (BFINAL, BTYPE=00, padding),
/// LEN (2) and NLEN (2).
const STORED_BLOCK_OVERHEAD_BYTES: usize = 5;

/// How a chunk's payload relates to its plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The payload is the plaintext: compression did not make it smaller.
    Raw,
    /// The payload is one complete raw deflate stream (no zlib or gzip wrapper, last block
    /// has BFINAL=1) that inflates to the plaintext.
    Deflate,
}

impl Encoding {
    fn to_byte(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::Deflate => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::Deflate),
            _ => None,
        }
    }
}

/// A chunk ready to store or to stream. Built only by [`encode_chunk`] (from plaintext) or
/// [`EncodedChunk::from_object_bytes`] (from verified stored bytes), so its fields are
/// consistent with its `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedChunk {
    id: ChunkId,
    encoding: Encoding,
    raw_len: u32,
    crc32: u32,
    payload: Bytes,
}

/// Encodes `plain` for storage: id, CRC-32, and a fast raw deflate stream when that is
/// smaller than the plaintext, else the plaintext itself.
///
/// Incompressible data (WiredTiger pages are usually already snappy- or zstd-compressed) is
/// detected cheaply: a chunk larger than the sample is compressed in full only when its first
/// [`SAMPLE_BYTES`] shrink by at least [`MIN_SAMPLE_SAVING_PERCENT`]%. A wrong guess only costs
/// space, never correctness.
pub fn encode_chunk(plain: &[u8]) -> BlockResult<EncodedChunk> {
    if plain.len() > MAX_CHUNK_BYTES {
        return Err(BlockError::TooLarge {
            len: plain.len(),
            max: MAX_CHUNK_BYTES,
        });
    }
    let (encoding, payload) = match try_deflate(plain) {
        Some(z) => (Encoding::Deflate, Bytes::from(z)),
        None => (Encoding::Raw, Bytes::copy_from_slice(plain)),
    };
    Ok(EncodedChunk {
        id: ChunkId::of(plain),
        encoding,
        raw_len: len_u32(plain.len()),
        crc32: crc32fast::hash(plain),
        payload,
    })
}

/// The compressed form of `plain` when it is worth storing compressed.
fn try_deflate(plain: &[u8]) -> Option<Vec<u8>> {
    if plain.is_empty() {
        return None;
    }
    if plain.len() > SAMPLE_BYTES {
        let sample = &plain[..SAMPLE_BYTES];
        let limit = SAMPLE_BYTES * (100 - MIN_SAMPLE_SAVING_PERCENT) / 100;
        deflate_raw_within(sample, limit)?;
    }
    deflate_raw_within(plain, plain.len())
}

/// A complete raw deflate stream of `plain` at [`DEFLATE_LEVEL`], if it is shorter than `limit` bytes.
///
/// Compression stops as soon as the output reaches `limit`, so hopeless input costs at most
/// one pass and `limit` bytes of memory. A compressor error also yields `None`: the caller
/// then keeps the plaintext, which is always valid.
pub(crate) fn deflate_raw_within(plain: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(limit);
    let mut compressor = Compress::new(Compression::new(DEFLATE_LEVEL), false);
    let status = compressor
        .compress_vec(plain, &mut out, FlushCompress::Finish)
        .ok()?;
    (status == Status::StreamEnd && out.len() < limit).then_some(out)
}

/// `plain` framed as stored (uncompressed) deflate blocks, the last with BFINAL=1.
///
/// RFC 1951 §3.2.4: after the 3 header bits (BFINAL, BTYPE=00) the block skips to a byte
/// boundary, then LEN and NLEN (one's complement of LEN), both little-endian, then LEN bytes
/// of data. Every block here starts byte-aligned, so the header is one whole byte. No crate
/// exposes this framing and it costs 5 bytes per 64 KiB, so it is written here. Empty input
/// gives one empty final block, which is still a valid stream.
pub(crate) fn stored_deflate_stream(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_deflate_stream_len(plain.len() as u64) as usize);
    let mut blocks = plain.chunks(STORED_BLOCK_MAX_BYTES).peekable();
    if blocks.peek().is_none() {
        put_stored_block(&mut out, &[], true);
    }
    while let Some(block) = blocks.next() {
        put_stored_block(&mut out, block, blocks.peek().is_none());
    }
    out
}

fn put_stored_block(out: &mut Vec<u8>, block: &[u8], last: bool) {
    out.put_slice(&stored_block_header(block.len(), last));
    out.put_slice(block);
}

/// The 5-byte header of a byte-aligned stored block of `len` (at most
/// `STORED_BLOCK_MAX_BYTES`) bytes: BFINAL/BTYPE, LEN, NLEN.
pub(crate) fn stored_block_header(len: usize, last: bool) -> [u8; 5] {
    let len = len as u16; // callers pass at most STORED_BLOCK_MAX_BYTES
    let [l0, l1] = len.to_le_bytes();
    let [n0, n1] = (!len).to_le_bytes();
    [u8::from(last), l0, l1, n0, n1]
}

/// Exact length of [`stored_deflate_stream`] for `plain_len` bytes of input.
pub(crate) fn stored_deflate_stream_len(plain_len: u64) -> u64 {
    let blocks = plain_len.div_ceil(STORED_BLOCK_MAX_BYTES as u64).max(1);
    plain_len + blocks * STORED_BLOCK_OVERHEAD_BYTES as u64
}

/// Lengths handled here are bounded by `MAX_CHUNK_BYTES` or `MAX_OBJECT_BYTES`.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn object_check(
    id: &ChunkId,
    encoding: Encoding,
    raw_len: u32,
    crc32: u32,
    payload: &[u8],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(id.as_bytes());
    hasher.update(&[encoding.to_byte()]);
    hasher.update(&raw_len.to_be_bytes());
    hasher.update(&crc32.to_be_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

impl EncodedChunk {
    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Plaintext length in bytes.
    pub fn raw_len(&self) -> u32 {
        self.raw_len
    }

    /// CRC-32 of the plaintext, as a gzip trailer wants it.
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The stored payload: plaintext or raw deflate stream, per [`Self::encoding`].
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    fn check(&self) -> [u8; 32] {
        object_check(
            &self.id,
            self.encoding,
            self.raw_len,
            self.crc32,
            &self.payload,
        )
    }

    /// The object bytes to store (format in the module docs).
    pub fn to_object_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.object_len());
        self.write_object(&mut out);
        out.freeze()
    }

    /// Length of [`Self::to_object_bytes`]: at most [`MAX_OBJECT_BYTES`].
    pub fn object_len(&self) -> usize {
        OBJECT_HEADER_BYTES + self.payload.len()
    }

    /// Appends the object bytes to `out`, as packs are assembled.
    pub fn write_object(&self, out: &mut BytesMut) {
        out.put_slice(&OBJECT_MAGIC);
        out.put_u8(OBJECT_VERSION);
        out.put_u8(self.encoding.to_byte());
        out.put_u16(0);
        out.put_u32(self.raw_len);
        out.put_u32(self.crc32);
        out.put_u32(len_u32(self.payload.len()));
        out.put_slice(&self.check());
        out.put_slice(&self.payload);
    }

    /// Parses and verifies an object stored under `id`. Any mismatch — magic, version,
    /// reserved bytes, lengths, or `check` — is [`BlockError::Corrupt`]. The payload is not
    /// inflated (see [`Self::decode`] for that).
    pub fn from_object_bytes(id: ChunkId, bytes: Bytes) -> BlockResult<EncodedChunk> {
        let corrupt = |reason: &str| BlockError::Corrupt {
            id,
            reason: reason.to_owned(),
        };
        if bytes.len() < OBJECT_HEADER_BYTES {
            return Err(corrupt("object shorter than its header"));
        }
        let mut header = &bytes[..OBJECT_HEADER_BYTES];
        let mut magic = [0u8; 4];
        header.copy_to_slice(&mut magic);
        if magic != OBJECT_MAGIC {
            return Err(corrupt("bad magic"));
        }
        if header.get_u8() != OBJECT_VERSION {
            return Err(corrupt("unknown format version"));
        }
        let encoding =
            Encoding::from_byte(header.get_u8()).ok_or_else(|| corrupt("unknown encoding"))?;
        if header.get_u16() != 0 {
            return Err(corrupt("reserved bytes are not zero"));
        }
        let raw_len = header.get_u32();
        let crc32 = header.get_u32();
        let payload_len = header.get_u32() as usize;
        let mut check = [0u8; 32];
        header.copy_to_slice(&mut check);
        if payload_len != bytes.len() - OBJECT_HEADER_BYTES {
            return Err(corrupt("payload length does not match object length"));
        }
        let chunk = EncodedChunk {
            id,
            encoding,
            raw_len,
            crc32,
            payload: bytes.slice(OBJECT_HEADER_BYTES..),
        };
        if chunk.check() != check {
            return Err(corrupt("check mismatch"));
        }
        chunk.validate_lengths().map_err(corrupt)?;
        Ok(chunk)
    }

    /// Length rules every well-formed chunk obeys; also bounds what [`Self::decode`] inflates.
    fn validate_lengths(&self) -> Result<(), &'static str> {
        if self.raw_len as usize > MAX_CHUNK_BYTES {
            return Err("plaintext length exceeds the chunk limit");
        }
        match self.encoding {
            Encoding::Raw if self.payload.len() != self.raw_len as usize => {
                Err("raw payload length differs from plaintext length")
            }
            Encoding::Deflate if self.payload.len() >= self.raw_len as usize => {
                Err("deflate payload is not smaller than its plaintext")
            }
            _ => Ok(()),
        }
    }

    /// The plaintext, fully verified: inflated (or taken as is), then length, CRC-32 and
    /// BLAKE3 against the id. Any mismatch is [`BlockError::Corrupt`].
    pub fn decode(&self) -> BlockResult<Bytes> {
        let corrupt = |reason: &str| BlockError::Corrupt {
            id: self.id,
            reason: reason.to_owned(),
        };
        self.validate_lengths().map_err(corrupt)?;
        let plain = match self.encoding {
            Encoding::Raw => self.payload.clone(),
            Encoding::Deflate => Bytes::from(self.inflate().map_err(corrupt)?),
        };
        if plain.len() != self.raw_len as usize {
            return Err(corrupt("plaintext length mismatch"));
        }
        if crc32fast::hash(&plain) != self.crc32 {
            return Err(corrupt("CRC-32 mismatch"));
        }
        if ChunkId::of(&plain) != self.id {
            return Err(corrupt("content hash does not match chunk id"));
        }
        Ok(plain)
    }

    /// Inflates the payload into at most `raw_len` bytes; a stream that is longer, shorter,
    /// unterminated or followed by trailing bytes is rejected.
    fn inflate(&self) -> Result<Vec<u8>, &'static str> {
        // One spare byte of room, so a stream longer than `raw_len` shows as not finished.
        let mut out = Vec::with_capacity(self.raw_len as usize + 1);
        let mut inflater = Decompress::new(false);
        let status = inflater
            .decompress_vec(&self.payload, &mut out, FlushDecompress::Finish)
            .map_err(|_| "invalid deflate stream")?;
        if status != Status::StreamEnd {
            return Err("deflate stream does not end where expected");
        }
        if inflater.total_in() != self.payload.len() as u64 {
            return Err("trailing bytes after deflate stream");
        }
        Ok(out)
    }

    /// A complete raw deflate stream (last block BFINAL=1) that inflates to the plaintext:
    /// the payload itself for [`Encoding::Deflate`], stored blocks for [`Encoding::Raw`].
    /// This is the body of the chunk's gzip member.
    pub fn deflate_stream(&self) -> Bytes {
        match self.encoding {
            Encoding::Deflate => self.payload.clone(),
            Encoding::Raw => Bytes::from(stored_deflate_stream(&self.payload)),
        }
    }

    /// Exact length of [`Self::deflate_stream`], computed without building it.
    pub fn deflate_stream_len(&self) -> u64 {
        match self.encoding {
            Encoding::Deflate => self.payload.len() as u64,
            Encoding::Raw => stored_deflate_stream_len(self.payload.len() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::blocks::test_data::{compressible_bytes, random_bytes};

    fn round_trip(plain: &[u8]) -> EncodedChunk {
        let chunk = encode_chunk(plain).expect("encode");
        assert_eq!(chunk.id(), ChunkId::of(plain));
        assert_eq!(chunk.raw_len() as usize, plain.len());
        let stored = EncodedChunk::from_object_bytes(chunk.id(), chunk.to_object_bytes())
            .expect("stored object parses");
        assert_eq!(stored, chunk);
        assert_eq!(stored.decode().expect("decode"), plain);
        assert_eq!(inflate_stream(&chunk.deflate_stream()), plain);
        assert_eq!(
            chunk.deflate_stream().len() as u64,
            chunk.deflate_stream_len()
        );
        chunk
    }

    fn inflate_stream(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut decoder = flate2::read::DeflateDecoder::new(stream);
        std::io::Read::read_to_end(&mut decoder, &mut out).expect("valid deflate stream");
        out
    }

    #[test]
    fn round_trips_all_kinds_of_chunks() {
        assert_eq!(round_trip(b"").encoding(), Encoding::Raw);
        assert_eq!(round_trip(b"x").encoding(), Encoding::Raw);
        round_trip(b"tiny chunk");
        let text = compressible_bytes(100_000);
        assert_eq!(round_trip(&text).encoding(), Encoding::Deflate);
        assert_eq!(
            round_trip(&random_bytes(1, 50_000)).encoding(),
            Encoding::Raw
        );
        let full = random_bytes(2, MAX_CHUNK_BYTES);
        assert_eq!(round_trip(&full).encoding(), Encoding::Raw);
        assert_eq!(
            round_trip(&compressible_bytes(MAX_CHUNK_BYTES)).encoding(),
            Encoding::Deflate
        );
    }

    #[test]
    fn raw_chunks_become_stored_blocks_that_straddle_the_block_limit() {
        for len in [65_534, 65_535, 65_536, 131_070, 131_071, MAX_CHUNK_BYTES] {
            let chunk = round_trip(&random_bytes(len as u64, len));
            assert_eq!(chunk.encoding(), Encoding::Raw, "len {len}");
        }
        assert_eq!(stored_deflate_stream(b""), [1, 0, 0, 0xff, 0xff]);
    }

    #[test]
    fn random_data_prefix_skips_full_compression() {
        // Compressible tail, random head: the sample says "incompressible", so Raw is kept.
        let mut plain = random_bytes(3, SAMPLE_BYTES);
        plain.extend_from_slice(&compressible_bytes(60_000));
        assert_eq!(
            encode_chunk(&plain).expect("encode").encoding(),
            Encoding::Raw
        );
    }

    #[test]
    fn oversized_chunks_are_refused() {
        let too_big = vec![0u8; MAX_CHUNK_BYTES + 1];
        assert!(matches!(
            encode_chunk(&too_big),
            Err(BlockError::TooLarge { .. })
        ));
    }

    fn assert_corrupt(result: BlockResult<EncodedChunk>, what: &str) {
        assert!(
            matches!(result, Err(BlockError::Corrupt { .. })),
            "{what}: {result:?}"
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let cases = [
            (
                &b"hello, hello, hello, hello, hello, hello"[..],
                Encoding::Deflate,
            ),
            (b"xyz", Encoding::Raw),
        ];
        for (plain, encoding) in cases {
            let chunk = encode_chunk(plain).expect("encode");
            assert_eq!(chunk.encoding(), encoding);
            let object = chunk.to_object_bytes();
            for bit in 0..object.len() * 8 {
                let mut bad = object.to_vec();
                bad[bit / 8] ^= 1 << (bit % 8);
                let parsed = EncodedChunk::from_object_bytes(chunk.id(), Bytes::from(bad));
                assert_corrupt(parsed, &format!("bit {bit} of {:?}", chunk.encoding()));
            }
        }
    }

    #[test]
    fn truncated_extended_or_misfiled_objects_are_corrupt() {
        let chunk = encode_chunk(&compressible_bytes(5_000)).expect("encode");
        let object = chunk.to_object_bytes();
        for len in [0, 10, OBJECT_HEADER_BYTES, object.len() - 1] {
            assert_corrupt(
                EncodedChunk::from_object_bytes(chunk.id(), object.slice(..len)),
                &format!("truncated to {len}"),
            );
        }
        let mut longer = object.to_vec();
        longer.push(0);
        assert_corrupt(
            EncodedChunk::from_object_bytes(chunk.id(), longer.into()),
            "extended",
        );
        let other = ChunkId::of(b"another chunk");
        assert_corrupt(
            EncodedChunk::from_object_bytes(other, object),
            "stored under the wrong id",
        );
    }

    #[test]
    fn decode_catches_a_payload_consistent_with_its_check_but_wrong() {
        // A chunk built in memory (not through encode_chunk) with a mislabelled id.
        let good = encode_chunk(b"some plaintext").expect("encode");
        let forged = EncodedChunk {
            id: ChunkId::of(b"other plaintext"),
            ..good.clone()
        };
        assert!(matches!(forged.decode(), Err(BlockError::Corrupt { .. })));
        let bad_crc = EncodedChunk {
            crc32: good.crc32() ^ 1,
            ..good
        };
        assert!(matches!(bad_crc.decode(), Err(BlockError::Corrupt { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn arbitrary_bytes_round_trip(plain in prop::collection::vec(any::<u8>(), 0..=MAX_CHUNK_BYTES)) {
            round_trip(&plain);
        }

        #[test]
        fn arbitrary_repetitive_bytes_round_trip(
            unit in prop::collection::vec(any::<u8>(), 1..64),
            repeats in 1usize..2_000,
        ) {
            let plain: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * repeats).collect();
            round_trip(&plain[..plain.len().min(MAX_CHUNK_BYTES)]);
        }
    }
}
