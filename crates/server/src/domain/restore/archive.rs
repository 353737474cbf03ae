//! The restore archive: a standard gzip-compressed POSIX tar assembled from stored chunks
//! without recompressing them.
//!
//! A gzip file may be a sequence of members (RFC 1952 §2.2), and `gzip -d`/`tar xz` read
//! them as one stream. So the archive is: small members holding tar headers and padding
//! (compressed here, a few hundred bytes each), and one member per stored chunk, made of a
//! fixed gzip header, the chunk's stored deflate stream, and its CRC-32 and length. Every
//! member's size is known from the manifest, so the archive's length and the offset of
//! every byte are known before any chunk is read: that gives `Content-Length` and `Range`.
//! The same job always yields the same bytes: headers, order and compression are fixed.
//!
//! A restore to a moment adds `oplog.bson`, the same way: a stored oplog slice is already a
//! whole raw deflate stream with its CRC-32 and length, so a slice that lies entirely inside
//! the cut is sent as one member made of its stored payload. Only the entries of the (at
//! most two) slices the cut ends inside, and of slices small enough that a later push may
//! re-cut them, are copied into an inline member when the plan is built. Which slices are
//! sent whole therefore never changes for a job, and neither do its bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::blocks::{
    gzip, read_ahead, BlockError, BlockStore, ChunkId, ChunkLocation, Fetched, ObjectKey,
    Placement, ReadAhead, Wanted,
};
use crate::domain::snapshots::manifest::{StoredChunkRef, StoredFile, StoredManifest};
use crate::domain::{DomainError, DomainResult};
use crate::model::OplogTs;
use crate::oplog::OplogSlice;

/// Tar's block size.
const TAR_BLOCK: usize = 512;
/// Mode of the directories a manifest implies without recording them, and of
/// `restoreInfo.txt`.
const DIR_MODE: u32 = 0o755;
const INFO_MODE: u32 = 0o644;
/// Name of the metadata file every archive carries.
pub const RESTORE_INFO_FILE: &str = "restoreInfo.txt";
/// Name of the oplog to replay, as `mongodump` names it.
pub const OPLOG_FILE: &str = "oplog.bson";
/// Mode of `oplog.bson` in the archive.
const OPLOG_MODE: u32 = 0o644;

/// A stored oplog slice sent whole, as one gzip member of its stored payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeSlice {
    pub key: ObjectKey,
    /// The object's path, which its check binds.
    pub path: String,
    pub first: OplogTs,
    pub last: OplogTs,
    pub entry_count: u32,
    pub raw_len: u32,
    /// Bytes of the slice's deflate stream (its object minus header and index).
    pub payload_len: u64,
}

/// One piece of an archive's `oplog.bson`, in order.
#[derive(Debug, Clone)]
pub enum OplogPiece {
    /// Entries copied out of a slice, compressed into the archive's own members.
    Entries(Bytes),
    /// A whole stored slice.
    Slice(WholeSlice),
}

impl OplogPiece {
    fn raw_len(&self) -> u64 {
        match self {
            OplogPiece::Entries(bytes) => bytes.len() as u64,
            OplogPiece::Slice(slice) => u64::from(slice.raw_len),
        }
    }
}

/// One piece of the archive.
#[derive(Debug, Clone)]
enum Segment {
    /// A complete gzip member prepared up front (tar headers, padding, small files).
    Inline(Bytes),
    /// A stored chunk, wrapped into a member when sent, and where the index places it
    /// (`None`: not in the index, so the chunk is missing).
    Chunk(StoredChunkRef, Option<Placement>),
    /// A whole oplog slice, wrapped into a member when sent.
    Slice(WholeSlice),
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::Inline(b) => b.len() as u64,
            Segment::Chunk(c, _) => gzip::member_len(c.raw_len(), c.stored_len(), c.is_deflate()),
            Segment::Slice(s) => {
                (gzip::MEMBER_HEADER_BYTES + gzip::MEMBER_TRAILER_BYTES) as u64 + s.payload_len
            }
        }
    }
}

/// The layout of one archive: its segments and where each starts.
#[derive(Debug)]
pub struct ArchivePlan {
    segments: Vec<Segment>,
    /// `starts[i]` is the archive offset of `segments[i]`.
    starts: Vec<u64>,
    total: u64,
}

