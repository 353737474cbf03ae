//! Oplog entries as they arrive: concatenated BSON documents, the format of `mongodump`'s
//! `oplog.bson`. Each entry is validated in place, without decoding it into a tree or
//! re-encoding it, and is kept byte for byte.
//!
//! An entry is accepted when it is one well-formed BSON document (every nested document,
//! array and length checked, nesting bounded), at most [`MAX_ENTRY_BYTES`] long, with a
//! top-level `ts` that is a non-zero BSON Timestamp and a top-level string `op`. Nothing else
//! is interpreted: field order, `h`, `t`, `v`, `ui`, `wall` and the payloads are the
//! server's business and are kept as they came. String values are not checked for UTF-8
//! (MongoDB does not guarantee it either, and the bytes are replayed, not read).

use std::io::{ErrorKind, Read};

use bson::raw::{RawBsonRef, RawDocument};
use bson::spec::ElementType;

use super::OplogTs;

/// Largest entry accepted: MongoDB's 16 MiB document limit plus the 16 KiB of headroom the
/// server allows an oplog entry beyond it.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024 + 16 * 1024;
/// Smallest BSON document: its length and the terminating zero.
pub const MIN_ENTRY_BYTES: usize = 5;
/// Deepest nesting of documents and arrays accepted (MongoDB's own limit for BSON it
/// produces), which also bounds the validator's recursion.
pub const MAX_NESTING_DEPTH: usize = 200;

/// Why one entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("the input ends inside the entry")]
    Truncated,
    #[error(
        "the entry declares a length of {0} bytes, outside {MIN_ENTRY_BYTES}..={MAX_ENTRY_BYTES}"
    )]
    BadLength(i64),
    #[error("the entry is not well-formed BSON: {0}")]
    Malformed(String),
    #[error("the entry nests documents deeper than {MAX_NESTING_DEPTH} levels")]
    TooDeep,
    #[error("the entry has no top-level ts field")]
    MissingTs,
    #[error("the entry's ts is a {0}, not a BSON Timestamp")]
    TsNotTimestamp(String),
    #[error("the entry's ts is zero")]
    ZeroTs,
    #[error("the entry has no top-level string op field")]
    MissingOp,
}

impl EntryError {
    /// The field the refusal is about, as an API error's `parameters` names it.
    pub fn field(&self) -> &'static str {
        match self {
            EntryError::MissingTs | EntryError::TsNotTimestamp(_) | EntryError::ZeroTs => "ts",
            EntryError::MissingOp => "op",
            _ => "body",
        }
    }
}

/// Why a batch of entries is refused: the first offending entry, by position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("entry {index} (at byte {offset}): {error}")]
    Invalid {
        index: usize,
        offset: usize,
        error: EntryError,
    },
    #[error("entry {index} (at byte {offset}) has ts {ts:?}, not after the previous entry's {previous:?}")]
    OutOfOrder {
        index: usize,
        offset: usize,
        ts: OplogTs,
        previous: OplogTs,
    },
}

/// Where one validated entry lies in its buffer, and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMark {
    pub ts: OplogTs,
    /// Byte offset of the entry in its buffer.
    pub offset: usize,
    pub len: usize,
}

impl EntryMark {
    pub fn end(&self) -> usize {
        self.offset + self.len
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.end()
    }
}

/// The length an entry declares in its first four bytes, bounded to what is accepted.
pub fn declared_len(prefix: [u8; 4]) -> Result<usize, EntryError> {
    let len = i32::from_le_bytes(prefix);
    match usize::try_from(len) {
        Ok(n) if (MIN_ENTRY_BYTES..=MAX_ENTRY_BYTES).contains(&n) => Ok(n),
        _ => Err(EntryError::BadLength(i64::from(len))),
    }
}

/// Validates one entry (exactly one BSON document) and returns its `ts`.
///
/// The document is walked once by [`walk_document`], a structural BSON checker written for
/// this hot path (every pushed entry goes through it, on the client and on the server);
/// its verdicts are tested against the `bson` crate's raw parser.
pub fn validate_entry(bytes: &[u8]) -> Result<OplogTs, EntryError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::BadLength(bytes.len() as i64));
    }
    let mut top = TopLevel::default();
    walk_document(bytes, 1, Some(&mut top))?;
    let ts = top.ts.ok_or(EntryError::MissingTs)??;
    if !top.has_op {
        return Err(EntryError::MissingOp);
    }
    Ok(ts)
}

