//! SQLite implementation of [`TaskLeaseMeta`].

use async_trait::async_trait;

use super::SqliteMetaStore;
use crate::meta::leases::{LeaseToken, TaskLeaseMeta};
use crate::meta::rows::{HOLD_TASK_LEASE, RELEASE_TASK_LEASE};
use crate::meta::MetaResult;
use crate::model::UnixSeconds;

#[async_trait]
impl TaskLeaseMeta for SqliteMetaStore {
    async fn hold_task_lease(
        &self,
        task: &str,
        holder: &str,
        now: UnixSeconds,
        until: UnixSeconds,
    ) -> MetaResult<Option<LeaseToken>> {
        let token: Option<i64> = sqlx::query_scalar(HOLD_TASK_LEASE)
            .bind(task)
            .bind(holder)
            .bind(until)
            .bind(now)
            .fetch_optional(self.writer())
            .await?;
        Ok(token.map(LeaseToken))
    }

    async fn release_task_lease(
        &self,
        task: &str,
        holder: &str,
        token: LeaseToken,
    ) -> MetaResult<bool> {
        let done = sqlx::query(RELEASE_TASK_LEASE)
            .bind(task)
            .bind(holder)
            .bind(token.0)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
