//! Restore agents: the members they announce, and the per-(job, member) rows through which
//! an automated restore is claimed, applied and reported.

use async_trait::async_trait;
pub use rewind_api_types::agent::MemberState;

use super::MetaResult;
use crate::ids::{ClusterId, JobId};
use crate::model::{JobStatus, RestoreJobRecord, UnixSeconds};

/// One member's part in one automated restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreMemberRecord {
    pub job_id: JobId,
    pub member_name: String,
    pub state: MemberState,
    /// The agent holding the claim (none while `Pending`).
    pub agent_id: Option<String>,
    pub progress_bytes: u64,
    pub failure: Option<String>,
    /// Last time the member's agent claimed, reported or polled for it.
    pub updated: UnixSeconds,
}

/// What an agent reports about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberUpdate<'a> {
    pub state: MemberState,
    pub progress_bytes: u64,
    pub failure: Option<&'a str>,
}

#[async_trait]
pub trait AgentMeta: Send + Sync + 'static {
    /// Records that `agent` serves `members` of the replica set row `replica_set`, and sets
    /// `last_heartbeat` of that row and of every row in `also` (its sharded cluster).
    async fn record_heartbeat(
        &self,
        replica_set: ClusterId,
        also: &[ClusterId],
        agent: &str,
        members: &[String],
        now: UnixSeconds,
    ) -> MetaResult<()>;

    /// Automated jobs restoring into `target` (a whole cluster) that are in progress, or
    /// whose members still hold applied or half-applied data.
    async fn open_agent_jobs(&self, target: ClusterId) -> MetaResult<Vec<RestoreJobRecord>>;

    /// Every automated job in progress, for the timeout monitor.
    async fn automated_jobs_in_progress(&self) -> MetaResult<Vec<RestoreJobRecord>>;

    /// Fixes a job's expected members, once: the members of `replica_set` announced at
    /// or after `seen_since`. Returns when the job was planned (now or earlier).
    async fn plan_agent_job(
        &self,
        job: JobId,
        replica_set: ClusterId,
        seen_since: UnixSeconds,
        now: UnixSeconds,
    ) -> MetaResult<UnixSeconds>;

    /// Adds `members` to the plan of a job still in progress (an agent that showed up late).
    async fn join_agent_job(
        &self,
        job: JobId,
        members: &[String],
        now: UnixSeconds,
    ) -> MetaResult<()>;

    async fn job_members(&self, job: JobId) -> MetaResult<Vec<RestoreMemberRecord>>;

    /// Claims a member for `agent`: atomic, so two agents never both hold it. Succeeds when
    /// the member is pending, or already `Applying` under the same agent (a restarted agent
    /// resumes its own claim). Refreshes `updated`.
    async fn claim_member(
        &self,
        job: JobId,
        member: &str,
        agent: &str,
        now: UnixSeconds,
    ) -> MetaResult<bool>;

    /// Records a report from the agent holding the claim; `false` when `agent` does not hold it.
    async fn report_member(
        &self,
        job: JobId,
        member: &str,
        agent: &str,
        update: &MemberUpdate<'_>,
        now: UnixSeconds,
    ) -> MetaResult<bool>;

    /// Moves a job out of `IN_PROGRESS`; `false` when it had already left it.
    async fn settle_job(
        &self,
        job: JobId,
        status: JobStatus,
        failure: Option<&str>,
        now: UnixSeconds,
    ) -> MetaResult<bool>;
}