/// What the walk notes of an entry's top-level fields.
#[derive(Default)]
struct TopLevel {
    ts: Option<Result<OplogTs, EntryError>>,
    has_op: bool,
}

fn bad(reason: &str) -> EntryError {
    EntryError::Malformed(reason.to_owned())
}

fn i32_at(bytes: &[u8], at: usize) -> Result<i32, EntryError> {
    bytes
        .get(at..at + 4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad("a length runs past the end of its document"))
}

/// A non-negative length at `at`.
fn len_at(bytes: &[u8], at: usize) -> Result<usize, EntryError> {
    usize::try_from(i32_at(bytes, at)?).map_err(|_| bad("a length is negative"))
}

/// Length of a C string starting at `at` (its terminator excluded), within `end`.
fn cstring_len(bytes: &[u8], at: usize, end: usize) -> Result<usize, EntryError> {
    bytes
        .get(at..end)
        .and_then(|rest| rest.iter().position(|b| *b == 0))
        .ok_or_else(|| bad("a key or C string is not terminated"))
}

/// Size of a length-prefixed string at `at`: length ≥ 1, terminated by a zero.
fn string_size(bytes: &[u8], at: usize, end: usize) -> Result<usize, EntryError> {
    let len = len_at(bytes, at)?;
    let size = len
        .checked_add(4)
        .filter(|size| len >= 1 && at + size <= end)
        .ok_or_else(|| bad("a string runs past the end of its document"))?;
    if bytes[at + size - 1] != 0 {
        return Err(bad("a string is not terminated"));
    }
    Ok(size)
}

/// Checks one BSON document's structure (bsonspec.org): its length and terminator, every
/// element's type, terminated key and size, and nested documents, arrays and code scopes
/// recursively up to [`MAX_NESTING_DEPTH`]. Keys and strings are not checked for UTF-8.
fn walk_document(
    doc: &[u8],
    depth: usize,
    mut top: Option<&mut TopLevel>,
) -> Result<(), EntryError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(EntryError::TooDeep);
    }
    if doc.len() < MIN_ENTRY_BYTES || len_at(doc, 0)? != doc.len() {
        return Err(bad("a document's length does not match its bytes"));
    }
    let end = doc.len() - 1;
    if doc[end] != 0 {
        return Err(bad("a document is not terminated"));
    }
    let mut at = 4;
    while at < end {
        let kind = doc[at];
        let key_start = at + 1;
        let key_len = cstring_len(doc, key_start, end)?;
        at = key_start + key_len + 1;
        let size = match kind {
            0x01 | 0x09 | 0x11 | 0x12 => 8,
            0x02 | 0x0D | 0x0E => string_size(doc, at, end)?,
            0x03 | 0x04 => {
                let size = len_at(doc, at)?;
                let nested = doc
                    .get(at..at + size)
                    .filter(|_| at + size <= end)
                    .ok_or_else(|| bad("a nested document runs past its parent"))?;
                walk_document(nested, depth + 1, None)?;
                size
            }
            0x05 => {
                let len = len_at(doc, at)?;
                if doc.get(at + 4) == Some(&0x02) && (len < 4 || len_at(doc, at + 5)? + 4 != len) {
                    return Err(bad("an old-style binary has a wrong inner length"));
                }
                len.checked_add(5)
                    .ok_or_else(|| bad("a binary is too long"))?
            }
            0x06 | 0x0A | 0x7F | 0xFF => 0,
            0x07 => 12,
            0x08 => match doc.get(at) {
                Some(0 | 1) => 1,
                _ => return Err(bad("a boolean is neither 0 nor 1")),
            },
            0x0B => {
                let pattern = cstring_len(doc, at, end)?;
                let options = cstring_len(doc, at + pattern + 1, end)?;
                pattern + options + 2
            }
            0x0C => string_size(doc, at, end)? + 12,
            0x0F => {
                let size = len_at(doc, at)?;
                let code = string_size(doc, at + 4, end)?;
                let scope = doc
                    .get(at + 4 + code..at + size)
                    .filter(|_| size >= 14 && at + size <= end)
                    .ok_or_else(|| bad("a code-with-scope value has inconsistent lengths"))?;
                walk_document(scope, depth + 1, None)?;
                size
            }
            0x10 => 4,
            0x13 => 16,
            _ => return Err(bad("an element has an unknown type")),
        };
        if at + size > end {
            return Err(bad("an element runs past the end of its document"));
        }
        if let Some(top) = top.as_deref_mut() {
            match &doc[key_start..key_start + key_len] {
                b"ts" => top.ts = Some(timestamp_in(kind, &doc[at..at + size])),
                b"op" => top.has_op = kind == 0x02,
                _ => {}
            }
        }
        at += size;
    }
    Ok(())
}

