//! gzip member framing (RFC 1952) around stored chunks, so a `.tar.gz` can be assembled from
//! stored payloads without recompressing: one member per chunk, plus small members for tar
//! headers and padding. gzip readers (GNU gzip, tar, `MultiGzDecoder`) decode concatenated
//! members as one stream.
//!
//! Every byte is fixed (no timestamp, no name, fixed OS), so the same snapshot always yields
//! the same archive — needed for HTTP `Range` resumption and for comparing archives.

use bytes::Bytes;

use super::chunk::{
    deflate_raw_within, stored_block_header, stored_deflate_stream, stored_deflate_stream_len,
    STORED_BLOCK_MAX_BYTES,
};
use super::{EncodedChunk, Encoding};

/// Length of [`member_header`].
pub const MEMBER_HEADER_BYTES: usize = 10;
/// Length of [`member_trailer`].
pub const MEMBER_TRAILER_BYTES: usize = 8;

/// The gzip member header: ID1 ID2, CM=8 (deflate), FLG=0 (no extra fields), MTIME=0,
/// XFL=0, OS=255 (unknown).
pub fn member_header() -> [u8; MEMBER_HEADER_BYTES] {
    MEMBER_HEADER
}

/// [`member_header`] as a static, for pieces that borrow it without copying.
pub static MEMBER_HEADER: [u8; MEMBER_HEADER_BYTES] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// The gzip member trailer: CRC-32 of the plaintext, then ISIZE (plaintext length modulo
/// 2^32), both little-endian.
pub fn member_trailer(crc32: u32, isize: u32) -> [u8; MEMBER_TRAILER_BYTES] {
    let mut out = [0u8; MEMBER_TRAILER_BYTES];
    out[..4].copy_from_slice(&crc32.to_le_bytes());
    out[4..].copy_from_slice(&isize.to_le_bytes());
    out
}

/// A whole, deterministic gzip member holding `plain`: for small data such as tar headers and
/// padding. Fast deflate, or stored blocks when that is not smaller. The output depends only
/// on `plain` and the pinned compressor version (its CPU-specific paths find the same
/// matches), so a resumed download sees the same bytes as long as the server build is the same.
pub fn compress_member(plain: &[u8]) -> Vec<u8> {
    let body = raw_deflate_stream(plain);
    let mut out = Vec::with_capacity(MEMBER_HEADER_BYTES + body.len() + MEMBER_TRAILER_BYTES);
    out.extend_from_slice(&member_header());
    out.extend_from_slice(&body);
    // ISIZE is defined modulo 2^32 (RFC 1952 §2.3.1), hence the truncation.
    out.extend_from_slice(&member_trailer(crc32fast::hash(plain), plain.len() as u32));
    out
}

/// A complete raw deflate stream of `plain`: fast deflate, or stored blocks when that is not
/// smaller, so it is never longer than the stored form. Deterministic as [`compress_member`]
/// is; oplog slices keep their payload in this form.
pub fn raw_deflate_stream(plain: &[u8]) -> Vec<u8> {
    let stored_len = stored_deflate_stream_len(plain.len() as u64);
    usize::try_from(stored_len)
        .ok()
        .and_then(|limit| deflate_raw_within(plain, limit))
        .unwrap_or_else(|| stored_deflate_stream(plain))
}

/// Exact length of the gzip member `chunk` becomes (header + deflate stream + trailer), from
/// its metadata alone, so a restore can announce `Content-Length` and map `Range` offsets
/// without reading payloads.
pub fn chunk_member_len(chunk: &EncodedChunk) -> u64 {
    (MEMBER_HEADER_BYTES + MEMBER_TRAILER_BYTES) as u64 + chunk.deflate_stream_len()
}

/// Exact length of the member a stored chunk becomes, from its recorded sizes alone.
pub fn member_len(raw_len: u32, stored_len: u32, is_deflate: bool) -> u64 {
    let stream = if is_deflate {
        u64::from(stored_len)
    } else {
        super::chunk::stored_deflate_stream_len(u64::from(raw_len))
    };
    (MEMBER_HEADER_BYTES + MEMBER_TRAILER_BYTES) as u64 + stream
}

