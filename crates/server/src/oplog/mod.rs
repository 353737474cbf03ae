//! The oplog store's formats and rules, independent of HTTP and of any storage backend.
//!
//! A replica set's oplog arrives as concatenated BSON entries (their format, shared with
//! clients, is [`rewind_formats::oplog::entry`]), is kept byte for byte in bounded,
//! compressed, verified slices ([`slice`]) stored as block-store objects, and is tracked as
//! ranges of complete coverage with gaps between them ([`coverage`]) in the metadata store.
//! The domain (`domain::oplog`) ties these to authorization, storage and retention.

pub mod coverage;
pub mod slice;

pub use rewind_formats::oplog::{split_entries, validate_entry, BatchError, EntryError, EntryMark};
pub use slice::{cut_runs, OplogSlice, SliceCorrupt, SliceEntries};