/// The value of a top-level `ts` element of type `kind`.
fn timestamp_in(kind: u8, value: &[u8]) -> Result<OplogTs, EntryError> {
    if kind != 0x11 {
        let name =
            ElementType::from(kind).map_or_else(|| format!("type {kind:#x}"), |t| format!("{t:?}"));
        return Err(EntryError::TsNotTimestamp(name));
    }
    // A BSON Timestamp is the increment then the seconds, each a little-endian u32.
    let inc = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
    let secs = u32::from_le_bytes([value[4], value[5], value[6], value[7]]);
    if secs == 0 && inc == 0 {
        return Err(EntryError::ZeroTs);
    }
    Ok(OplogTs { secs, inc })
}

/// The `ts` of an entry already validated (a stored one): only the top level is walked.
pub fn entry_ts(bytes: &[u8]) -> Result<OplogTs, EntryError> {
    let doc = RawDocument::from_bytes(bytes).map_err(malformed)?;
    for element in doc.iter_elements() {
        let element = element.map_err(malformed)?;
        if element.key() == "ts" {
            return match element.value().map_err(malformed)? {
                RawBsonRef::Timestamp(t) if t.time == 0 && t.increment == 0 => {
                    Err(EntryError::ZeroTs)
                }
                RawBsonRef::Timestamp(t) => Ok(OplogTs {
                    secs: t.time,
                    inc: t.increment,
                }),
                other => Err(EntryError::TsNotTimestamp(format!(
                    "{:?}",
                    other.element_type()
                ))),
            };
        }
    }
    Err(EntryError::MissingTs)
}

fn malformed(err: bson::raw::Error) -> EntryError {
    EntryError::Malformed(err.to_string())
}

/// Splits a buffer of concatenated entries, validating each and requiring strictly
/// increasing timestamps. The first offending entry refuses the whole buffer.
pub fn split_entries(buffer: &[u8]) -> Result<Vec<EntryMark>, BatchError> {
    split_entries_with(buffer, 1)
}

/// Buffers smaller than this are validated on the calling thread alone.
const PARALLEL_MIN_BYTES: usize = 1024 * 1024;

