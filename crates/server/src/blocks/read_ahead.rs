//! Reading a long sequence of chunks and named objects ahead of the one consuming them.
//!
//! A restore archive is a few hundred thousand chunks read in the order they are sent. On
//! an object store every read is a round trip, so reading them one after the other runs at
//! the speed of the latency, not of the store. [`read_ahead`] cuts the sequence into
//! windows (bounded in chunks and in stored bytes), asks the store for several windows at
//! once ([`BlockStore::get_many`], which turns a window into a few ranged reads), and hands
//! the results out strictly in the order asked. At most [`ReadAhead::windows`] windows are
//! requested and not yet consumed, so the memory a reader holds is bounded by
//! `windows × window_bytes` plus the window being consumed, whatever the archive's length.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use tokio_util::task::AbortOnDropHandle;

use super::chunk::MAX_OBJECT_BYTES;
use super::Placement;
use super::{BlockError, BlockResult, BlockStore, ChunkLocation, EncodedChunk, ObjectKey};

/// How far ahead of its consumer a reader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Most chunks in one window (one `get_many` call).
    pub window_chunks: usize,
    /// Most stored bytes of chunks in one window; a window always takes at least one chunk.
    pub window_bytes: u64,
    /// Windows requested ahead of the consumer at most; at least one.
    pub windows: usize,
}

impl ReadAhead {
    /// For a local directory: a window is one blocking task of positioned reads, so
    /// windows are cut by count (the hand-off is the cost), and two of them keep the
    /// disk busy while the previous one is sent.
    pub const LOCAL: ReadAhead = ReadAhead {
        window_chunks: 64,
        window_bytes: 64 * MAX_OBJECT_BYTES as u64,
        windows: 2,
    };

    /// For an object store: a window of 8 MiB (a pack's worth) is usually one ranged GET
    /// (the chunks of a file lie end to end in a pack), and four of them in flight keep as
    /// many bytes requested as four whole-pack GETs would (see "Reading and writing S3
    /// fast" in docs/decisions.md for the measurements behind the sizes).
    pub const REMOTE: ReadAhead = ReadAhead {
        window_chunks: 2048,
        window_bytes: 8 * 1024 * 1024,
        windows: 4,
    };

    /// Stored bytes requested and not yet consumed, at most (a bound, not an estimate).
    pub fn max_bytes_ahead(&self) -> u64 {
        self.windows.max(1) as u64 * self.window_bytes.max(MAX_OBJECT_BYTES as u64)
    }
}

/// One thing a reader wants, in the order it wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A stored chunk, where the index places it.
    Chunk(ChunkLocation),
    /// A named object (an oplog slice), read whole and alone in its window.
    Object(ObjectKey),
}

/// What was read for a [`Wanted`], in the same position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The chunk, verified.
    Chunk(EncodedChunk),
    /// The object's bytes (not verified here: its reader knows its format), or `None` when
    /// it does not exist.
    Object(Option<Bytes>),
}

/// Reads `wanted` from `store`, `policy.windows` windows ahead of the consumer, and yields
/// one result per item in the order asked. The first error is yielded and ends the stream:
/// nothing after a missing or corrupt chunk is read or handed out.
pub fn read_ahead(
    store: Arc<dyn BlockStore>,
    wanted: Vec<Wanted>,
    policy: ReadAhead,
) -> BoxStream<'static, BlockResult<Fetched>> {
    let windows = cut_windows(wanted, &policy);
    stream::iter(windows)
        .map(move |window| {
            // A task of its own, so the read goes on while the consumer is busy elsewhere
            // (an HTTP body is polled only when the socket takes more); aborted when the
            // stream is dropped, so a client gone stops the reads.
            let store = store.clone();
            let task = AbortOnDropHandle::new(tokio::spawn(async move {
                read_window(store.as_ref(), window).await
            }));
            async move {
                task.await.unwrap_or_else(|e| {
                    vec![Err(BlockError::Io(format!(
                        "a read-ahead task failed: {e}"
                    )))]
                })
            }
        })
        .buffered(policy.windows.max(1))
        .flat_map(stream::iter)
        .scan(false, |failed, result| {
            let next = (!*failed).then(|| {
                *failed = result.is_err();
                result
            });
            futures::future::ready(next)
        })
        .boxed()
}

/// A window: chunks read in one call, or one object.
#[derive(Debug)]
enum Window {
    Chunks(Vec<ChunkLocation>),
    Object(ObjectKey),
}

/// Stored bytes a chunk read costs, for cutting windows: a chunk stored alone is counted
/// at the largest size an object can have, since its size is not in the index.
fn stored_bytes(at: &ChunkLocation) -> u64 {
    match at.placement {
        Placement::Packed { len, .. } => u64::from(len),
        Placement::Loose => MAX_OBJECT_BYTES as u64,
    }
}

