//! SQLite implementation of [`AgentMeta`].

use async_trait::async_trait;

use super::SqliteMetaStore;
use crate::ids::{ClusterId, JobId};
use crate::meta::agents::{AgentMeta, MemberUpdate, RestoreMemberRecord};
use crate::meta::rows::{job_from_row, member_from_row};
use crate::meta::MetaResult;
use crate::model::{JobStatus, RestoreJobRecord, UnixSeconds};

#[async_trait]
impl AgentMeta for SqliteMetaStore {
    async fn record_heartbeat(
        &self,
        replica_set: ClusterId,
        also: &[ClusterId],
        agent: &str,
        members: &[String],
        now: UnixSeconds,
    ) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for member in members {
            sqlx::query(
                "INSERT INTO agent_members (cluster_id, member_name, agent_id, last_seen) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (cluster_id, member_name) DO UPDATE SET agent_id = excluded.agent_id, last_seen = excluded.last_seen",
            )
            .bind(replica_set.to_hex())
            .bind(member)
            .bind(agent)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for id in std::iter::once(&replica_set).chain(also) {
            sqlx::query("UPDATE clusters SET last_heartbeat = ? WHERE id = ?")
                .bind(now)
                .bind(id.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn open_agent_jobs(&self, target: ClusterId) -> MetaResult<Vec<RestoreJobRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM restore_jobs WHERE method = 'AUTOMATED_RESTORE' AND target_cluster_id = ? AND \
             (status = 'IN_PROGRESS' OR id IN (SELECT job_id FROM agent_restore_members WHERE state IN ('APPLYING', 'APPLIED'))) \
             ORDER BY created, id",
        )
        .bind(target.to_hex())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn automated_jobs_in_progress(&self) -> MetaResult<Vec<RestoreJobRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM restore_jobs WHERE method = 'AUTOMATED_RESTORE' AND status = 'IN_PROGRESS' \
             AND target_cluster_id IS NOT NULL ORDER BY created, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn plan_agent_job(
        &self,
        job: JobId,
        replica_set: ClusterId,
        seen_since: UnixSeconds,
        now: UnixSeconds,
    ) -> MetaResult<UnixSeconds> {
        let mut tx = self.begin_write().await?;
        let planned: Option<i64> =
            sqlx::query_scalar("SELECT planned_at FROM agent_restore_plans WHERE job_id = ?")
                .bind(job.to_hex())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(at) = planned {
            return Ok(at);
        }
        sqlx::query(
            "INSERT INTO agent_restore_plans (job_id, cluster_id, planned_at) VALUES (?, ?, ?)",
        )
        .bind(job.to_hex())
        .bind(replica_set.to_hex())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO agent_restore_members (job_id, member_name, state, updated) \
             SELECT ?, member_name, 'PENDING', ? FROM agent_members WHERE cluster_id = ? AND last_seen >= ?",
        )
        .bind(job.to_hex())
        .bind(now)
        .bind(replica_set.to_hex())
        .bind(seen_since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(now)
    }

    async fn join_agent_job(
        &self,
        job: JobId,
        members: &[String],
        now: UnixSeconds,
    ) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        for member in members {
            sqlx::query(
                "INSERT OR IGNORE INTO agent_restore_members (job_id, member_name, state, updated) \
                 SELECT id, ?, 'PENDING', ? FROM restore_jobs WHERE id = ? AND status = 'IN_PROGRESS'",
            )
            .bind(member)
            .bind(now)
            .bind(job.to_hex())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job_members(&self, job: JobId) -> MetaResult<Vec<RestoreMemberRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM agent_restore_members WHERE job_id = ? ORDER BY member_name",
        )
        .bind(job.to_hex())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn claim_member(
        &self,
        job: JobId,
        member: &str,
        agent: &str,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let done = sqlx::query(
            "UPDATE agent_restore_members SET state = 'APPLYING', agent_id = ?, updated = ? \
             WHERE job_id = ? AND member_name = ? AND (state = 'PENDING' OR (state = 'APPLYING' AND agent_id = ?))",
        )
        .bind(agent)
        .bind(now)
        .bind(job.to_hex())
        .bind(member)
        .bind(agent)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn report_member(
        &self,
        job: JobId,
        member: &str,
        agent: &str,
        update: &MemberUpdate<'_>,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let done = sqlx::query(
            "UPDATE agent_restore_members SET state = ?, progress_bytes = ?, failure = COALESCE(?, failure), updated = ? \
             WHERE job_id = ? AND member_name = ? AND agent_id = ?",
        )
        .bind(update.state.as_str())
        .bind(i64::try_from(update.progress_bytes).unwrap_or(i64::MAX))
        .bind(update.failure)
        .bind(now)
        .bind(job.to_hex())
        .bind(member)
        .bind(agent)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn settle_job(
        &self,
        job: JobId,
        status: JobStatus,
        failure: Option<&str>,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let done = sqlx::query(
            "UPDATE restore_jobs SET status = ?, failure = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL \
             WHERE id = ? AND status = 'IN_PROGRESS'",
        )
        .bind(status.as_str())
        .bind(failure)
        .bind(now)
        .bind(job.to_hex())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