/// [`split_entries`] with the validation spread over up to `workers` threads (scoped to
/// this call). The result, including which error is reported, is the same as validating
/// entry after entry: the first offending entry in buffer order.
pub fn split_entries_with(buffer: &[u8], workers: usize) -> Result<Vec<EntryMark>, BatchError> {
    let (frames, framing_error) = frame_entries(buffer);
    let workers = if buffer.len() < PARALLEL_MIN_BYTES {
        1
    } else {
        workers.clamp(1, frames.len().max(1))
    };
    let per_worker = frames.len().div_ceil(workers).max(1);
    let validated: Vec<Validated> = if workers == 1 {
        vec![validate_frames(buffer, &frames, 0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = frames
                .chunks(per_worker)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || validate_frames(buffer, part, i * per_worker)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut marks = Vec::with_capacity(frames.len());
    let mut first_invalid = None;
    for (stamps, invalid) in validated {
        marks.extend(stamps);
        if invalid.is_some() {
            first_invalid = invalid;
            break;
        }
    }
    // Entries before the first invalid one are valid: an ordering error among them comes
    // first in buffer order.
    let marks: Vec<EntryMark> = marks
        .into_iter()
        .zip(&frames)
        .map(|(ts, &(offset, len))| EntryMark { ts, offset, len })
        .collect();
    if let Some(i) = marks.windows(2).position(|w| w[1].ts <= w[0].ts) {
        let (previous, next) = (marks[i], marks[i + 1]);
        return Err(BatchError::OutOfOrder {
            index: i + 1,
            offset: next.offset,
            ts: next.ts,
            previous: previous.ts,
        });
    }
    if let Some((index, error)) = first_invalid {
        return Err(BatchError::Invalid {
            index,
            offset: frames[index].0,
            error,
        });
    }
    if let Some(error) = framing_error {
        return Err(error);
    }
    Ok(marks)
}

/// The `(offset, len)` of each entry, from the declared lengths alone, up to the first
/// framing error (returned beside them).
fn frame_entries(buffer: &[u8]) -> (Vec<(usize, usize)>, Option<BatchError>) {
    let mut frames = Vec::with_capacity(buffer.len() / 128);
    let mut offset = 0;
    while offset < buffer.len() {
        let index = frames.len();
        let invalid = |error| BatchError::Invalid {
            index,
            offset,
            error,
        };
        let rest = &buffer[offset..];
        let Some(prefix) = rest.get(..4) else {
            return (frames, Some(invalid(EntryError::Truncated)));
        };
        let len = match declared_len([prefix[0], prefix[1], prefix[2], prefix[3]]) {
            Ok(len) if len <= rest.len() => len,
            Ok(_) => return (frames, Some(invalid(EntryError::Truncated))),
            Err(e) => return (frames, Some(invalid(e))),
        };
        frames.push((offset, len));
        offset += len;
    }
    (frames, None)
}

/// The timestamps of the valid entries of a run of frames, up to the first invalid one, and
/// that one's index and error.
type Validated = (Vec<OplogTs>, Option<(usize, EntryError)>);

/// Validates framed entries up to the first failure (`first_index` is the index of
/// `frames[0]` in the whole buffer).
fn validate_frames(buffer: &[u8], frames: &[(usize, usize)], first_index: usize) -> Validated {
    let mut stamps = Vec::with_capacity(frames.len());
    for (i, &(offset, len)) in frames.iter().enumerate() {
        match validate_entry(&buffer[offset..offset + len]) {
            Ok(ts) => stamps.push(ts),
            Err(e) => return (stamps, Some((first_index + i, e))),
        }
    }
    (stamps, None)
}

/// Why reading an entry from a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadEntryError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Entry(#[from] EntryError),
}

/// Reads the next entry's bytes from `reader` and appends them to `out`, checking only the
/// framing (the declared length and that the bytes are there). Returns the entry's length,
/// or `None` at a clean end of input (between two entries).
pub fn read_entry<R: Read>(
    reader: &mut R,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, ReadEntryError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(EntryError::Truncated.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = declared_len(prefix)?;
    let start = out.len();
    out.extend_from_slice(&prefix);
    let read = reader
        .take((len - prefix.len()) as u64)
        .read_to_end(out)
        .inspect_err(|_| out.truncate(start))?;
    if read != len - prefix.len() {
        out.truncate(start);
        return Err(EntryError::Truncated.into());
    }
    Ok(Some(len))
}

/// Builders of oplog entries for this crate's tests and, with the `test-util` feature,
/// other crates'.
#[cfg(any(test, feature = "test-util"))]
pub mod test_entries {
    use bson::raw::RawDocumentBuf;
    use bson::{rawdoc, Timestamp};

    use crate::oplog::OplogTs;

    /// An insert entry at `ts` whose document carries `payload`, in the field order of
    /// MongoDB 4.2 and later.
    pub fn entry(ts: OplogTs, payload: &str) -> Vec<u8> {
        let doc: RawDocumentBuf = rawdoc! {
            "op": "i",
            "ns": "shop.orders",
            "o": { "_id": i64::from(ts.inc), "note": payload, "items": [1, 2, { "sku": "a" }] },
            "ts": Timestamp { time: ts.secs, increment: ts.inc },
            "t": 1_i64,
            "v": 2_i64,
        };
        doc.into_bytes()
    }

    pub fn ts(secs: u32, inc: u32) -> OplogTs {
        OplogTs { secs, inc }
    }

    /// Entries at `(secs, 1..=count)`, concatenated.
    pub fn run(secs: u32, count: u32, payload: &str) -> Vec<u8> {
        (1..=count)
            .flat_map(|inc| entry(ts(secs, inc), payload))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bson::{rawdoc, Timestamp};
    use proptest::prelude::*;

    use super::test_entries::{entry, run, ts};
    use super::*;

    #[test]
    fn a_well_formed_entry_yields_its_timestamp() {
        assert_eq!(validate_entry(&entry(ts(7, 3), "x")), Ok(ts(7, 3)));
        assert_eq!(entry_ts(&entry(ts(7, 3), "x")), Ok(ts(7, 3)));
    }

    #[test]
    fn entries_without_a_proper_ts_or_op_are_refused() {
        let no_ts = rawdoc! { "op": "n", "o": { "msg": "x" } }.into_bytes();
        assert_eq!(validate_entry(&no_ts), Err(EntryError::MissingTs));
        let wrong = rawdoc! { "op": "n", "ts": 5_i64 }.into_bytes();
        assert!(matches!(
            validate_entry(&wrong),
            Err(EntryError::TsNotTimestamp(_))
        ));
        let zero = rawdoc! { "op": "n", "ts": Timestamp { time: 0, increment: 0 } }.into_bytes();
        assert_eq!(validate_entry(&zero), Err(EntryError::ZeroTs));
        let no_op = rawdoc! { "ts": Timestamp { time: 1, increment: 0 } }.into_bytes();
        assert_eq!(validate_entry(&no_op), Err(EntryError::MissingOp));
        let numeric_op =
            rawdoc! { "op": 1, "ts": Timestamp { time: 1, increment: 0 } }.into_bytes();
        assert_eq!(validate_entry(&numeric_op), Err(EntryError::MissingOp));
        assert_eq!(EntryError::MissingTs.field(), "ts");
        assert_eq!(EntryError::MissingOp.field(), "op");
        assert_eq!(EntryError::Truncated.field(), "body");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut doc = rawdoc! { "leaf": 1 };
        for _ in 0..MAX_NESTING_DEPTH {
            doc = rawdoc! { "d": doc };
        }
        let deep = rawdoc! { "op": "i", "ts": Timestamp { time: 1, increment: 1 }, "o": doc };
        assert_eq!(validate_entry(deep.as_bytes()), Err(EntryError::TooDeep));
    }

    #[test]
    fn damage_deep_inside_an_entry_is_found() {
        let good = entry(ts(1, 1), "payload");
        // The inner array's first element is an int32 `1`: make its type byte invalid.
        let at = good
            .windows(3)
            .position(|w| w == [0x10, b'0', 0])
            .expect("the array's first element");
        let mut bad = good.clone();
        bad[at] = 0x77;
        assert!(matches!(
            validate_entry(&bad),
            Err(EntryError::Malformed(_))
        ));
        // A nested length that points past its parent.
        let mut bad = good;
        let inner = bad.windows(2).position(|w| w == [b'o', 0]).expect("o") + 2;
        bad[inner] = 0xff;
        assert!(matches!(
            validate_entry(&bad),
            Err(EntryError::Malformed(_))
        ));
    }

    #[test]
    fn batches_split_at_entry_boundaries_and_refuse_disorder() {
        let body = run(10, 3, "abc");
        let marks = split_entries(&body).expect("valid");
        assert_eq!(marks.len(), 3);
        assert_eq!(marks[0].offset, 0);
        assert_eq!(marks[2].end(), body.len());
        assert_eq!(marks[1].ts, ts(10, 2));

        let mut swapped = entry(ts(10, 2), "b");
        swapped.extend(entry(ts(10, 1), "a"));
        assert!(matches!(
            split_entries(&swapped),
            Err(BatchError::OutOfOrder { index: 1, .. })
        ));
        let mut repeated = entry(ts(10, 1), "a");
        repeated.extend(entry(ts(10, 1), "a"));
        assert!(matches!(
            split_entries(&repeated),
            Err(BatchError::OutOfOrder { index: 1, .. })
        ));
        let truncated = &body[..body.len() - 1];
        assert!(matches!(
            split_entries(truncated),
            Err(BatchError::Invalid {
                index: 2,
                error: EntryError::Truncated,
                ..
            })
        ));
        assert!(matches!(
            split_entries(&[1, 0, 0]),
            Err(BatchError::Invalid {
                error: EntryError::Truncated,
                ..
            })
        ));
        assert!(matches!(
            split_entries(&[0xff, 0xff, 0xff, 0x7f, 0]),
            Err(BatchError::Invalid {
                error: EntryError::BadLength(_),
                ..
            })
        ));
        assert_eq!(split_entries(&[]), Ok(vec![]));
    }

    #[test]
    fn streams_are_read_entry_by_entry() {
        let body = run(3, 4, "stream");
        let mut reader = body.as_slice();
        let mut out = Vec::new();
        let mut lens = Vec::new();
        while let Some(len) = read_entry(&mut reader, &mut out).expect("read") {
            lens.push(len);
        }
        assert_eq!(lens.len(), 4);
        assert_eq!(out, body);
        let mut cut = &body[..body.len() - 3];
        let mut out = Vec::new();
        let last = loop {
            match read_entry(&mut cut, &mut out) {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        assert!(matches!(
            last,
            Err(ReadEntryError::Entry(EntryError::Truncated))
        ));
        assert_eq!(
            split_entries(&out).map(|m| m.len()),
            Ok(3),
            "only whole entries are kept"
        );
    }

    #[test]
    fn parallel_validation_reports_what_sequential_validation_does() {
        let payload = "x".repeat(3_000);
        let good: Vec<u8> = (1..=1_000)
            .flat_map(|i| entry(ts(100, i), &payload))
            .collect();
        assert!(good.len() > PARALLEL_MIN_BYTES);
        let marks = split_entries_with(&good, 4).expect("valid");
        assert_eq!(marks, split_entries(&good).expect("valid"));
        // An ordering error early and a malformed entry late: the early one is reported.
        let mut bad = good.clone();
        let second = marks[1];
        bad.splice(second.range(), entry(ts(100, 1), &payload));
        let late = marks[900].offset + 4;
        bad[late] = 0x77;
        for workers in [1, 2, 4] {
            assert!(
                matches!(
                    split_entries_with(&bad, workers),
                    Err(BatchError::OutOfOrder { index: 1, .. })
                ),
                "{workers} workers"
            );
        }
        // A malformed entry before a truncated tail: the malformed one is reported.
        let mut bad = good;
        bad[marks[700].offset + 4] = 0x77;
        bad.truncate(bad.len() - 3);
        for workers in [1, 2, 4] {
            assert!(
                matches!(
                    split_entries_with(&bad, workers),
                    Err(BatchError::Invalid { index: 700, .. })
                ),
                "{workers} workers"
            );
        }
    }

    /// The `bson` crate's verdict on an entry: its raw parser walked through every nested
    /// document, array and code scope. `None` when it refuses only for UTF-8 (which the
    /// walker deliberately does not check).
    fn bson_verdict(bytes: &[u8]) -> Option<Result<OplogTs, ()>> {
        use bson::raw::{ErrorKind, RawElement};
        fn utf8_only(e: &bson::raw::Error) -> bool {
            matches!(e.kind, ErrorKind::Utf8EncodingError(_))
        }
        fn nested(element: &RawElement<'_>, depth: usize) -> Result<(), Option<()>> {
            let value = match element.element_type() {
                ElementType::EmbeddedDocument
                | ElementType::Array
                | ElementType::JavaScriptCodeWithScope
                | ElementType::Binary
                | ElementType::Boolean => element.value(),
                _ => return Ok(()),
            };
            let inner = match value.map_err(|e| (!utf8_only(&e)).then_some(()))? {
                RawBsonRef::Document(d) => d,
                RawBsonRef::Array(a) => {
                    RawDocument::from_bytes(a.as_bytes()).map_err(|_| Some(()))?
                }
                RawBsonRef::JavaScriptCodeWithScope(c) => c.scope,
                _ => return Ok(()),
            };
            if depth + 1 > MAX_NESTING_DEPTH {
                return Err(Some(()));
            }
            for e in inner.iter_elements() {
                nested(&e.map_err(|e| (!utf8_only(&e)).then_some(()))?, depth + 1)?;
            }
            Ok(())
        }
        let doc = match RawDocument::from_bytes(bytes) {
            Ok(doc) => doc,
            Err(_) => return Some(Err(())),
        };
        let mut ts = None;
        let mut op = false;
        for element in doc.iter_elements() {
            let element = match element {
                Ok(e) => e,
                Err(e) if utf8_only(&e) => return None,
                Err(_) => return Some(Err(())),
            };
            match nested(&element, 1) {
                Ok(()) => {}
                Err(None) => return None,
                Err(Some(())) => return Some(Err(())),
            }
            match element.key() {
                "ts" => ts = Some(element.value().ok().and_then(|v| v.as_timestamp())),
                "op" => op = element.element_type() == ElementType::String,
                _ => {}
            }
        }
        match ts {
            Some(Some(t)) if op && (t.time, t.increment) != (0, 0) => Some(Ok(OplogTs {
                secs: t.time,
                inc: t.increment,
            })),
            _ => Some(Err(())),
        }
    }

    /// A rich entry: every BSON type, nested documents and arrays, a code scope.
    fn rich_entry() -> Vec<u8> {
        use bson::oid::ObjectId;
        use bson::spec::BinarySubtype;
        use bson::{Binary, DateTime, Decimal128, Regex};
        rawdoc! {
            "op": "u",
            "ns": "db.c",
            "o": {
                "$v": 2,
                "diff": { "u": { "a": 1.5, "b": [true, false, null], "c": { "d": "e" } } },
                "when": DateTime::from_millis(12),
                "id": ObjectId::from_bytes([7; 12]),
                "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
                "old": Binary { subtype: BinarySubtype::BinaryOld, bytes: vec![4, 5] },
                "re": Regex { pattern: "a.*b".into(), options: "i".into() },
                "dec": Decimal128::from_bytes([3; 16]),
                "code": bson::raw::RawBson::JavaScriptCode("f()".into()),
                "scope": bson::raw::RawJavaScriptCodeWithScope { code: "g()".into(), scope: rawdoc! { "x": 1 } },
                "big": 5_i64,
                "min": bson::raw::RawBson::MinKey,
                "max": bson::raw::RawBson::MaxKey,
            },
            "o2": { "_id": 3 },
            "ts": Timestamp { time: 1_700_000_000, increment: 9 },
            "t": 1_i64,
        }
        .into_bytes()
    }

    #[test]
    fn the_walker_accepts_every_bson_type() {
        let bytes = rich_entry();
        assert_eq!(validate_entry(&bytes), Ok(ts(1_700_000_000, 9)));
        assert_eq!(bson_verdict(&bytes), Some(Ok(ts(1_700_000_000, 9))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// The walker and the `bson` crate agree on damaged entries: one to three bytes
        /// changed anywhere in a rich entry, or the entry cut short.
        #[test]
        fn the_walker_agrees_with_the_bson_crate(
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut bytes = rich_entry();
            for (at, value) in changes {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            if let Some(expected) = bson_verdict(&bytes) {
                prop_assert_eq!(validate_entry(&bytes).map_err(|_| ()), expected);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any bytes at all: refused or accepted, never a panic, and what is accepted splits
        /// back into exactly the buffer.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(marks) = split_entries(&bytes) {
                let total: usize = marks.iter().map(|m| m.len).sum();
                prop_assert_eq!(total, bytes.len());
            }
        }

        /// A valid entry with one byte changed is refused or still yields a timestamp; it
        /// never panics.
        #[test]
        fn flipped_bytes_never_panic(at in 0usize..200, value in any::<u8>()) {
            let mut bytes = entry(ts(5, 5), "some payload");
            let at = at % bytes.len();
            bytes[at] = value;
            let _ = validate_entry(&bytes);
            let _ = split_entries(&bytes);
        }
    }
}
