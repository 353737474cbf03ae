//! The web console: server-rendered pages under `/console`.

pub mod timeline;
