//! SQLite implementation of [`ConsoleSessionMeta`](crate::meta::ConsoleSessionMeta): finds
//! read through the pool, and every write goes through the single writer connection, so that
//! a sign-in queues behind the other writes instead of sleeping in SQLite's busy handler.

use super::SqliteMetaStore;

crate::meta::rows::console_session_meta!(SqliteMetaStore, read: pool, write: writer);
