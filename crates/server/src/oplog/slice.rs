//! One oplog slice: a bounded run of consecutive entries of one replica set, stored as one
//! object.
//!
//! # Object byte format (version 1)
//!
//! All integers are big-endian. The header is [`SLICE_HEADER_BYTES`] (76) bytes:
//!
//! | offset | size | field                                                      |
//! |-------:|-----:|------------------------------------------------------------|
//! | 0      | 4    | magic `b"RWOS"`                                            |
//! | 4      | 1    | format version, `1`                                        |
//! | 5      | 3    | reserved, zero                                             |
//! | 8      | 8    | first entry's ts: seconds, then increment (u32 each)       |
//! | 16     | 8    | last entry's ts                                            |
//! | 24     | 4    | `entry_count`                                              |
//! | 28     | 4    | `raw_len`: bytes of the entries, uncompressed              |
//! | 32     | 4    | `crc32`: CRC-32 (gzip polynomial) of those bytes           |
//! | 36     | 4    | `index_points`: `ceil(entry_count / INDEX_INTERVAL)`       |
//! | 40     | 4    | `payload_len`                                              |
//! | 44     | 32   | `check` = BLAKE3(object path ‖ bytes 0..44 ‖ index ‖ payload) |
//! | 76     | 12 n | index: ts (8) and byte offset (4) of every `INDEX_INTERVAL`th entry, from the first |
//! | …      | …    | payload: one complete raw deflate stream of the entries    |
//!
//! The entries are the pushed BSON documents, byte for byte, concatenated: inflated, a slice
//! is a piece of an `oplog.bson` file. Because the payload is a whole deflate stream and the
//! header carries its CRC-32 and length, a restore emits a whole slice as one gzip member
//! (`gzip::member_header` + payload + `gzip::member_trailer`) without recompressing it; the
//! index lets it find the entry to cut a slice at while inflating only up to there.
//!
//! `check` binds every header field, the index and the payload to the path the object is
//! stored under, so a flipped bit or a misfiled object is caught on every read without
//! inflating. [`OplogSlice::decode`] then proves the rest: the stream inflates to exactly
//! `raw_len` bytes with that CRC-32, the entries walk back to `entry_count` documents with
//! strictly increasing timestamps from `first` to `last`, and the index points at them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use rewind_formats::oplog::entry::{declared_len, entry_ts, EntryMark, MAX_ENTRY_BYTES};

use crate::blocks::gzip::raw_deflate_stream;
use crate::blocks::ObjectKey;
use crate::ids::OplogSliceId;
use crate::model::{OplogStream, OplogTs};

/// Magic bytes opening every slice object.
pub const SLICE_MAGIC: [u8; 4] = *b"RWOS";
/// The only slice format version this code writes and reads.
pub const SLICE_VERSION: u8 = 1;
/// Length of the fixed header before the index.
pub const SLICE_HEADER_BYTES: usize = 76;
/// Bytes of one index point.
const INDEX_POINT_BYTES: usize = 12;
/// Every this many entries the index records one entry's ts and offset.
pub const INDEX_INTERVAL: usize = 256;
/// Slices are cut to at most this many bytes of entries (a single larger entry makes a slice
/// of its own). A few MiB keeps a restore's cut, and a re-push's comparison, cheap while a
/// day of a busy replica set stays a few hundred objects.
pub const SLICE_TARGET_BYTES: usize = 4 * 1024 * 1024;
/// Largest slice plaintext: a full slice, or one entry of the largest size.
pub const MAX_SLICE_RAW_BYTES: usize = if MAX_ENTRY_BYTES > SLICE_TARGET_BYTES {
    MAX_ENTRY_BYTES
} else {
    SLICE_TARGET_BYTES
};
/// A replica set's last slice holding fewer bytes than this is cut again together with the
/// entries that continue it, so an agent shipping small batches does not leave one tiny
/// object per batch. Re-cutting costs at most this many bytes of recompression per push.
/// A restore sends a slice at least this large as stored, since no later push re-cuts it.
pub const MERGE_SLICES_BELOW_BYTES: u64 = 1024 * 1024;

/// A slice object failed verification; it must not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("oplog slice is corrupt: {0}")]
pub struct SliceCorrupt(pub String);

fn corrupt(reason: impl Into<String>) -> SliceCorrupt {
    SliceCorrupt(reason.into())
}

