//! The `rewind` command line: the server (`serve`, `init`) and the client commands that
//! talk to a running server over HTTP.

pub mod agent;
pub mod client;
pub mod commands;
pub mod import;
pub mod oplog;
pub mod watch;
