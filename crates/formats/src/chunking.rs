//! Content-defined chunking of database files (FastCDC 2020).
//!
//! Cut points depend only on nearby content, so an in-place write shifts nothing: only the
//! chunks overlapping the write (and the one where the cut points resynchronise) change, and
//! an incremental snapshot stores little more than the changed bytes.
//!
//! Sizes: WiredTiger rewrites pages of a few KiB to tens of KiB in place, so small chunks keep
//! incremental growth close to the bytes that actually changed — restores must stay within 3×
//! growth for scattered 64 KiB writes. Much smaller chunks would cost more per-chunk metadata
//! (id, gzip framing, object count) than they save.

use std::io::{self, Read};

use bytes::Bytes;
use fastcdc::v2020::StreamCDC;

/// No chunk is shorter, except the last of a file (and a whole file smaller than this).
pub const MIN_CHUNK_BYTES: usize = 8 * 1024;
/// Target mean chunk length.
pub const AVG_CHUNK_BYTES: usize = 32 * 1024;
/// No chunk is longer; also the largest chunk the store accepts.
pub const MAX_CHUNK_BYTES: usize = 128 * 1024;

/// Cuts a byte stream into content-defined chunks, one at a time, holding at most
/// [`MAX_CHUNK_BYTES`] of it in memory whatever the file size. An empty stream yields no
/// chunks; one shorter than [`MIN_CHUNK_BYTES`] yields a single chunk. After an error the
/// iterator ends.
///
/// Reading is blocking: from async code, drive it inside `spawn_blocking`.
pub struct FileChunker<R: Read> {
    inner: StreamCDC<RetryInterrupted<R>>,
    failed: bool,
}

impl<R: Read> FileChunker<R> {
    pub fn new(reader: R) -> Self {
        Self {
            inner: StreamCDC::new(
                RetryInterrupted(reader),
                MIN_CHUNK_BYTES as u32,
                AVG_CHUNK_BYTES as u32,
                MAX_CHUNK_BYTES as u32,
            ),
            failed: false,
        }
    }
}

impl<R: Read> Iterator for FileChunker<R> {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.inner.next()? {
            Ok(chunk) => Some(Ok(Bytes::from(chunk.data))),
            Err(e) => {
                self.failed = true;
                Some(Err(io::Error::from(e)))
            }
        }
    }
}

/// Retries reads interrupted by a signal, which `StreamCDC` would report as errors.
struct RetryInterrupted<R>(R);

impl<R: Read> Read for RetryInterrupted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::test_data::random_bytes;
    use crate::ChunkId;

    fn chunks_of(data: &[u8]) -> Vec<Bytes> {
        FileChunker::new(data)
            .collect::<io::Result<Vec<_>>>()
            .expect("reading a slice cannot fail")
    }

    /// A reader that hands out at most a few bytes per call, to exercise buffer refills.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn empty_and_small_files() {
        assert!(chunks_of(b"").is_empty());
        let small = random_bytes(1, MIN_CHUNK_BYTES - 1);
        assert_eq!(chunks_of(&small), vec![Bytes::from(small)]);
    }

    #[test]
    fn cut_points_are_deterministic_bounded_and_reassemble() {
        let data = random_bytes(2, 3 * 1024 * 1024 + 123);
        let chunks = chunks_of(&data);
        assert_eq!(chunks, chunks_of(&data));
        let trickled = FileChunker::new(Trickle(&data, 0))
            .collect::<io::Result<Vec<_>>>()
            .expect("trickle reader");
        assert_eq!(chunks, trickled, "cut points must not depend on read sizes");
        let (last, rest) = chunks.split_last().expect("chunks");
        for chunk in rest {
            assert!((MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&chunk.len()));
        }
        assert!(last.len() <= MAX_CHUNK_BYTES);
        assert_eq!(chunks.concat(), data);
        let mean = data.len() / chunks.len();
        assert!(
            (AVG_CHUNK_BYTES / 2..=AVG_CHUNK_BYTES * 2).contains(&mean),
            "mean {mean}"
        );
    }

    #[test]
    fn read_errors_end_the_stream() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut chunker = FileChunker::new(Broken);
        assert!(matches!(chunker.next(), Some(Err(_))));
        assert!(chunker.next().is_none());
    }

    /// Bytes in chunks of `after` whose ids are not among the chunks of `before`.
    fn new_chunk_bytes(before: &[u8], after: &[u8]) -> usize {
        let known: HashSet<ChunkId> = chunks_of(before).iter().map(|c| ChunkId::of(c)).collect();
        chunks_of(after)
            .iter()
            .filter(|c| !known.contains(&ChunkId::of(c)))
            .map(|c| c.len())
            .sum()
    }

    const FILE_BYTES: usize = 16 * 1024 * 1024;
    const WRITE_BYTES: usize = 64 * 1024;

    /// `before` with a fresh 64 KiB of random bytes written in place at each offset.
    fn overwritten(before: &[u8], offsets: &[usize]) -> Vec<u8> {
        let mut after = before.to_vec();
        for (i, &offset) in offsets.iter().enumerate() {
            let fresh = random_bytes(1_000 + i as u64, WRITE_BYTES);
            after[offset..offset + WRITE_BYTES].copy_from_slice(&fresh);
        }
        after
    }

    #[test]
    fn an_in_place_write_changes_only_nearby_chunks() {
        let before = random_bytes(3, FILE_BYTES);
        let after = overwritten(&before, &[FILE_BYTES / 2]);
        let grown = new_chunk_bytes(&before, &after);
        println!("one write: {grown} new chunk bytes");
        assert!(grown >= WRITE_BYTES);
        assert!(grown <= 3 * WRITE_BYTES, "one write grew {grown} bytes");
    }

    #[test]
    fn scattered_writes_grow_the_store_at_most_threefold() {
        // Single writes range from ~1.1x to ~4x (the chunk a write starts in is, on average,
        // longer than the mean); over many scattered writes the growth averages about 2x.
        const WRITES: usize = 24;
        let before = random_bytes(4, FILE_BYTES);
        let offsets: Vec<usize> = (0..WRITES).map(|k| 1_000 + k * 690_001).collect();
        let grown = new_chunk_bytes(&before, &overwritten(&before, &offsets));
        println!("{WRITES} scattered writes: {grown} new chunk bytes");
        assert!(grown >= WRITES * WRITE_BYTES);
        assert!(
            grown <= 3 * WRITES * WRITE_BYTES,
            "{WRITES} writes grew {grown} bytes"
        );
    }
}
