//! End-to-end tests: the real `rewind` binary on a real socket, driven by real HTTP clients.

mod agent;
mod archive_fidelity;
mod auth;
mod browser;
mod chaos;
mod checkpoints;
mod console_browser;
mod curl;
mod delivery;
mod errors;
mod fidelity;
mod fixtures;
mod foundation;
mod limits;
mod nodes;
mod nodes_auth;
mod oplog;
mod pit;
mod restore;
mod restore_validation;
mod s3_faults;
mod snapshots;
mod storage;
mod support;
mod watch;