fn cut_windows(wanted: Vec<Wanted>, policy: &ReadAhead) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut open: Vec<ChunkLocation> = Vec::new();
    let mut open_bytes = 0u64;
    for item in wanted {
        match item {
            Wanted::Object(key) => {
                if !open.is_empty() {
                    windows.push(Window::Chunks(std::mem::take(&mut open)));
                    open_bytes = 0;
                }
                windows.push(Window::Object(key));
            }
            Wanted::Chunk(at) => {
                let bytes = stored_bytes(&at);
                let full = open.len() >= policy.window_chunks.max(1)
                    || open_bytes + bytes > policy.window_bytes;
                if !open.is_empty() && full {
                    windows.push(Window::Chunks(std::mem::take(&mut open)));
                    open_bytes = 0;
                }
                open.push(at);
                open_bytes += bytes;
            }
        }
    }
    if !open.is_empty() {
        windows.push(Window::Chunks(open));
    }
    windows
}

async fn read_window(store: &dyn BlockStore, window: Window) -> Vec<BlockResult<Fetched>> {
    match window {
        Window::Object(key) => vec![store.get_object(&key).await.map(Fetched::Object)],
        Window::Chunks(at) => {
            let read = store.get_many(&at).await;
            if read.len() != at.len() {
                return vec![Err(BlockError::Io(
                    "the store returned fewer chunks than asked".into(),
                ))];
            }
            read.into_iter().map(|r| r.map(Fetched::Chunk)).collect()
        }
    }
}

