//! PostgreSQL implementation of [`RestoreMeta`].

use async_trait::async_trait;

use super::PostgresMetaStore;
use crate::ids::{BatchId, ClusterId, GroupId, JobId, SnapshotId};
use crate::meta::group_commit::JobRows;
use crate::meta::restore::{
    ClaimedJob, JobLease, PreparationProgress, PreparedOutcome, RestoreMeta,
};
use crate::meta::rows::{
    build_insert, byte_col, claimed_jobs_from_rows, job_from_row, job_row, page_limit,
    parse_job_id, preparation_from_row, Columns, JOB_COLUMNS, JOB_INSERT, LIVE_DELIVERY,
};
use crate::meta::MetaResult;
use crate::model::{
    DeliveryLedger, DeliveryStatus, OplogTs, PageOf, PageRequest, RestoreJobRecord, UnixSeconds,
};

/// Most jobs inserted by one statement, under PostgreSQL's limit of 65,535 bound values.
const JOBS_PER_INSERT: usize = 65_535 / JOB_COLUMNS;
/// Rows the group commit combines at most: a statement of this size still parses and runs
/// in a millisecond or two, so no request waits long behind a batch.
pub(super) const JOBS_PER_BATCH: usize = 256;

/// One statement is atomic on its own: no `BEGIN`/`COMMIT` round trips around it. Only rows
/// beyond one statement's bound values need a transaction.
#[async_trait]
impl JobRows for sqlx::PgPool {
    async fn insert_rows(&self, jobs: &[&RestoreJobRecord]) -> MetaResult<()> {
        let insert = |rows: &[&RestoreJobRecord]| {
            build_insert::<sqlx::Postgres>(JOB_INSERT, rows.iter().map(|j| job_row(j)))
        };
        if jobs.len() <= JOBS_PER_INSERT {
            insert(jobs).build().execute(self).await?;
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for part in jobs.chunks(JOBS_PER_INSERT) {
            insert(part).build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl RestoreMeta for PostgresMetaStore {
    async fn insert_jobs(&self, jobs: &[RestoreJobRecord]) -> MetaResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        // Concurrent requests' rows are combined into one statement and one commit (see
        // `group_commit`): a round trip, a parse and a WAL flush for the lot.
        self.job_inserter.insert(jobs.to_vec()).await
    }

    async fn get_job(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> MetaResult<Option<RestoreJobRecord>> {
        let row = sqlx::query(
            "SELECT * FROM restore_jobs WHERE project_id = $1 AND cluster_id = $2 AND id = $3",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .bind(id.to_hex())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn get_job_by_id(&self, id: JobId) -> MetaResult<Option<RestoreJobRecord>> {
        let row = sqlx::query("SELECT * FROM restore_jobs WHERE id = $1")
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
        let filter = "FROM restore_jobs WHERE project_id = $1 AND cluster_id = $2 \
                      AND ($3::TEXT IS NULL OR batch_id = $3)";
        let batch = batch.map(|b| b.to_hex());
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {filter}"))
            .bind(group.to_hex())
            .bind(cluster.to_hex())
            .bind(&batch)
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows = sqlx::query(&format!(
            "SELECT * {filter} ORDER BY created DESC, id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(group.to_hex())
        .bind(cluster.to_hex())
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
        // One statement, so one short transaction. The inner select locks the jobs it
        // picks and passes over those another claim has locked (SKIP LOCKED) instead of
        // waiting for them; a job another claim leased and committed meanwhile is checked
        // again in its new state, and is no longer free.
        let rows = sqlx::query(
            "UPDATE restore_jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1, \
             lease_token = lease_token + 1, delivery_status = 'IN_PROGRESS' \
             WHERE id IN (SELECT id FROM restore_jobs WHERE status = 'IN_PROGRESS' \
                          AND delivery_status IN ('NOT_STARTED', 'IN_PROGRESS') \
                          AND (lease_until IS NULL OR lease_until < $3) ORDER BY created, id LIMIT $4 \
                          FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        claimed_jobs_from_rows(&rows)
    }

    async fn renew_leases(
        &self,
        leases: &[JobLease],
        worker: &str,
        lease_until: UnixSeconds,
    ) -> MetaResult<Vec<JobId>> {
        let ids: Vec<String> = leases.iter().map(|l| l.job.to_hex()).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| l.token.0).collect();
        let renewed: Vec<String> = sqlx::query_scalar(
            "UPDATE restore_jobs SET lease_until = $1 WHERE lease_owner = $2 \
             AND (id, lease_token) IN (SELECT * FROM UNNEST($3::TEXT[], $4::BIGINT[])) RETURNING id",
        )
        .bind(lease_until)
        .bind(worker)
        .bind(ids)
        .bind(tokens)
        .fetch_all(self.pool())
        .await?;
        renewed.iter().map(|id| parse_job_id(id)).collect()
    }

    async fn finish_preparations(
        &self,
        worker: &str,
        outcomes: &[(JobLease, PreparedOutcome)],
    ) -> MetaResult<Vec<bool>> {
        let mut tx = self.pool().begin().await?;
        let mut finished = Vec::with_capacity(outcomes.len());
        for (lease, o) in outcomes {
            let done = sqlx::query(
                "UPDATE restore_jobs SET status = $1, delivery_status = $2, archive_bytes = $3, archive_sha1 = $4, \
                 expires = COALESCE(expires, $5), finished_at = $6, failure = $7, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $8 AND lease_owner = $9 AND lease_token = $10 AND status = 'IN_PROGRESS'",
            )
            .bind(o.status.as_str())
            .bind(o.delivery_status.as_str())
            .bind(o.archive_bytes.map(byte_col))
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
        let done = sqlx::query("UPDATE restore_jobs SET prepared_bytes = $1, planned_bytes = $2 WHERE id = $3 AND lease_owner = $4")
            .bind(byte_col(prepared))
            .bind(byte_col(planned))
            .bind(id.to_hex())
            .bind(worker)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn preparation_progress(&self, id: JobId) -> MetaResult<Option<PreparationProgress>> {
        let row =
            sqlx::query("SELECT prepared_bytes, planned_bytes FROM restore_jobs WHERE id = $1")
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
        // One statement: a racing update of the same row waits for this one, then finds
        // the ledger changed and writes nothing. `IS NOT DISTINCT FROM` matches NULL (no
        // resume point) with NULL, where `=` would match nothing.
        let done = sqlx::query(
            "UPDATE restore_jobs SET delivery_status = $1, downloads_started = $2, downloads_completed = $3, \
             resume_offset = $4, resent_bytes = $5 \
             WHERE id = $6 AND delivery_status = $7 AND downloads_started = $8 AND downloads_completed = $9 \
             AND resume_offset IS NOT DISTINCT FROM $10 AND resent_bytes = $11",
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
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn links_expired_by(
        &self,
        now: UnixSeconds,
        statuses: &[DeliveryStatus],
        limit: u32,
    ) -> MetaResult<Vec<RestoreJobRecord>> {
        let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(
            "SELECT * FROM restore_jobs WHERE method = 'HTTP' AND expires IS NOT NULL AND expires <= $1 \
             AND delivery_status = ANY($2) ORDER BY expires, id LIMIT $3",
        )
        .bind(now)
        .bind(statuses)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn oldest_active_oplog_start(
        &self,
        cluster: ClusterId,
        now: UnixSeconds,
    ) -> MetaResult<Option<OplogTs>> {
        let row = sqlx::query(&format!(
            "SELECT s.created_secs, s.created_inc FROM restore_jobs j JOIN snapshots s ON s.id = j.snapshot_id \
             WHERE j.cluster_id = $1 AND j.point_in_time AND (j.status = 'IN_PROGRESS' OR \
             ({LIVE_DELIVERY} AND (j.expires IS NULL OR j.expires > $2))) \
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
        let found: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM restore_jobs WHERE snapshot_id = $1 AND (status = 'IN_PROGRESS' OR \
             ({LIVE_DELIVERY} AND (expires IS NULL OR expires > $2))))"
        ))
        .bind(snapshot.to_hex())
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(found)
    }
}
