//! The body of a chunk upload (`POST …/chunks`): frames back to back, each
//! `id (32 bytes) | length (u32, big-endian) | the chunk's plaintext`.
//!
//! The id is the client's claim ([`ChunkId`]): the server hashes every chunk before storing
//! it. A length is never zero and never above [`MAX_CHUNK_BYTES`], the chunker's largest
//! output.

use bytes::Bytes;

use crate::{ChunkId, MAX_CHUNK_BYTES};

/// Bytes of a frame header: the 32-byte id plus the 4-byte big-endian length.
pub const FRAME_HEADER_BYTES: usize = 36;

/// Why an upload body, or a chunk offered for one, is refused. The texts complete the
/// server's "Malformed chunk upload: …" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body ends inside a frame header.
    #[error("truncated frame header")]
    TruncatedHeader,
    /// A frame's length is zero or above [`MAX_CHUNK_BYTES`].
    #[error("a chunk length is zero or above the maximum")]
    BadLength,
    /// The body ends before the bytes its last header announces.
    #[error("truncated chunk")]
    TruncatedChunk,
}

/// Appends one frame holding `chunk` under `id` to `out`.
///
/// Refuses (appending nothing) a chunk the server would refuse: empty, or longer than
/// [`MAX_CHUNK_BYTES`].
pub fn encode_frame(out: &mut Vec<u8>, id: &ChunkId, chunk: &[u8]) -> Result<(), FrameError> {
    let len = frame_len(chunk.len()).ok_or(FrameError::BadLength)?;
    out.reserve(FRAME_HEADER_BYTES + chunk.len());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(chunk);
    Ok(())
}

/// Splits an upload body into its `(id, bytes)` frames, in body order; the bytes are
/// slices of `body`, not copies. An empty body holds no frames. The first malformed frame
/// refuses the whole body.
pub fn split_frames(body: &Bytes) -> Result<Vec<(ChunkId, Bytes)>, FrameError> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let header = body
            .get(at..at + FRAME_HEADER_BYTES)
            .ok_or(FrameError::TruncatedHeader)?;
        let (id, len) = header.split_at(32);
        let mut id_bytes = [0u8; 32];
        id_bytes.copy_from_slice(id);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        frame_len(len).ok_or(FrameError::BadLength)?;
        let start = at + FRAME_HEADER_BYTES;
        if body.len() - start < len {
            return Err(FrameError::TruncatedChunk);
        }
        frames.push((
            ChunkId::from_bytes(id_bytes),
            body.slice(start..start + len),
        ));
        at = start + len;
    }
    Ok(frames)
}

/// `len` as a frame's length field, when a frame may hold that many bytes.
fn frame_len(len: usize) -> Option<u32> {
    if (1..=MAX_CHUNK_BYTES).contains(&len) {
        u32::try_from(len).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_refuse_truncation() {
        let mut body = Vec::new();
        body.extend_from_slice(&[7u8; 32]);
        body.extend_from_slice(&3u32.to_be_bytes());
        body.extend_from_slice(b"abc");
        let frames = split_frames(&Bytes::from(body.clone())).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0].1[..], b"abc");
        body.pop();
        assert!(split_frames(&Bytes::from(body)).is_err());
    }

    #[test]
    fn encoded_frames_split_back_into_their_chunks() {
        let chunks: [&[u8]; 3] = [b"first", &[0u8; MAX_CHUNK_BYTES], b"x"];
        let mut body = Vec::new();
        for chunk in chunks {
            encode_frame(&mut body, &ChunkId::of(chunk), chunk).expect("a valid chunk");
        }
        let total: usize = chunks.iter().map(|c| FRAME_HEADER_BYTES + c.len()).sum();
        assert_eq!(body.len(), total);
        assert_eq!(&body[..32], ChunkId::of(b"first").as_bytes());
        assert_eq!(&body[32..36], &5u32.to_be_bytes());
        let frames = split_frames(&Bytes::from(body)).expect("valid body");
        let expected: Vec<(ChunkId, Bytes)> = chunks
            .iter()
            .map(|c| (ChunkId::of(c), Bytes::copy_from_slice(c)))
            .collect();
        assert_eq!(frames, expected);
        assert_eq!(split_frames(&Bytes::new()), Ok(vec![]));
    }

    #[test]
    fn chunks_no_frame_may_hold_are_not_encoded() {
        let mut body = Vec::new();
        let id = ChunkId::of(b"");
        assert_eq!(
            encode_frame(&mut body, &id, b""),
            Err(FrameError::BadLength)
        );
        let too_long = vec![1u8; MAX_CHUNK_BYTES + 1];
        assert_eq!(
            encode_frame(&mut body, &id, &too_long),
            Err(FrameError::BadLength)
        );
        assert!(body.is_empty());
    }

    /// A header for `len` bytes, followed by `have` of them.
    fn frame(len: u32, have: usize) -> Vec<u8> {
        let mut body = vec![9u8; 32];
        body.extend_from_slice(&len.to_be_bytes());
        body.resize(FRAME_HEADER_BYTES + have, 1);
        body
    }

    #[test]
    fn each_malformed_frame_is_refused_for_its_own_reason() {
        let split = |body: Vec<u8>| split_frames(&Bytes::from(body));
        let mut short_header = frame(3, 3);
        short_header.extend_from_slice(&[0u8; FRAME_HEADER_BYTES - 1]);
        assert_eq!(split(short_header), Err(FrameError::TruncatedHeader));
        assert_eq!(split(frame(0, 0)), Err(FrameError::BadLength));
        let over = MAX_CHUNK_BYTES as u32 + 1;
        assert_eq!(
            split(frame(over, over as usize)),
            Err(FrameError::BadLength)
        );
        assert_eq!(split(frame(u32::MAX, 0)), Err(FrameError::BadLength));
        assert_eq!(split(frame(10, 9)), Err(FrameError::TruncatedChunk));
        assert_eq!(split(frame(10, 10)).map(|f| f.len()), Ok(1));
    }
}