/// Builds a ustar header, or says why the entry cannot be represented.
pub fn tar_header(
    path: &str,
    size: u64,
    mode: u32,
    mtime: i64,
    is_dir: bool,
) -> Result<[u8; TAR_BLOCK], String> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(path)
        .map_err(|e| format!("{path:?} cannot be stored in a tar header: {e}"))?;
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime.max(0) as u64);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(if is_dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_cksum();
    let mut out = [0u8; TAR_BLOCK];
    out.copy_from_slice(header.as_bytes());
    Ok(out)
}

/// One entry of a part's tree, as the archive lists it.
enum Entry<'a> {
    Dir {
        path: &'a str,
        mode: u32,
        mtime: i64,
    },
    File(&'a StoredFile),
}

/// The directories and files of `manifest` in path order, a directory always before its
/// contents (a path sorts before every path it prefixes). Directories the manifest does not
/// record but its files imply (manifests stored before directories were recorded) get
/// [`DIR_MODE`] and `implied_mtime`, the snapshot's time, rather than 1970.
fn entries(manifest: &StoredManifest, implied_mtime: i64) -> Vec<Entry<'_>> {
    let mut tree: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
    for dir in &manifest.dirs {
        tree.insert(
            &dir.path,
            Entry::Dir {
                path: &dir.path,
                mode: dir.mode,
                mtime: dir.mtime,
            },
        );
    }
    for file in &manifest.files {
        for end in file.path.match_indices('/').map(|(i, _)| i) {
            let dir = &file.path[..end];
            tree.entry(dir).or_insert(Entry::Dir {
                path: dir,
                mode: DIR_MODE,
                mtime: implied_mtime,
            });
        }
        tree.insert(&file.path, Entry::File(file));
    }
    tree.into_values().collect()
}

fn padding(size: u64) -> usize {
    (TAR_BLOCK - (size % TAR_BLOCK as u64) as usize) % TAR_BLOCK
}

/// Accumulates segments, compressing inline bytes into members as chunks interrupt them.
struct PlanBuilder {
    segments: Vec<Segment>,
    pending: Vec<u8>,
}

impl PlanBuilder {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.segments
                .push(Segment::Inline(Bytes::from(gzip::compress_member(
                    &self.pending,
                ))));
            self.pending.clear();
        }
    }

    fn header(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        mtime: i64,
        is_dir: bool,
    ) -> DomainResult<()> {
        let header = tar_header(path, size, mode, mtime, is_dir).map_err(DomainError::Internal)?;
        self.pending.extend_from_slice(&header);
        Ok(())
    }

    /// `oplog.bson`: copied entries join the inline bytes, whole slices get members of
    /// their own.
    fn oplog(&mut self, pieces: &[OplogPiece], mtime: i64) -> DomainResult<()> {
        let size: u64 = pieces.iter().map(OplogPiece::raw_len).sum();
        self.header(OPLOG_FILE, size, OPLOG_MODE, mtime, false)?;
        for piece in pieces {
            match piece {
                OplogPiece::Entries(bytes) => self.pending.extend_from_slice(bytes),
                OplogPiece::Slice(slice) => {
                    self.flush();
                    self.segments.push(Segment::Slice(slice.clone()));
                }
            }
        }
        self.pending.resize(self.pending.len() + padding(size), 0);
        Ok(())
    }
}

