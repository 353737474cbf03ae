//! End-to-end tests: the real `rewind` binary on a real socket, driven by real HTTP clients.

mod agent;
mod auth;
mod chaos;
mod checkpoints;
mod curl;
mod delivery;
mod errors;
mod fixtures;
mod foundation;
mod limits;
mod nodes;
mod oplog;
mod pit;
mod restore;
mod restore_validation;
mod snapshots;
mod storage;
mod support;