/// One index point: an entry's timestamp and where it starts in the plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPoint {
    pub ts: OplogTs,
    pub offset: u32,
}

/// Bytes of the deflate stream of a slice object of `object_len` bytes holding
/// `entry_count` entries (the object minus its header and index), or `None` if no slice
/// object has that shape.
pub fn payload_len_of(object_len: u64, entry_count: u64) -> Option<u64> {
    let index = entry_count.div_ceil(INDEX_INTERVAL as u64) * INDEX_POINT_BYTES as u64;
    object_len.checked_sub(SLICE_HEADER_BYTES as u64 + index)
}

/// The key of a slice's object. The object path is one of the fields `check` binds.
pub fn slice_key(stream: &OplogStream, id: OplogSliceId) -> ObjectKey {
    ObjectKey::OplogSlice {
        cluster: stream.cluster,
        replica_set: stream.replica_set.clone(),
        slice: id,
    }
}

/// A slice ready to store, or read back and verified. Built only by [`OplogSlice::encode`]
/// or [`OplogSlice::from_object_bytes`], so its fields agree with its payload's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogSlice {
    first: OplogTs,
    last: OplogTs,
    entry_count: u32,
    raw_len: u32,
    crc32: u32,
    index: Vec<IndexPoint>,
    payload: Bytes,
}

/// The entries of a decoded slice: the plaintext and where each entry lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEntries {
    pub plain: Bytes,
    pub marks: Vec<EntryMark>,
}

impl SliceEntries {
    /// The bytes of one entry.
    pub fn bytes_of(&self, mark: &EntryMark) -> &[u8] {
        &self.plain[mark.range()]
    }
}

fn put_ts(out: &mut BytesMut, ts: OplogTs) {
    out.put_u32(ts.secs);
    out.put_u32(ts.inc);
}

fn get_ts(buf: &mut &[u8]) -> OplogTs {
    let secs = buf.get_u32();
    OplogTs {
        secs,
        inc: buf.get_u32(),
    }
}

impl OplogSlice {
    /// Encodes the entries `marks` of `buffer`: consecutive, non-empty, strictly increasing,
    /// together at most [`MAX_SLICE_RAW_BYTES`] (callers cut runs with [`cut_runs`]).
    pub fn encode(buffer: &[u8], marks: &[EntryMark]) -> OplogSlice {
        let (Some(first), Some(last)) = (marks.first(), marks.last()) else {
            panic!("a slice holds at least one entry");
        };
        debug_assert!(marks
            .windows(2)
            .all(|w| w[0].end() == w[1].offset && w[0].ts < w[1].ts));
        let plain = &buffer[first.offset..last.end()];
        debug_assert!(plain.len() <= MAX_SLICE_RAW_BYTES);
        let index = marks
            .iter()
            .step_by(INDEX_INTERVAL)
            .map(|m| IndexPoint {
                ts: m.ts,
                offset: (m.offset - first.offset) as u32,
            })
            .collect();
        OplogSlice {
            first: first.ts,
            last: last.ts,
            entry_count: marks.len() as u32,
            raw_len: plain.len() as u32,
            crc32: crc32fast::hash(plain),
            index,
            payload: Bytes::from(raw_deflate_stream(plain)),
        }
    }

    pub fn first(&self) -> OplogTs {
        self.first
    }

    pub fn last(&self) -> OplogTs {
        self.last
    }

    pub fn entry_count(&self) -> u32 {
        self.entry_count
    }

    /// Bytes of the entries, uncompressed.
    pub fn raw_len(&self) -> u32 {
        self.raw_len
    }

    /// CRC-32 of the entries, as a gzip member trailer wants it.
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The complete raw deflate stream of the entries: the body of the slice's gzip member.
    pub fn deflate_stream(&self) -> &Bytes {
        &self.payload
    }

    pub fn index(&self) -> &[IndexPoint] {
        &self.index
    }

    /// Bytes of the stored object.
    pub fn object_len(&self) -> usize {
        SLICE_HEADER_BYTES + self.index.len() * INDEX_POINT_BYTES + self.payload.len()
    }

    fn header_fields(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(SLICE_HEADER_BYTES);
        out.put_slice(&SLICE_MAGIC);
        out.put_u8(SLICE_VERSION);
        out.put_slice(&[0; 3]);
        put_ts(&mut out, self.first);
        put_ts(&mut out, self.last);
        out.put_u32(self.entry_count);
        out.put_u32(self.raw_len);
        out.put_u32(self.crc32);
        out.put_u32(self.index.len() as u32);
        out.put_u32(self.payload.len() as u32);
        out
    }