impl ArchivePlan {
    /// Lays out the archive of one part: its directories and files in path order (every
    /// directory before what it holds; extractors set a directory's time after writing
    /// into it, as GNU tar and the agent do), then
    /// `oplog.bson` when `oplog` is given, then `restoreInfo.txt`, then tar's two zero
    /// blocks. `placements` says where each chunk is stored (looked up in the index once per
    /// plan); a chunk it lacks is read as missing.
    pub fn build(
        manifest: &StoredManifest,
        placements: &HashMap<ChunkId, Placement>,
        oplog: Option<&[OplogPiece]>,
        restore_info: &str,
        info_mtime: i64,
    ) -> DomainResult<ArchivePlan> {
        let mut b = PlanBuilder {
            segments: Vec::new(),
            pending: Vec::new(),
        };
        for entry in entries(manifest, info_mtime) {
            match entry {
                Entry::Dir { path, mode, mtime } => {
                    b.header(&format!("{path}/"), 0, mode, mtime, true)?;
                }
                Entry::File(file) => {
                    b.header(&file.path, file.size, file.mode, file.mtime, false)?;
                    if !file.chunks.is_empty() {
                        b.flush();
                        b.segments.extend(
                            file.chunks
                                .iter()
                                .map(|c| Segment::Chunk(*c, placements.get(&c.id()).copied())),
                        );
                    }
                    b.pending.resize(b.pending.len() + padding(file.size), 0);
                }
            }
        }
        if let Some(pieces) = oplog {
            b.oplog(pieces, info_mtime)?;
        }
        b.header(
            RESTORE_INFO_FILE,
            restore_info.len() as u64,
            INFO_MODE,
            info_mtime,
            false,
        )?;
        b.pending.extend_from_slice(restore_info.as_bytes());
        b.pending.resize(
            b.pending.len() + padding(restore_info.len() as u64) + 2 * TAR_BLOCK,
            0,
        );
        b.flush();
        let mut starts = Vec::with_capacity(b.segments.len());
        let mut total = 0u64;
        for segment in &b.segments {
            starts.push(total);
            total += segment.len();
        }
        Ok(ArchivePlan {
            segments: b.segments,
            starts,
            total,
        })
    }

    /// Length of the whole archive in bytes.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Streams bytes `start..end` of the archive, reading chunks from `blocks` ahead of the
    /// stream as the store's read-ahead policy says ([`read_ahead`]). Each chunk is verified
    /// on read; a missing or corrupt chunk ends the stream with its error, so a client never
    /// receives a silently wrong archive.
    pub fn stream(
        self: Arc<Self>,
        blocks: Arc<dyn BlockStore>,
        start: u64,
        end: u64,
    ) -> BoxStream<'static, Result<Bytes, BlockError>> {
        let policy = blocks.read_ahead_policy();
        self.stream_with(blocks, policy, start, end)
    }

    fn stream_with(
        self: Arc<Self>,
        blocks: Arc<dyn BlockStore>,
        policy: ReadAhead,
        start: u64,
        end: u64,
    ) -> BoxStream<'static, Result<Bytes, BlockError>> {
        let end = end.min(self.total);
        if start >= end {
            return stream::empty().boxed();
        }
        let first = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let last = self.starts.partition_point(|&s| s < end);
        // Nothing past a chunk the index does not place is read: the stream ends there.
        let wanted: Vec<Wanted> = self.segments[first..last]
            .iter()
            .take_while(|s| !matches!(s, Segment::Chunk(_, None)))
            .filter_map(|s| match s {
                Segment::Chunk(c, Some(placement)) => Some(Wanted::Chunk(ChunkLocation {
                    id: c.id(),
                    placement: *placement,
                })),
                Segment::Slice(slice) => Some(Wanted::Object(slice.key.clone())),
                _ => None,
            })
            .collect();
        let cursor = Cursor {
            fetched: read_ahead(blocks, wanted, policy),
            plan: self,
            next: first,
            last,
            start,
            end,
        };
        stream::unfold(Some(cursor), |cursor| async move {
            let mut cursor = cursor?;
            if cursor.next >= cursor.last {
                return None;
            }
            match cursor.next_pieces().await {
                Ok(pieces) => Some((Ok(pieces), Some(cursor))),
                Err(err) => Some((Err(err), None)),
            }
        })
        .map_ok(|pieces| stream::iter(pieces.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }
}

/// Where a stream of an archive's bytes is: the next segment and what was read ahead.
struct Cursor {
    plan: Arc<ArchivePlan>,
    fetched: BoxStream<'static, Result<Fetched, BlockError>>,
    next: usize,
    last: usize,
    start: u64,
    end: u64,
}

impl Cursor {
    /// The next segment's bytes, clipped to `start..end`, as pieces (a chunk's member
    /// shares its stored payload).
    async fn next_pieces(&mut self) -> Result<Vec<Bytes>, BlockError> {
        let i = self.next;
        self.next += 1;
        let plan = self.plan.clone();
        let segment = &plan.segments[i];
        let pieces = match segment {
            Segment::Inline(bytes) => vec![bytes.clone()],
            Segment::Chunk(chunk, None) => return Err(BlockError::NotFound(chunk.id())),
            Segment::Chunk(chunk, Some(_)) => {
                let Fetched::Chunk(stored) = self.next_fetched().await? else {
                    return Err(out_of_step());
                };
                if gzip::chunk_member_len(&stored) != segment.len() {
                    return Err(BlockError::Corrupt {
                        id: chunk.id(),
                        reason: "stored size differs from the manifest".into(),
                    });
                }
                gzip::chunk_member_pieces(&stored)
            }
            Segment::Slice(slice) => {
                let Fetched::Object(bytes) = self.next_fetched().await? else {
                    return Err(out_of_step());
                };
                slice_member_pieces(slice, bytes)?
            }
        };
        let seg_start = plan.starts[i];
        let from = self.start.saturating_sub(seg_start);
        let to = (self.end - seg_start).min(segment.len());
        Ok(slice_pieces(pieces, from, to))
    }

