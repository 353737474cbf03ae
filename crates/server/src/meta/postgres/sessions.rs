//! PostgreSQL implementation of [`ConsoleSessionMeta`](crate::meta::ConsoleSessionMeta):
//! every statement runs on the pool; the rows are shared by every node of the database.

use super::PostgresMetaStore;

crate::meta::rows::console_session_meta!(PostgresMetaStore, read: pool, write: pool);