    fn index_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.index.len() * INDEX_POINT_BYTES);
        for point in &self.index {
            put_ts(&mut out, point.ts);
            out.put_u32(point.offset);
        }
        out
    }

    /// The object bytes to store under `path` (format in the module docs).
    pub fn to_object_bytes(&self, path: &str) -> Bytes {
        let header = self.header_fields();
        let index = self.index_bytes();
        let check = slice_check(path, &header, &index, &self.payload);
        let mut out = BytesMut::with_capacity(self.object_len());
        out.put_slice(&header);
        out.put_slice(&check);
        out.put_slice(&index);
        out.put_slice(&self.payload);
        out.freeze()
    }

    /// Parses and verifies an object stored under `path`: magic, version, reserved bytes,
    /// lengths, bounds and `check`. The payload is not inflated (see [`Self::decode`]).
    pub fn from_object_bytes(path: &str, bytes: Bytes) -> Result<OplogSlice, SliceCorrupt> {
        if bytes.len() < SLICE_HEADER_BYTES {
            return Err(corrupt("object shorter than its header"));
        }
        let mut header = &bytes[..SLICE_HEADER_BYTES];
        if header[..4] != SLICE_MAGIC {
            return Err(corrupt("bad magic"));
        }
        header.advance(4);
        if header.get_u8() != SLICE_VERSION {
            return Err(corrupt("unknown format version"));
        }
        if header[..3] != [0; 3] {
            return Err(corrupt("reserved bytes are not zero"));
        }
        header.advance(3);
        let first = get_ts(&mut header);
        let last = get_ts(&mut header);
        let entry_count = header.get_u32();
        let raw_len = header.get_u32();
        let crc32 = header.get_u32();
        let index_points = header.get_u32() as usize;
        let payload_len = header.get_u32() as usize;
        let check = &header[..32];
        let index_len = index_points
            .checked_mul(INDEX_POINT_BYTES)
            .ok_or_else(|| corrupt("index too long"))?;
        if SLICE_HEADER_BYTES + index_len + payload_len != bytes.len() {
            return Err(corrupt(
                "index and payload lengths do not match the object length",
            ));
        }
        let index_start = SLICE_HEADER_BYTES;
        let payload_start = index_start + index_len;
        let computed = slice_check(
            path,
            &bytes[..44],
            &bytes[index_start..payload_start],
            &bytes[payload_start..],
        );
        if computed != check {
            return Err(corrupt("check mismatch"));
        }
        let mut raw_index = &bytes[index_start..payload_start];
        let index = (0..index_points)
            .map(|_| IndexPoint {
                ts: get_ts(&mut raw_index),
                offset: raw_index.get_u32(),
            })
            .collect();
        let slice = OplogSlice {
            first,
            last,
            entry_count,
            raw_len,
            crc32,
            index,
            payload: bytes.slice(payload_start..),
        };
        slice.validate_shape()?;
        Ok(slice)
    }

    /// Rules every well-formed slice obeys; also bounds what [`Self::decode`] inflates.
    fn validate_shape(&self) -> Result<(), SliceCorrupt> {
        if self.entry_count == 0 || self.first > self.last {
            return Err(corrupt("empty slice or first after last"));
        }
        if self.raw_len as usize > MAX_SLICE_RAW_BYTES
            || (self.raw_len as usize) < self.entry_count as usize * 5
        {
            return Err(corrupt("plaintext length out of bounds"));
        }
        let stored_bound = crate::blocks::chunk::stored_deflate_stream_len(u64::from(self.raw_len));
        if self.payload.len() as u64 > stored_bound {
            return Err(corrupt("payload longer than any stream of its plaintext"));
        }
        if self.index.len() != (self.entry_count as usize).div_ceil(INDEX_INTERVAL) {
            return Err(corrupt("index has the wrong number of points"));
        }
        match self.index.first() {
            Some(p) if p.ts == self.first && p.offset == 0 => Ok(()),
            _ => Err(corrupt("index does not start at the first entry")),
        }
    }

    /// The entries, fully verified: inflated to exactly `raw_len` bytes with the recorded
    /// CRC-32, walked back into `entry_count` documents with strictly increasing timestamps
    /// from `first` to `last`, the index pointing at them.
    pub fn decode(&self) -> Result<SliceEntries, SliceCorrupt> {
        self.validate_shape()?;
        let plain = self.inflate()?;
        if crc32fast::hash(&plain) != self.crc32 {
            return Err(corrupt("CRC-32 mismatch"));
        }
        let plain = Bytes::from(plain);
        let mut marks = Vec::with_capacity(self.entry_count as usize);
        let mut offset = 0;
        while offset < plain.len() {
            let rest = &plain[offset..];
            let len = rest
                .get(..4)
                .and_then(|p| declared_len([p[0], p[1], p[2], p[3]]).ok())
                .filter(|len| *len <= rest.len())
                .ok_or_else(|| corrupt("entry framing broken"))?;
            let ts = entry_ts(&rest[..len]).map_err(|e| corrupt(format!("entry: {e}")))?;
            if marks.last().is_some_and(|m: &EntryMark| m.ts >= ts) {
                return Err(corrupt("entries out of order"));
            }
            marks.push(EntryMark { ts, offset, len });
            offset += len;
        }
        let consistent = marks.len() == self.entry_count as usize
            && marks.first().map(|m| m.ts) == Some(self.first)
            && marks.last().map(|m| m.ts) == Some(self.last)
            && self.index.iter().enumerate().all(|(i, point)| {
                let mark = &marks[i * INDEX_INTERVAL];
                mark.ts == point.ts && mark.offset == point.offset as usize
            });
        if !consistent {
            return Err(corrupt("entries disagree with the header or index"));
        }
        Ok(SliceEntries { plain, marks })
    }

    /// Inflates the payload into exactly `raw_len` bytes; a stream that is longer, shorter,
    /// unterminated or followed by trailing bytes is rejected.
    fn inflate(&self) -> Result<Vec<u8>, SliceCorrupt> {
        let mut out = Vec::with_capacity(self.raw_len as usize + 1);
        let mut inflater = Decompress::new(false);
        let status = inflater
            .decompress_vec(&self.payload, &mut out, FlushDecompress::Finish)
            .map_err(|_| corrupt("invalid deflate stream"))?;
        if status != Status::StreamEnd || out.len() != self.raw_len as usize {
            return Err(corrupt("deflate stream does not end where expected"));
        }
        if inflater.total_in() != self.payload.len() as u64 {
            return Err(corrupt("trailing bytes after deflate stream"));
        }
        Ok(out)
    }
}

