//! The Rewind server library: a self-hosted restore service speaking the MongoDB Cloud
//! Manager Public API v1.0 for backup restores.
//!
//! Layers, each importing only the ones below it:
//! `http` (routing, auth, API errors) → `domain` (what Rewind does) → `meta` (metadata
//! store trait and backends). `model` holds the plain records they share. `blocks` is the
//! content-addressed chunk store that snapshot data lives in; `oplog` holds the formats and
//! continuity rules of the oplog slices kept beside it. The formats clients share with the
//! server (chunking, chunk ids, upload frames, oplog entries) are the `rewind-formats` crate.

pub mod blocks;
pub mod config;
pub mod console;
pub mod domain;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod meta;
pub mod model;
#[cfg(test)]
mod module_cycles;
pub mod oplog;
pub mod server;
pub mod storage;
