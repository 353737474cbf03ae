//! SQLite implementation of [`NonceMeta`].
//!
//! A server over the embedded store keeps its replay ledger in memory instead (see
//! `domain::replay`): one process serves an SQLite store, and a synced commit per
//! authenticated request would cost more than the whole request. This table serves
//! whatever does share the file.

use async_trait::async_trait;

use super::SqliteMetaStore;
use crate::meta::{MetaResult, NonceMeta, NonceUse};
use crate::model::UnixSeconds;

#[async_trait]
impl NonceMeta for SqliteMetaStore {
    async fn record_nonce_use(&self, nonce_use: NonceUse) -> MetaResult<bool> {
        // One statement on the single writer connection: the insert that finds the key
        // taken does nothing, and the one that does not is the first.
        let done = sqlx::query(
            "INSERT INTO nonce_uses (expires, tag, nc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(nonce_use.expires)
        .bind(nonce_use.tag)
        .bind(i64::from(nonce_use.nc))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_nonce_uses(&self, now: UnixSeconds) -> MetaResult<u64> {
        let done = sqlx::query("DELETE FROM nonce_uses WHERE expires < ?")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