fn slice_check(path: &str, header: &[u8], index: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(path.len() as u64).to_be_bytes());
    hasher.update(path.as_bytes());
    hasher.update(header);
    hasher.update(index);
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// Cuts consecutive entries into slices: the fewest pieces of at most [`SLICE_TARGET_BYTES`]
/// (one larger entry alone), of about equal size, so a push never leaves a sliver of a slice
/// behind. Returns index ranges into `marks`.
pub fn cut_runs(marks: &[EntryMark]) -> Vec<std::ops::Range<usize>> {
    let total: usize = marks.iter().map(|m| m.len).sum();
    if marks.is_empty() {
        return Vec::new();
    }
    let pieces = total.div_ceil(SLICE_TARGET_BYTES).max(1);
    let share = total.div_ceil(pieces);
    let mut cuts = Vec::with_capacity(pieces);
    let (mut start, mut bytes) = (0, 0);
    for (i, mark) in marks.iter().enumerate() {
        if bytes > 0 && bytes + mark.len > SLICE_TARGET_BYTES {
            cuts.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += mark.len;
        if bytes >= share {
            cuts.push(start..i + 1);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < marks.len() {
        cuts.push(start..marks.len());
    }
    cuts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rewind_formats::oplog::entry::split_entries;
    use rewind_formats::oplog::entry::test_entries::{entry, run, ts};

    use super::*;

    const PATH: &str = "oplog/abc/7273/slice";

    fn slice_of(buffer: &[u8]) -> OplogSlice {
        let marks = split_entries(buffer).expect("valid entries");
        OplogSlice::encode(buffer, &marks)
    }

    #[test]
    fn slices_round_trip_through_their_object_bytes() {
        let buffer = run(100, 600, "a payload that repeats, repeats, repeats");
        let slice = slice_of(&buffer);
        assert_eq!(slice.first(), ts(100, 1));
        assert_eq!(slice.last(), ts(100, 600));
        assert_eq!(slice.entry_count(), 600);
        assert_eq!(slice.index().len(), 3);
        assert!(
            slice.deflate_stream().len() < buffer.len() / 3,
            "oplog text compresses"
        );
        let object = slice.to_object_bytes(PATH);
        assert_eq!(object.len(), slice.object_len());
        let stored = OplogSlice::from_object_bytes(PATH, object).expect("verifies");
        assert_eq!(stored, slice);
        let entries = stored.decode().expect("decodes");
        assert_eq!(entries.plain, buffer);
        assert_eq!(entries.marks, split_entries(&buffer).unwrap());
        let mut gunzip = Vec::new();
        let member = [
            crate::blocks::gzip::member_header().as_slice(),
            stored.deflate_stream(),
            &crate::blocks::gzip::member_trailer(stored.crc32(), stored.raw_len()),
        ]
        .concat();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(member.as_slice()),
            &mut gunzip,
        )
        .expect("a slice is one gzip member");
        assert_eq!(gunzip, buffer);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buffer = [entry(ts(9, 1), "x"), entry(ts(9, 2), "y")].concat();
        let object = slice_of(&buffer).to_object_bytes(PATH);
        for bit in 0..object.len() * 8 {
            let mut bad = object.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                OplogSlice::from_object_bytes(PATH, Bytes::from(bad)).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn truncated_extended_or_misfiled_objects_are_corrupt() {
        let object = slice_of(&run(5, 10, "z")).to_object_bytes(PATH);
        for len in [0, 10, SLICE_HEADER_BYTES, object.len() - 1] {
            assert!(OplogSlice::from_object_bytes(PATH, object.slice(..len)).is_err());
        }
        let mut longer = object.to_vec();
        longer.push(0);
        assert!(OplogSlice::from_object_bytes(PATH, longer.into()).is_err());
        assert!(
            OplogSlice::from_object_bytes("oplog/abc/7273/other", object).is_err(),
            "a slice read under another name is refused"
        );
    }

    #[test]
    fn decode_catches_a_payload_consistent_with_its_check_but_wrong() {
        let good = slice_of(&run(5, 10, "z"));
        let other = slice_of(&run(6, 10, "z"));
        let forged = OplogSlice {
            payload: other.payload.clone(),
            ..good.clone()
        };
        assert!(forged.decode().is_err());
        let miscounted = OplogSlice {
            entry_count: 9,
            ..good
        };
        assert!(miscounted.decode().is_err());
    }

    fn marks_of_sizes(sizes: &[usize]) -> Vec<EntryMark> {
        let mut offset = 0;
        sizes
            .iter()
            .enumerate()
            .map(|(i, len)| {
                let mark = EntryMark {
                    ts: ts(1, i as u32 + 1),
                    offset,
                    len: *len,
                };
                offset += len;
                mark
            })
            .collect()
    }

    #[test]
    fn runs_are_cut_into_even_slices_without_slivers() {
        let sizes = vec![1000; 4500]; // 4.3 MiB: two slices of about 2.15 MiB, not 4 + 0.3
        let cuts = cut_runs(&marks_of_sizes(&sizes));
        assert_eq!(cuts.len(), 2);
        assert!(cuts.iter().all(|c| c.len() >= 2200), "{cuts:?}");
        let huge = cut_runs(&marks_of_sizes(&[100, MAX_ENTRY_BYTES, 100]));
        assert_eq!(huge, vec![0..1, 1..2, 2..3]);
        assert!(cut_runs(&[]).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn cuts_cover_every_entry_in_bounded_pieces(
            sizes in prop::collection::vec(prop_oneof![5usize..2_000, 100_000usize..3_000_000], 1..200)
        ) {
            let marks = marks_of_sizes(&sizes);
            let cuts = cut_runs(&marks);
            let total: usize = sizes.iter().sum();
            prop_assert_eq!(cuts.first().map(|c| c.start), Some(0));
            prop_assert_eq!(cuts.last().map(|c| c.end), Some(sizes.len()));
            prop_assert!(cuts.windows(2).all(|w| w[0].end == w[1].start));
            // Two neighbouring pieces always hold more than a full slice.
            prop_assert!(cuts.len() <= 2 * total.div_ceil(SLICE_TARGET_BYTES) + 1);
            for cut in &cuts {
                prop_assert!(!cut.is_empty());
                let bytes: usize = sizes[cut.clone()].iter().sum();
                prop_assert!(bytes <= SLICE_TARGET_BYTES || cut.len() == 1);
            }
        }
    }
}
