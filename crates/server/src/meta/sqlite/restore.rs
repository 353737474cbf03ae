//! SQLite implementation of [`RestoreMeta`].

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::SqliteMetaStore;
use crate::ids::{BatchId, ClusterId, GroupId, JobId, SnapshotId};
use crate::meta::group_commit::JobRows;
use crate::meta::restore::{
    ClaimedJob, JobLease, PreparationProgress, PreparedOutcome, RestoreMeta,
};
use crate::meta::rows::{
    build_insert, byte_col, claimed_jobs_from_rows, job_from_row, job_row, page_limit,
    parse_job_id, preparation_from_row, Columns, JOB_INSERT, LIVE_DELIVERY,
};
use crate::meta::MetaResult;
use crate::model::{
    DeliveryLedger, DeliveryStatus, OplogTs, PageOf, PageRequest, RestoreJobRecord, UnixSeconds,
};

#[async_trait]
impl RestoreMeta for SqliteMetaStore {
    async fn insert_jobs(&self, jobs: &[RestoreJobRecord]) -> MetaResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        self.job_inserter.insert(jobs.to_vec()).await
    }

    async fn get_job(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> MetaResult<Option<RestoreJobRecord>> {
        let row = sqlx::query(
            "SELECT * FROM restore_jobs WHERE project_id = ? AND cluster_id = ? AND id = ?",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .bind(id.to_hex())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn get_job_by_id(&self, id: JobId) -> MetaResult<Option<RestoreJobRecord>> {
        let row = sqlx::query("SELECT * FROM restore_jobs WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(
        &self,
        group: GroupId,
        cluster: ClusterId,
        batch: Option<BatchId>,
        page: PageRequest,
    ) -> MetaResult<PageOf<RestoreJobRecord>> {
        let filter = "FROM restore_jobs WHERE project_id = ? AND cluster_id = ? AND (? IS NULL OR batch_id = ?)";
        let batch = batch.map(|b| b.to_hex());
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {filter}"))
            .bind(group.to_hex())
            .bind(cluster.to_hex())
            .bind(&batch)
            .bind(&batch)
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows = sqlx::query(&format!(
            "SELECT * {filter} ORDER BY created DESC, id DESC LIMIT ? OFFSET ?"
        ))
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .bind(&batch)
        .bind(&batch)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok(PageOf {
            items: rows.iter().map(job_from_row).collect::<MetaResult<_>>()?,
            total: total as u64,
        })
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        now: UnixSeconds,
        lease_until: UnixSeconds,
        limit: u32,
    ) -> MetaResult<Vec<ClaimedJob>> {
        // One statement: the sub-select and the update run under SQLite's write lock, so
        // two workers cannot both see the same job as free.
        let rows = sqlx::query(
            "UPDATE restore_jobs SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, \
             lease_token = lease_token + 1, delivery_status = 'IN_PROGRESS' \
             WHERE id IN (SELECT id FROM restore_jobs WHERE status = 'IN_PROGRESS' \
                          AND delivery_status IN ('NOT_STARTED', 'IN_PROGRESS') \
                          AND (lease_until IS NULL OR lease_until < ?) ORDER BY created, id LIMIT ?) \
             RETURNING *",
        )
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.writer())
        .await?;
        claimed_jobs_from_rows(&rows)
    }

    async fn renew_leases(
        &self,
        leases: &[JobLease],
        worker: &str,
        lease_until: UnixSeconds,
    ) -> MetaResult<Vec<JobId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut update =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("UPDATE restore_jobs SET lease_until = ");
        update.push_bind(lease_until);
        update.push(" WHERE lease_owner = ");
        update.push_bind(worker);
        update.push(" AND (id, lease_token) IN (VALUES ");
        let mut list = update.separated(", ");
        for lease in leases {
            list.push("(");
            list.push_bind_unseparated(lease.job.to_hex());
            list.push_unseparated(", ");
            list.push_bind_unseparated(lease.token.0);
            list.push_unseparated(")");
        }
        update.push(") RETURNING id");
        let renewed: Vec<String> = update.build_query_scalar().fetch_all(self.writer()).await?;
        renewed.iter().map(|id| parse_job_id(id)).collect()
    }

    async fn finish_preparations(
        &self,
        worker: &str,
        outcomes: &[(JobLease, PreparedOutcome)],
    ) -> MetaResult<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let mut finished = Vec::with_capacity(outcomes.len());
        for (lease, o) in outcomes {
            let done = sqlx::query(
                "UPDATE restore_jobs SET status = ?, delivery_status = ?, archive_bytes = ?, archive_sha1 = ?, \
                 expires = COALESCE(expires, ?), finished_at = ?, failure = ?, lease_owner = NULL, lease_until = NULL \
                 WHERE id = ? AND lease_owner = ? AND lease_token = ? AND status = 'IN_PROGRESS'",
            )
            .bind(o.status.as_str())
            .bind(o.delivery_status.as_str())
            .bind(o.archive_bytes.map(|b| b as i64))
            .bind(&o.archive_sha1)
            .bind(o.expires)
            .bind(o.finished_at)
            .bind(&o.failure)
            .bind(lease.job.to_hex())
            .bind(worker)
            .bind(lease.token.0)
            .execute(&mut *tx)
            .await?;
            finished.push(done.rows_affected() > 0);
        }
        tx.commit().await?;
        Ok(finished)
    }

    async fn record_preparation_progress(
        &self,
        id: JobId,
        worker: &str,
        prepared: u64,
        planned: u64,
    ) -> MetaResult<bool> {
        let done = sqlx::query("UPDATE restore_jobs SET prepared_bytes = ?, planned_bytes = ? WHERE id = ? AND lease_owner = ?")
            .bind(byte_col(prepared))
            .bind(byte_col(planned))
            .bind(id.to_hex())
            .bind(worker)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn preparation_progress(&self, id: JobId) -> MetaResult<Option<PreparationProgress>> {
        let row =
            sqlx::query("SELECT prepared_bytes, planned_bytes FROM restore_jobs WHERE id = ?")
                .bind(id.to_hex())
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(preparation_from_row).transpose()
    }

    async fn update_delivery(
        &self,
        id: JobId,
        expected: &DeliveryLedger,
        next: &DeliveryLedger,
    ) -> MetaResult<bool> {
        let done = sqlx::query(
            "UPDATE restore_jobs SET delivery_status = ?, downloads_started = ?, downloads_completed = ?, \
             resume_offset = ?, resent_bytes = ? \
             WHERE id = ? AND delivery_status = ? AND downloads_started = ? AND downloads_completed = ? \
             AND resume_offset IS ? AND resent_bytes = ?",
        )
        .bind(next.status.as_str())
        .bind(i64::from(next.downloads_started))
        .bind(i64::from(next.downloads_completed))
        .bind(next.resume_offset.map(byte_col))
        .bind(byte_col(next.resent_bytes))
        .bind(id.to_hex())
        .bind(expected.status.as_str())
        .bind(i64::from(expected.downloads_started))
        .bind(i64::from(expected.downloads_completed))
        .bind(expected.resume_offset.map(byte_col))
        .bind(byte_col(expected.resent_bytes))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn links_expired_by(
        &self,
        now: UnixSeconds,
        statuses: &[DeliveryStatus],
        limit: u32,
    ) -> MetaResult<Vec<RestoreJobRecord>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT * FROM restore_jobs WHERE method = 'HTTP' AND expires IS NOT NULL AND expires <= ",
        );
        select.push_bind(now);
        select.push(" AND delivery_status IN (");
        let mut list = select.separated(", ");
        for status in statuses {
            list.push_bind(status.as_str());
        }
        select.push(") ORDER BY expires, id LIMIT ");
        select.push_bind(i64::from(limit));
        let rows = select.build().fetch_all(self.pool()).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn oldest_active_oplog_start(
        &self,
        cluster: ClusterId,
        now: UnixSeconds,
    ) -> MetaResult<Option<OplogTs>> {
        let row = sqlx::query(&format!(
            "SELECT s.created_secs, s.created_inc FROM restore_jobs j JOIN snapshots s ON s.id = j.snapshot_id \
             WHERE j.cluster_id = ? AND j.point_in_time AND (j.status = 'IN_PROGRESS' OR \
             ({LIVE_DELIVERY} AND (j.expires IS NULL OR j.expires > ?))) \
             ORDER BY s.created_secs, s.created_inc LIMIT 1"
        ))
        .bind(cluster.to_hex())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.ts("created")).transpose()
    }

    async fn snapshot_has_active_jobs(
        &self,
        snapshot: SnapshotId,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM restore_jobs WHERE snapshot_id = ? AND (status = 'IN_PROGRESS' OR \
             ({LIVE_DELIVERY} AND (expires IS NULL OR expires > ?))) LIMIT 1"
        ))
        .bind(snapshot.to_hex())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }
}

/// Rows written by one statement at most (29 bound values each, under SQLite's limit of
/// 32,766 bound parameters).
pub(super) const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Inserts `jobs` atomically: as one multi-row statement (atomic on its own, so the write
/// lock is held only while it runs), or, beyond one statement's worth of rows, as several in
/// one transaction.
#[async_trait]
impl JobRows for SqlitePool {
    async fn insert_rows(&self, jobs: &[&RestoreJobRecord]) -> MetaResult<()> {
        if jobs.len() <= MAX_ROWS_PER_STATEMENT {
            return insert_statement(jobs)
                .build()
                .execute(self)
                .await
                .map(drop)
                .map_err(Into::into);
        }
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await?;
        for rows in jobs.chunks(MAX_ROWS_PER_STATEMENT) {
            insert_statement(rows).build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn insert_statement<'a>(jobs: &[&RestoreJobRecord]) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    build_insert(JOB_INSERT, jobs.iter().map(|j| job_row(j)))
}