    async fn next_fetched(&mut self) -> Result<Fetched, BlockError> {
        self.fetched
            .next()
            .await
            .unwrap_or_else(|| Err(BlockError::Io("the read-ahead ended early".into())))
    }
}

fn out_of_step() -> BlockError {
    BlockError::Io("the read-ahead is out of step with the archive plan".into())
}

/// A whole oplog slice as a gzip member: the fixed header, the stored deflate stream, and
/// the CRC-32 and length its object records (its check verified, so no inflating).
fn slice_member_pieces(slice: &WholeSlice, bytes: Option<Bytes>) -> Result<Vec<Bytes>, BlockError> {
    let bad = |reason: String| BlockError::BadObject {
        path: slice.path.clone(),
        reason,
    };
    let bytes = bytes.ok_or_else(|| bad("the object is missing".into()))?;
    let stored = OplogSlice::from_object_bytes(&slice.path, bytes).map_err(|e| bad(e.0))?;
    let agrees = stored.first() == slice.first
        && stored.last() == slice.last
        && stored.entry_count() == slice.entry_count
        && stored.raw_len() == slice.raw_len
        && stored.deflate_stream().len() as u64 == slice.payload_len;
    if !agrees {
        return Err(bad("the object disagrees with the archive plan".into()));
    }
    Ok(vec![
        Bytes::from_static(&gzip::MEMBER_HEADER),
        stored.deflate_stream().clone(),
        Bytes::copy_from_slice(&gzip::member_trailer(stored.crc32(), stored.raw_len())),
    ])
}