/// Byte ranges of one pack that cover `entries` (`(offset, len)`, any order, duplicates
/// allowed), merged where they touch or lie at most `gap` bytes apart and the merged range
/// stays within `max_span` bytes: one ranged GET instead of one per chunk, reading at most
/// `gap` unwanted bytes between two wanted ones. Each returned range lists the positions
/// in `entries` it covers.
pub(crate) fn coalesce(
    entries: &[(u64, u32)],
    gap: u64,
    max_span: u64,
) -> Vec<(std::ops::Range<u64>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].0);
    let mut spans: Vec<(std::ops::Range<u64>, Vec<usize>)> = Vec::new();
    for i in order {
        let (offset, len) = entries[i];
        let end = offset.saturating_add(u64::from(len));
        if let Some((span, members)) = spans.last_mut() {
            let joins = offset <= span.end.saturating_add(gap)
                && end.max(span.end) - span.start <= max_span;
            if joins {
                span.end = span.end.max(end);
                members.push(i);
                continue;
            }
        }
        spans.push((offset..end, vec![i]));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::PackId;

    #[test]
    fn adjacent_chunks_of_a_pack_coalesce_into_one_range_within_the_limits() {
        // Out of order, one duplicate, one gap of 10 bytes and one of 1,000.
        let entries = [(100, 50), (0, 100), (160, 40), (0, 100), (1_200, 10)];
        let spans = coalesce(&entries, 16, 10_000);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(spans[0].0, 0..200);
        let mut first = spans[0].1.clone();
        first.sort();
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(spans[1], (1_200..1_210, vec![4]));
        let capped = coalesce(&entries, 16, 150);
        assert_eq!(capped[0].0, 0..150, "a span never grows past max_span");
        assert!(capped.iter().all(|(r, _)| r.end - r.start <= 150));
        let covered: usize = capped.iter().map(|(_, m)| m.len()).sum();
        assert_eq!(covered, entries.len(), "every entry in exactly one span");
    }

    #[test]
    fn windows_are_cut_by_count_by_bytes_and_around_objects() {
        let pack = PackId::of(b"p");
        let chunk = |n: u64| {
            Wanted::Chunk(ChunkLocation {
                id: crate::blocks::ChunkId::of(&n.to_be_bytes()),
                placement: Placement::Packed {
                    pack,
                    offset: n * 1000,
                    len: 1000,
                },
            })
        };
        let object = Wanted::Object(ObjectKey::Manifest { name: "m".into() });
        let mut wanted: Vec<Wanted> = (0..7).map(chunk).collect();
        wanted.insert(3, object);
        let policy = ReadAhead {
            window_chunks: 2,
            window_bytes: 1500,
            windows: 1,
        };
        let sizes: Vec<String> = cut_windows(wanted.clone(), &policy)
            .iter()
            .map(|w| match w {
                Window::Chunks(c) => c.len().to_string(),
                Window::Object(_) => "o".into(),
            })
            .collect();
        assert_eq!(sizes, ["1", "1", "1", "o", "1", "1", "1", "1"]);
        let by_count = ReadAhead {
            window_bytes: u64::MAX,
            ..policy
        };
        let sizes: Vec<usize> = cut_windows(wanted, &by_count)
            .iter()
            .map(|w| match w {
                Window::Chunks(c) => c.len(),
                Window::Object(_) => 0,
            })
            .collect();
        assert_eq!(sizes, [2, 1, 0, 2, 2]);
    }

    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };

    use crate::blocks::store::{pack_of, READS_IN_FLIGHT};
    use crate::blocks::test_data::random_bytes;
    use crate::blocks::{encode_chunk, ObjectBlockStore};

    /// An object store that lets every ranged read take a few milliseconds more and counts
    /// them: how many at once at most, how many bytes in all; from the `fail_from`-th on it
    /// fails them, as a server that went away would.
    #[derive(Debug)]
    struct RangeProbe {
        inner: Arc<dyn ObjectStore>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        reads: AtomicUsize,
        bytes: AtomicU64,
        fail_from: AtomicUsize,
    }

    const PROBE_DELAY: Duration = Duration::from_millis(5);

    impl std::fmt::Display for RangeProbe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "RangeProbe({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for RangeProbe {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        async fn get_range(
            &self,
            location: &Path,
            range: std::ops::Range<u64>,
        ) -> object_store::Result<Bytes> {
            let nth = self.reads.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(PROBE_DELAY).await;
            let read = if nth >= self.fail_from.load(Ordering::SeqCst) {
                Err(object_store::Error::Generic {
                    store: "probe",
                    source: "the server went away".into(),
                })
            } else {
                self.inner.get_range(location, range).await
            };
            if let Ok(bytes) = &read {
                self.bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            read
        }

        async fn delete(&self, location: &Path) -> object_store::Result<()> {
            self.inner.delete(location).await
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.inner.copy(from, to).await
        }

        async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.inner.copy_if_not_exists(from, to).await
        }
    }

    /// `store` with its ranged reads probed.
    fn probed(store: ObjectBlockStore, fail_from: usize) -> (Arc<RangeProbe>, Arc<dyn BlockStore>) {
        let mut probe = None;
        let store = store.map_inner(|inner| {
            let p = Arc::new(RangeProbe {
                inner,
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                reads: AtomicUsize::new(0),
                bytes: AtomicU64::new(0),
                fail_from: AtomicUsize::new(fail_from),
            });
            probe = Some(p.clone());
            p
        });
        (probe.expect("probe installed"), Arc::new(store))
    }

    /// Six packs of eight chunks of 8 KiB, and the sequence a reader wants: every chunk,
    /// visiting the packs out of order, two chunks twice, and a manifest in the middle.
    async fn stored_sequence(store: &dyn BlockStore) -> (Vec<Wanted>, Vec<Fetched>) {
        let manifest = ObjectKey::Manifest {
            name: "read-ahead.json".into(),
        };
        store
            .put_object(&manifest, Bytes::from_static(b"{}"))
            .await
            .expect("put manifest");
        let mut packs = Vec::new();
        for p in 0..6u64 {
            let chunks: Vec<EncodedChunk> = (0..8)
                .map(|c| encode_chunk(&random_bytes(1000 + p * 8 + c, 8 * 1024)).expect("encode"))
                .collect();
            let pack = pack_of(&chunks.iter().collect::<Vec<_>>());
            store.put_pack(&pack).await.expect("put pack");
            packs.push((pack, chunks));
        }
        let mut wanted = Vec::new();
        let mut expected = Vec::new();
        for p in [3, 0, 5, 1, 4, 2] {
            let (pack, chunks) = &packs[p];
            for (at, chunk) in pack.chunks().iter().zip(chunks) {
                wanted.push(Wanted::Chunk(*at));
                expected.push(Fetched::Chunk(chunk.clone()));
            }
            if p == 5 {
                wanted.push(Wanted::Object(manifest.clone()));
                expected.push(Fetched::Object(Some(Bytes::from_static(b"{}"))));
                wanted.push(Wanted::Chunk(pack.chunks()[2]));
                expected.push(Fetched::Chunk(chunks[2].clone()));
            }
        }
        (wanted, expected)
    }

    const SMALL: ReadAhead = ReadAhead {
        window_chunks: 6,
        window_bytes: 32 * 1024,
        windows: 3,
    };

    async fn read_ahead_keeps_order_and_bounds(store: ObjectBlockStore) {
        let (probe, store) = probed(store, usize::MAX);
        let (wanted, expected) = stored_sequence(store.as_ref()).await;
        let window_bytes = 4 * (8 * 1024 + 100);
        let mut fetched = read_ahead(store, wanted, SMALL);
        let first = fetched.next().await.expect("an item").expect("read");
        assert_eq!(first, expected[0]);
        // Left alone, the reader fills its windows and then waits for its consumer.
        tokio::time::sleep(PROBE_DELAY * 20).await;
        let ahead = probe.bytes.load(Ordering::SeqCst);
        assert!(
            ahead > window_bytes as u64,
            "more than the first window is read ahead: {ahead}"
        );
        assert!(
            ahead <= SMALL.max_bytes_ahead() + window_bytes as u64,
            "no more than the read-ahead's bound: {ahead}"
        );
        let mut got = vec![first];
        let mut consumed = 0u64;
        while let Some(item) = fetched.next().await {
            let item = item.expect("read");
            if let Fetched::Chunk(c) = &item {
                consumed += c.to_object_bytes().len() as u64;
            }
            let read = probe.bytes.load(Ordering::SeqCst);
            assert!(
                read <= consumed + SMALL.max_bytes_ahead() + window_bytes as u64,
                "read {read} bytes with only {consumed} consumed"
            );
            got.push(item);
        }
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "every item, in the order asked");
        let most = probe.max_in_flight.load(Ordering::SeqCst);
        assert!(most >= 2, "ranged reads overlap: {most}");
        assert!(
            most <= SMALL.windows * READS_IN_FLIGHT,
            "bounded ranged reads in flight: {most}"
        );
    }

    #[tokio::test]
    async fn read_ahead_keeps_order_and_bounds_requests_and_memory_on_every_remote_backend() {
        let memory = ObjectBlockStore::new(Arc::new(object_store::memory::InMemory::new()));
        read_ahead_keeps_order_and_bounds(memory).await;
        if let Some(store) = crate::blocks::s3::test_store("read_ahead_keeps_order_and_bounds") {
            read_ahead_keeps_order_and_bounds(store).await;
        }
    }

    async fn a_failed_read_ends_the_read_ahead(store: ObjectBlockStore) {
        let (probe, store) = probed(store, 3);
        let (wanted, expected) = stored_sequence(store.as_ref()).await;
        let fetched: Vec<BlockResult<Fetched>> = read_ahead(store.clone(), wanted.clone(), SMALL)
            .collect()
            .await;
        let (last, before) = fetched.split_last().expect("items");
        assert!(matches!(last, Err(BlockError::Store(_))), "{last:?}");
        assert!(before.len() < expected.len(), "nothing after the failure");
        for (got, want) in before.iter().zip(&expected) {
            assert_eq!(got.as_ref().expect("read before the failure"), want);
        }
        let reads = probe.reads.load(Ordering::SeqCst);
        assert!(
            reads < 3 + SMALL.windows * 2 * READS_IN_FLIGHT,
            "the reader stops soon after a failure: {reads} reads"
        );

        // A pack gone: what lies before its first chunk comes out, then that chunk as
        // missing, then nothing.
        let Wanted::Chunk(ChunkLocation {
            placement: Placement::Packed { pack, .. },
            ..
        }) = wanted[10]
        else {
            panic!("a packed chunk");
        };
        store
            .delete_object(&ObjectKey::Pack(pack))
            .await
            .expect("delete");
        let first_of_pack = wanted
            .iter()
            .position(|w| match w {
                Wanted::Chunk(at) => {
                    matches!(at.placement, Placement::Packed { pack: p, .. } if p == pack)
                }
                Wanted::Object(_) => false,
            })
            .expect("a chunk of the pack");
        let Wanted::Chunk(victim) = &wanted[first_of_pack] else {
            panic!("a chunk");
        };
        probe.fail_from.store(usize::MAX, Ordering::SeqCst);
        let fetched: Vec<BlockResult<Fetched>> =
            read_ahead(store, wanted.clone(), SMALL).collect().await;
        assert_eq!(fetched.len(), first_of_pack + 1);
        assert!(
            matches!(&fetched[first_of_pack], Err(BlockError::NotFound(id)) if *id == victim.id),
            "{:?}",
            fetched[first_of_pack]
        );
        for (got, want) in fetched[..first_of_pack].iter().zip(&expected) {
            assert_eq!(got.as_ref().expect("read before the missing pack"), want);
        }
    }

    #[tokio::test]
    async fn a_failed_or_missing_read_ends_the_read_ahead_on_every_remote_backend() {
        let memory = ObjectBlockStore::new(Arc::new(object_store::memory::InMemory::new()));
        a_failed_read_ends_the_read_ahead(memory).await;
        if let Some(store) = crate::blocks::s3::test_store("a_failed_read_ends_the_read_ahead") {
            a_failed_read_ends_the_read_ahead(store).await;
        }
    }
}
