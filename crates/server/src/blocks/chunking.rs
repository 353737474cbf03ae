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
