//! PostgreSQL implementation of [`AgentMeta`].

use async_trait::async_trait;

use super::PostgresMetaStore;
use crate::ids::{ClusterId, JobId};
use crate::meta::agents::{AgentMeta, MemberUpdate, RestoreMemberRecord};
use crate::meta::rows::{job_from_row, member_from_row};
use crate::meta::MetaResult;
use crate::model::{JobStatus, RestoreJobRecord, UnixSeconds};

#[async_trait]
impl AgentMeta for PostgresMetaStore {
    async fn record_heartbeat(
        &self,
        replica_set: ClusterId,
        also: &[ClusterId],
        agent: &str,
        members: &[String],
        now: UnixSeconds,
    ) -> MetaResult<()> {
        let mut tx = self.pool().begin().await?;
        // In name order, so two heartbeats for the same members lock their rows alike; once
        // each, as one upsert may not touch a row twice.
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        sqlx::query(
            "INSERT INTO agent_members (cluster_id, member_name, agent_id, last_seen) \
             SELECT $1, member_name, $2, $3 FROM UNNEST($4::TEXT[]) AS m(member_name) \
             ON CONFLICT (cluster_id, member_name) DO UPDATE SET agent_id = excluded.agent_id, \
             last_seen = excluded.last_seen",
        )
        .bind(replica_set.to_hex())
        .bind(agent)
        .bind(now)
        .bind(&members)
        .execute(&mut *tx)
        .await?;
        let mut clusters: Vec<String> = std::iter::once(&replica_set)
            .chain(also)
            .map(ClusterId::to_hex)
            .collect();
        clusters.sort();
        sqlx::query("UPDATE clusters SET last_heartbeat = $1 WHERE id = ANY($2)")
            .bind(now)
            .bind(&clusters)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn open_agent_jobs(&self, target: ClusterId) -> MetaResult<Vec<RestoreJobRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM restore_jobs WHERE method = 'AUTOMATED_RESTORE' AND target_cluster_id = $1 AND \
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
        let mut tx = self.pool().begin().await?;
        // A racing planner's insert waits for this one to commit, then inserts nothing and
        // reads the plan this one made.
        let planned: Option<i64> = sqlx::query_scalar(
            "INSERT INTO agent_restore_plans (job_id, cluster_id, planned_at) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO NOTHING RETURNING planned_at",
        )
        .bind(job.to_hex())
        .bind(replica_set.to_hex())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if planned.is_none() {
            let at: i64 =
                sqlx::query_scalar("SELECT planned_at FROM agent_restore_plans WHERE job_id = $1")
                    .bind(job.to_hex())
                    .fetch_one(&mut *tx)
                    .await?;
            return Ok(at);
        }
        sqlx::query(
            "INSERT INTO agent_restore_members (job_id, member_name, state, updated) \
             SELECT $1, member_name, 'PENDING', $2 FROM agent_members WHERE cluster_id = $3 AND last_seen >= $4 \
             ON CONFLICT DO NOTHING",
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
        sqlx::query(
            "INSERT INTO agent_restore_members (job_id, member_name, state, updated) \
             SELECT j.id, m.member_name, 'PENDING', $1 FROM restore_jobs j, UNNEST($2::TEXT[]) AS m(member_name) \
             WHERE j.id = $3 AND j.status = 'IN_PROGRESS' ON CONFLICT DO NOTHING",
        )
        .bind(now)
        .bind(members)
        .bind(job.to_hex())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn job_members(&self, job: JobId) -> MetaResult<Vec<RestoreMemberRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM agent_restore_members WHERE job_id = $1 ORDER BY member_name",
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
            "UPDATE agent_restore_members SET state = 'APPLYING', agent_id = $1, updated = $2 \
             WHERE job_id = $3 AND member_name = $4 AND (state = 'PENDING' OR (state = 'APPLYING' AND agent_id = $1))",
        )
        .bind(agent)
        .bind(now)
        .bind(job.to_hex())
        .bind(member)
        .execute(self.pool())
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
            "UPDATE agent_restore_members SET state = $1, progress_bytes = $2, failure = COALESCE($3, failure), \
             updated = $4 WHERE job_id = $5 AND member_name = $6 AND agent_id = $7",
        )
        .bind(update.state.as_str())
        .bind(i64::try_from(update.progress_bytes).unwrap_or(i64::MAX))
        .bind(update.failure)
        .bind(now)
        .bind(job.to_hex())
        .bind(member)
        .bind(agent)
        .execute(self.pool())
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
            "UPDATE restore_jobs SET status = $1, failure = $2, finished_at = $3, lease_owner = NULL, \
             lease_until = NULL WHERE id = $4 AND status = 'IN_PROGRESS'",
        )
        .bind(status.as_str())
        .bind(failure)
        .bind(now)
        .bind(job.to_hex())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
