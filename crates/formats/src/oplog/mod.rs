//! Oplog entries as clients push them and the server stores them: validation and framing
//! ([`entry`]), the timestamps that order them ([`OplogTs`]), and the largest push.

pub mod entry;

pub use entry::{
    entry_ts, read_entry, split_entries, split_entries_with, validate_entry, BatchError,
    EntryError, EntryMark, ReadEntryError, MAX_ENTRY_BYTES,
};

/// Largest push (request body), in bytes: as large as a chunk upload batch, and room for
/// the largest single entry.
pub const MAX_PUSH_BYTES: usize = 32 * 1024 * 1024;
const _: () = assert!(MAX_PUSH_BYTES >= MAX_ENTRY_BYTES);

/// A BSON timestamp: seconds since the epoch and an ordinal within that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OplogTs {
    pub secs: u32,
    pub inc: u32,
}

impl OplogTs {
    /// The latest timestamp there is: every entry is at or before it.
    pub const MAX: OplogTs = OplogTs {
        secs: u32::MAX,
        inc: u32::MAX,
    };

    /// The last timestamp within second `secs`: every entry of that second is at or before it.
    pub fn end_of_second(secs: u32) -> OplogTs {
        OplogTs {
            secs,
            inc: u32::MAX,
        }
    }
}

impl std::fmt::Display for OplogTs {
    /// `SECONDS:INCREMENT`, the form the CLI takes and error messages show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.secs, self.inc)
    }
}