/// The bytes `from..to` of the concatenation of `pieces`, as sub-slices (no copy).
fn slice_pieces(pieces: Vec<Bytes>, from: u64, to: u64) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut at = 0u64;
    for piece in pieces {
        let (start, end) = (at, at + piece.len() as u64);
        at = end;
        if end <= from || start >= to {
            continue;
        }
        let lo = from.saturating_sub(start) as usize;
        let hi = (to.min(end) - start) as usize;
        out.push(piece.slice(lo..hi));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::blocks::{encode_chunk, ObjectBlockStore, PackBuilder};
    use crate::domain::snapshots::manifest::{StoredChunkRef, StoredDir};

    /// Stores `content` as one pack of 40,000-byte chunks, noting where each chunk lies.
    async fn store_file(
        blocks: &dyn BlockStore,
        placements: &mut HashMap<ChunkId, Placement>,
        path: &str,
        content: &[u8],
    ) -> StoredFile {
        let mut chunks = Vec::new();
        let mut pack = PackBuilder::default();
        for piece in content.chunks(40_000) {
            let chunk = encode_chunk(piece).unwrap();
            pack.push(&chunk);
            let is_deflate = chunk.encoding() == crate::blocks::Encoding::Deflate;
            chunks.push(StoredChunkRef(
                chunk.id(),
                chunk.raw_len(),
                chunk.payload().len() as u32,
                is_deflate,
            ));
        }
        if !pack.is_empty() {
            let pack = pack.finish();
            blocks.put_pack(&pack).await.unwrap();
            placements.extend(pack.chunks().iter().map(|at| (at.id, at.placement)));
        }
        StoredFile {
            path: path.into(),
            size: content.len() as u64,
            mode: 0o600,
            mtime: 1_700_000_000,
            chunks,
        }
    }

    async fn collect(
        plan: Arc<ArchivePlan>,
        blocks: Arc<dyn BlockStore>,
        start: u64,
        end: u64,
    ) -> Vec<u8> {
        let pieces: Vec<Bytes> = plan.stream(blocks, start, end).try_collect().await.unwrap();
        pieces.concat()
    }

    #[tokio::test]
    async fn an_archive_extracts_to_the_files_and_ranges_tile_it() {
        let blocks: Arc<dyn BlockStore> = Arc::new(ObjectBlockStore::new(Arc::new(
            object_store::memory::InMemory::new(),
        )));
        let random: Vec<u8> = (0..150_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let text = b"{\"_id\": 1, \"name\": \"x\"} ".repeat(5000);
        let mut placements = HashMap::new();
        let manifest = StoredManifest {
            dirs: vec![],
            files: vec![
                store_file(
                    blocks.as_ref(),
                    &mut placements,
                    "collection-0-1.wt",
                    &random,
                )
                .await,
                store_file(
                    blocks.as_ref(),
                    &mut placements,
                    "journal/WiredTigerLog.0000000001",
                    &text,
                )
                .await,
                store_file(blocks.as_ref(), &mut placements, "mongod.lock", b"").await,
            ],
        };
        let plan = Arc::new(
            ArchivePlan::build(&manifest, &placements, None, "Restore Info\n", 0).unwrap(),
        );
        let whole = collect(plan.clone(), blocks.clone(), 0, plan.len()).await;
        assert_eq!(whole.len() as u64, plan.len());
        let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&whole[..]));
        let mut seen = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            seen.push((path, body));
        }
        let find = |p: &str| {
            seen.iter()
                .find(|(path, _)| path == p)
                .map(|(_, b)| b.clone())
        };
        assert_eq!(find("collection-0-1.wt").unwrap(), random);
        assert_eq!(find("journal/WiredTigerLog.0000000001").unwrap(), text);
        assert_eq!(find("mongod.lock").unwrap(), b"");
        assert_eq!(find(RESTORE_INFO_FILE).unwrap(), b"Restore Info\n");
        assert!(
            find("journal/").is_some(),
            "directories get their own entries"
        );
        for cut in [1, 10, 17, 9999, plan.len() / 2, plan.len() - 1] {
            let mut joined = collect(plan.clone(), blocks.clone(), 0, cut).await;
            joined.extend(collect(plan.clone(), blocks.clone(), cut, plan.len()).await);
            assert_eq!(joined, whole, "ranges split at {cut}");
        }
        let again = Arc::new(
            ArchivePlan::build(&manifest, &placements, None, "Restore Info\n", 0).unwrap(),
        );
        assert_eq!(
            collect(again.clone(), blocks, 0, again.len()).await,
            whole,
            "deterministic"
        );
    }

    #[tokio::test]
    async fn a_chunk_the_index_does_not_place_ends_the_stream_as_missing() {
        let blocks: Arc<dyn BlockStore> = Arc::new(ObjectBlockStore::new(Arc::new(
            object_store::memory::InMemory::new(),
        )));
        let mut placements = HashMap::new();
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let file = store_file(blocks.as_ref(), &mut placements, "a.wt", &content).await;
        let unplaced = file.chunks[1].id();
        placements.remove(&unplaced);
        let manifest = StoredManifest {
            dirs: vec![],
            files: vec![file],
        };
        let plan = Arc::new(ArchivePlan::build(&manifest, &placements, None, "info", 0).unwrap());
        let end = plan.len();
        let read: Result<Vec<Bytes>, BlockError> = plan.stream(blocks, 0, end).try_collect().await;
        assert!(matches!(read, Err(BlockError::NotFound(id)) if id == unplaced));
    }

    #[tokio::test]
    async fn recorded_directories_come_with_their_mode_and_time_before_their_contents() {
        let blocks: Arc<dyn BlockStore> = Arc::new(ObjectBlockStore::new(Arc::new(
            object_store::memory::InMemory::new(),
        )));
        let mut placements = HashMap::new();
        let dir = |path: &str, mode, mtime| StoredDir {
            path: path.into(),
            mode,
            mtime,
        };
        let manifest = StoredManifest {
            dirs: vec![
                dir("diagnostic.data", 0o700, 1_600_000_001),
                dir("db", 0o750, 1_600_000_002),
                dir("db/nested/deeper", 0o755, 1_600_000_003),
            ],
            files: vec![
                store_file(blocks.as_ref(), &mut placements, "db/a-b.wt", b"x").await,
                store_file(blocks.as_ref(), &mut placements, "db/nested/f.wt", b"yz").await,
            ],
        };
        let plan = Arc::new(
            ArchivePlan::build(&manifest, &placements, None, "info", 1_700_000_009).unwrap(),
        );
        let whole = collect(plan.clone(), blocks, 0, plan.len()).await;
        let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(&whole[..]));
        let listed: Vec<(String, bool, u32, u64)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type().is_dir(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let expected = [
            ("db/", true, 0o750, 1_600_000_002),
            ("db/a-b.wt", false, 0o600, 1_700_000_000),
            ("db/nested/", true, DIR_MODE, 1_700_000_009),
            ("db/nested/deeper/", true, 0o755, 1_600_000_003),
            ("db/nested/f.wt", false, 0o600, 1_700_000_000),
            ("diagnostic.data/", true, 0o700, 1_600_000_001),
            (RESTORE_INFO_FILE, false, INFO_MODE, 1_700_000_009),
        ];
        let expected: Vec<(String, bool, u32, u64)> = expected
            .iter()
            .map(|(p, d, m, t)| (p.to_string(), *d, *m, *t))
            .collect();
        assert_eq!(
            listed, expected,
            "an implied directory takes the snapshot's time"
        );
    }

    /// With a read-ahead of small windows, many in flight, the archive's bytes are the
    /// same; a chunk found damaged mid-archive ends the stream with its error after exactly
    /// the bytes before it, never with a complete-looking archive.
    #[tokio::test]
    async fn a_small_read_ahead_streams_the_same_bytes_and_a_damaged_chunk_ends_it() {
        let inner = Arc::new(object_store::memory::InMemory::new());
        let blocks: Arc<dyn BlockStore> = Arc::new(ObjectBlockStore::new(inner.clone()));
        let mut placements = HashMap::new();
        let mut files = Vec::new();
        for n in 0..4u32 {
            let content: Vec<u8> = (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761 + n) >> 11) as u8)
                .collect();
            files.push(
                store_file(
                    blocks.as_ref(),
                    &mut placements,
                    &format!("f{n}.wt"),
                    &content,
                )
                .await,
            );
        }
        let manifest = StoredManifest {
            dirs: Vec::new(),
            files,
        };
        let plan = Arc::new(ArchivePlan::build(&manifest, &placements, None, "info", 0).unwrap());
        let whole = collect(plan.clone(), blocks.clone(), 0, plan.len()).await;
        let small = ReadAhead {
            window_chunks: 2,
            window_bytes: 50_000,
            windows: 5,
        };
        let read = |plan: Arc<ArchivePlan>| {
            let end = plan.len();
            plan.stream_with(blocks.clone(), small, 0, end)
                .collect::<Vec<Result<Bytes, BlockError>>>()
        };
        let pieces: Vec<Bytes> = read(plan.clone())
            .await
            .into_iter()
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(pieces.concat(), whole);

        let victim = manifest.files[2].chunks[1].id();
        let Some(Placement::Packed { pack, offset, .. }) = placements.get(&victim).copied() else {
            panic!("packed");
        };
        let path = crate::blocks::ObjectKey::Pack(pack).path().unwrap();
        let mut bytes = object_store::ObjectStore::get(inner.as_ref(), &path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[offset as usize + 100] ^= 1;
        object_store::ObjectStore::put(inner.as_ref(), &path, Bytes::from(bytes).into())
            .await
            .unwrap();
        let read = read(plan.clone()).await;
        let (last, before) = read.split_last().unwrap();
        assert!(
            matches!(last, Err(BlockError::Corrupt { id, .. }) if *id == victim),
            "{last:?}"
        );
        let sent: Vec<u8> = before
            .iter()
            .map(|p| p.as_ref().unwrap().clone())
            .collect::<Vec<_>>()
            .concat();
        let victim_at = plan
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Chunk(c, _) if c.id() == victim))
            .unwrap();
        assert_eq!(
            sent.len() as u64,
            plan.starts[victim_at],
            "every byte before it, none after"
        );
        assert_eq!(sent[..], whole[..sent.len()]);
    }

    #[test]
    fn slicing_pieces_keeps_exactly_the_requested_bytes() {
        let pieces = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b""),
            Bytes::from_static(b"defg"),
        ];
        let cut = |a, b| slice_pieces(pieces.clone(), a, b).concat();
        assert_eq!(cut(0, 7), b"abcdefg");
        assert_eq!(cut(2, 5), b"cde");
        assert_eq!(cut(3, 3), b"");
        assert_eq!(cut(6, 7), b"g");
    }
}