/// The gzip member of a stored chunk as pieces that share the stored payload instead of
/// copying it: header, deflate stream (the payload itself, or stored-block headers between
/// slices of it), trailer. Their concatenation is `chunk_member_len(chunk)` bytes.
pub fn chunk_member_pieces(chunk: &EncodedChunk) -> Vec<Bytes> {
    let payload = chunk.payload();
    let mut pieces = Vec::with_capacity(3 + 2 * payload.len().div_ceil(STORED_BLOCK_MAX_BYTES));
    pieces.push(Bytes::from_static(&MEMBER_HEADER));
    match chunk.encoding() {
        Encoding::Deflate => pieces.push(payload.clone()),
        Encoding::Raw if payload.is_empty() => {
            pieces.push(Bytes::copy_from_slice(&stored_block_header(0, true)));
        }
        Encoding::Raw => {
            let mut at = 0;
            while at < payload.len() {
                let end = (at + STORED_BLOCK_MAX_BYTES).min(payload.len());
                let header = stored_block_header(end - at, end == payload.len());
                pieces.push(Bytes::copy_from_slice(&header));
                pieces.push(payload.slice(at..end));
                at = end;
            }
        }
    }
    pieces.push(Bytes::copy_from_slice(&member_trailer(
        chunk.crc32(),
        chunk.raw_len(),
    )));
    pieces
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use super::*;
    use crate::blocks::test_data::{compressible_bytes, random_bytes};
    use crate::blocks::{encode_chunk, Encoding};

    /// Chunks of both encodings as a restore would emit them, then a small trailing member;
    /// returns (archive bytes, expected plaintext, sum of announced member lengths).
    fn sample_archive() -> (Vec<u8>, Vec<u8>, u64) {
        let plains = [
            compressible_bytes(40_000),
            random_bytes(7, 70_000),
            b"short".to_vec(),
            compressible_bytes(131_072),
            random_bytes(8, 9_000),
        ];
        let (mut archive, mut expected, mut announced) = (Vec::new(), Vec::new(), 0);
        let mut encodings = Vec::new();
        for plain in &plains {
            let chunk = encode_chunk(plain).expect("encode");
            encodings.push(chunk.encoding());
            announced += chunk_member_len(&chunk);
            archive.extend_from_slice(&member_header());
            archive.extend_from_slice(&chunk.deflate_stream());
            archive.extend_from_slice(&member_trailer(chunk.crc32(), chunk.raw_len()));
            expected.extend_from_slice(plain);
        }
        assert!(encodings.contains(&Encoding::Raw) && encodings.contains(&Encoding::Deflate));
        let tail = [b"tar padding".as_slice(), &[0u8; 1024]].concat();
        let tail_member = compress_member(&tail);
        announced += tail_member.len() as u64;
        archive.extend_from_slice(&tail_member);
        expected.extend_from_slice(&tail);
        (archive, expected, announced)
    }

    #[test]
    fn concatenated_members_decode_as_one_stream() {
        let (archive, expected, announced) = sample_archive();
        assert_eq!(archive.len() as u64, announced);
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(archive.as_slice())
            .read_to_end(&mut decoded)
            .expect("valid multi-member gzip");
        assert_eq!(decoded, expected);
    }

    #[test]
    fn system_gzip_reads_the_members() {
        let (archive, expected, _) = sample_archive();
        let spawned = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("note: gzip is not on PATH; skipping the system gzip check");
                return;
            }
            Err(e) => panic!("cannot start gzip: {e}"),
        };
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&archive));
        let output = child.wait_with_output().expect("gzip runs");
        writer
            .join()
            .expect("writer thread")
            .expect("gzip accepts input");
        assert!(output.status.success(), "gzip failed: {output:?}");
        assert_eq!(output.stdout, expected);
    }

    #[test]
    fn members_are_deterministic() {
        assert_eq!(
            compress_member(b"tar header"),
            compress_member(b"tar header")
        );
        let empty = compress_member(b"");
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(empty.as_slice())
            .read_to_end(&mut decoded)
            .expect("empty member is valid");
        assert!(decoded.is_empty());
        assert_eq!(sample_archive().0, sample_archive().0);
    }
}
