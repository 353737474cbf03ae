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

use bson::raw::{RawBsonRef, RawDocument, RawElement};
use bson::spec::ElementType;

use crate::model::OplogTs;

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
pub fn validate_entry(bytes: &[u8]) -> Result<OplogTs, EntryError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::BadLength(bytes.len() as i64));
    }
    let doc = RawDocument::from_bytes(bytes).map_err(malformed)?;
    let mut ts = None;
    let mut has_op = false;
    for element in doc.iter_elements() {
        let element = element.map_err(malformed)?;
        match element.key() {
            "ts" => ts = Some(timestamp_of(&element)?),
            "op" => has_op = element.element_type() == ElementType::String,
            _ => {}
        }
        check_nested(&element, 1)?;
    }
    let ts = ts.ok_or(EntryError::MissingTs)?;
    if !has_op {
        return Err(EntryError::MissingOp);
    }
    Ok(ts)
}

/// The `ts` of an entry already validated (a stored one): only the top level is walked.
pub fn entry_ts(bytes: &[u8]) -> Result<OplogTs, EntryError> {
    let doc = RawDocument::from_bytes(bytes).map_err(malformed)?;
    for element in doc.iter_elements() {
        let element = element.map_err(malformed)?;
        if element.key() == "ts" {
            return timestamp_of(&element);
        }
    }
    Err(EntryError::MissingTs)
}

fn timestamp_of(element: &RawElement<'_>) -> Result<OplogTs, EntryError> {
    match element.value().map_err(malformed)? {
        RawBsonRef::Timestamp(t) if t.time == 0 && t.increment == 0 => Err(EntryError::ZeroTs),
        RawBsonRef::Timestamp(t) => Ok(OplogTs {
            secs: t.time,
            inc: t.increment,
        }),
        other => Err(EntryError::TsNotTimestamp(format!(
            "{:?}",
            other.element_type()
        ))),
    }
}

/// Walks into documents, arrays and code-with-scope values; the iterator has already checked
/// every other element's length and terminator.
fn check_nested(element: &RawElement<'_>, depth: usize) -> Result<(), EntryError> {
    let inner = match element.element_type() {
        ElementType::EmbeddedDocument
        | ElementType::Array
        | ElementType::JavaScriptCodeWithScope => match element.value().map_err(malformed)? {
            RawBsonRef::Document(doc) => doc,
            RawBsonRef::Array(array) => {
                RawDocument::from_bytes(array.as_bytes()).map_err(malformed)?
            }
            RawBsonRef::JavaScriptCodeWithScope(code) => code.scope,
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if depth >= MAX_NESTING_DEPTH {
        return Err(EntryError::TooDeep);
    }
    for nested in inner.iter_elements() {
        check_nested(&nested.map_err(malformed)?, depth + 1)?;
    }
    Ok(())
}

fn malformed(err: bson::raw::Error) -> EntryError {
    EntryError::Malformed(err.to_string())
}

/// Splits a buffer of concatenated entries, validating each and requiring strictly
/// increasing timestamps. The first offending entry refuses the whole buffer.
pub fn split_entries(buffer: &[u8]) -> Result<Vec<EntryMark>, BatchError> {
    let mut marks: Vec<EntryMark> = Vec::new();
    let mut offset = 0;
    while offset < buffer.len() {
        let index = marks.len();
        let invalid = |error| BatchError::Invalid {
            index,
            offset,
            error,
        };
        let rest = &buffer[offset..];
        let prefix: [u8; 4] = match rest.get(..4) {
            Some(p) => [p[0], p[1], p[2], p[3]],
            None => return Err(invalid(EntryError::Truncated)),
        };
        let len = declared_len(prefix).map_err(invalid)?;
        let bytes = rest.get(..len).ok_or(invalid(EntryError::Truncated))?;
        let ts = validate_entry(bytes).map_err(invalid)?;
        if let Some(previous) = marks.last().map(|m| m.ts) {
            if ts <= previous {
                return Err(BatchError::OutOfOrder {
                    index,
                    offset,
                    ts,
                    previous,
                });
            }
        }
        marks.push(EntryMark { ts, offset, len });
        offset += len;
    }
    Ok(marks)
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

/// Builders of oplog entries for the tests of this crate.
#[cfg(test)]
pub(crate) mod test_entries {
    use bson::raw::RawDocumentBuf;
    use bson::{rawdoc, Timestamp};

    use crate::model::OplogTs;

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
