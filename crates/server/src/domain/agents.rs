//! Automated restores applied by `rewind agent`: agents announce the members they serve,
//! long-poll for (job, member) tasks, claim each member atomically, and report progress
//! and outcomes; the job's status follows from its members' states.
//!
//! Expected members: a job's members are fixed when it is first seen ready (by a poll or
//! the monitor) from the members that agents announced within the agent timeout; an agent
//! that shows up later joins while the job is still in progress. A job with no member, or
//! with a member whose agent stops reporting, is BROKEN after the timeout.

use std::collections::HashSet;
use std::time::Duration;

use rewind_api_types::agent::{AgentHello, TaskAction};

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId, JobId};
use crate::meta::agents::{MemberState, MemberUpdate, RestoreMemberRecord};
use crate::meta::restore::PreparationProgress;
use crate::model::{
    ClusterRecord, DeliveryMethod, DeliveryStatus, JobStatus, RestoreJobRecord, UnixSeconds,
};

/// Default of how long an automated job waits for an agent to report before it is BROKEN.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest long-poll a request may ask for.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting poll looks again when nothing wakes it.
const POLL_RECHECK: Duration = Duration::from_millis(500);
/// Longest agent id and member name accepted.
const MAX_NAME_BYTES: usize = 256;
/// Most members one agent may serve.
const MAX_MEMBERS_PER_AGENT: usize = 16;

/// Where a restore job stands, as operators watch it.
#[derive(Debug, Clone)]
pub struct RestoreProgress {
    pub job: RestoreJobRecord,
    /// The members of an automated restore (none for HTTP delivery), in name order.
    pub members: Vec<RestoreMemberRecord>,
    /// Archive bytes read and verified by preparation.
    pub prepared_bytes: u64,
    /// The archive's size: exact once prepared, as laid out while it is being prepared,
    /// unknown before.
    pub expected_bytes: Option<u64>,
    /// Archive bytes the members' agents downloaded, in all; none for HTTP delivery, whose
    /// downloads the server accounts only when each ends.
    pub delivered_bytes: Option<u64>,
}

impl RestoreProgress {
    fn of(
        job: RestoreJobRecord,
        members: Vec<RestoreMemberRecord>,
        recorded: PreparationProgress,
    ) -> RestoreProgress {
        // A prepared archive was read to its end, whatever the last figure recorded.
        let prepared_bytes = job.archive_bytes.unwrap_or(recorded.prepared_bytes);
        let expected_bytes = job.archive_bytes.or(recorded.planned_bytes);
        let delivered_bytes = matches!(job.method, DeliveryMethod::Automated { .. })
            .then(|| members.iter().map(|m| m.progress_bytes).sum());
        RestoreProgress {
            job,
            members,
            prepared_bytes,
            expected_bytes,
            delivered_bytes,
        }
    }
}

/// One task for an agent: the job, the member, and what to do.
#[derive(Debug, Clone)]
pub struct AgentTaskRecord {
    pub job: RestoreJobRecord,
    pub member_name: String,
    pub action: TaskAction,
}

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::rejected(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

fn check_name(field: &str, value: &str) -> DomainResult<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "Invalid attribute {field} specified: 1 to {MAX_NAME_BYTES} printable characters."
            ),
        ));
    }
    Ok(())
}

fn check_hello(hello: &AgentHello) -> DomainResult<()> {
    check_name("agentId", &hello.agent_id)?;
    check_name("replicaSetName", &hello.replica_set_name)?;
    if hello.members.is_empty() || hello.members.len() > MAX_MEMBERS_PER_AGENT {
        return Err(invalid(
            "members",
            format!("An agent serves 1 to {MAX_MEMBERS_PER_AGENT} members."),
        ));
    }
    for m in &hello.members {
        check_name("members", m)?;
    }
    Ok(())
}

/// The replica set rows of `members` of one type, in name order: how the parts of two
/// clusters of the same topology correspond.
fn replica_sets_of(
    members: &[ClusterRecord],
    part: crate::model::ClusterType,
) -> Vec<&ClusterRecord> {
    let mut rows: Vec<_> = members
        .iter()
        .filter(|c| c.type_name == part && c.replica_set_name.is_some())
        .collect();
    rows.sort_by(|a, b| a.replica_set_name.cmp(&b.replica_set_name));
    rows
}

impl Services {
    /// Records an agent's heartbeat: the cluster's `lastHeartbeat` and the members it serves.
    pub async fn agent_heartbeat(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        hello: &AgentHello,
    ) -> DomainResult<UnixSeconds> {
        check_hello(hello)?;
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let rs = self
            .agent_replica_set(group, cluster, &hello.replica_set_name)
            .await?;
        let now = self.clock.now();
        let also: Vec<ClusterId> = rs.parent_id.into_iter().collect();
        self.meta
            .record_heartbeat(rs.id, &also, &hello.agent_id, &hello.members, now)
            .await?;
        self.clusters_changed(group);
        Ok(now)
    }

    /// The replica set row named `name` of a target cluster (the cluster itself, or one of
    /// its shards or its config server).
    async fn agent_replica_set(
        &self,
        group: GroupId,
        cluster: ClusterId,
        name: &str,
    ) -> DomainResult<ClusterRecord> {
        let members = self.members_of(group, cluster).await?;
        members
            .into_iter()
            .find(|c| c.replica_set_name.as_deref() == Some(name))
            .ok_or_else(|| {
                invalid(
                    "replicaSetName",
                    format!("Cluster {cluster} has no replica set named {name:?}."),
                )
            })
    }

    /// The replica set row of the target cluster that a job's archive goes to: the part
    /// of the same type at the same position (shard i → shard i, config → config).
    pub async fn job_target_replica_set(
        &self,
        job: &RestoreJobRecord,
    ) -> DomainResult<ClusterRecord> {
        let DeliveryMethod::Automated {
            target_group,
            target_cluster,
        } = job.method
        else {
            return Err(DomainError::Internal(format!(
                "job {} is not automated",
                job.id
            )));
        };
        let source = self.members_of(job.group_id, job.cluster_id).await?;
        let target = self.members_of(target_group, target_cluster).await?;
        let at = replica_sets_of(&source, job.part_type)
            .iter()
            .position(|c| c.replica_set_name.as_deref() == Some(job.replica_set_name.as_str()));
        at.and_then(|i| {
            replica_sets_of(&target, job.part_type)
                .get(i)
                .cloned()
                .cloned()
        })
        .ok_or_else(|| {
            DomainError::Internal(format!(
                "job {} has no counterpart of replica set {} in its target",
                job.id, job.replica_set_name
            ))
        })
    }

    fn agent_seen_since(&self, timeout: Duration) -> UnixSeconds {
        self.clock.now() - timeout.as_secs() as i64
    }

    /// Long-polls for tasks of the members `hello` names, waiting at most `wait`.
    pub async fn agent_work(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        hello: &AgentHello,
        wait: Duration,
        timeout: Duration,
    ) -> DomainResult<Vec<AgentTaskRecord>> {
        self.agent_heartbeat(principal, group, cluster, hello)
            .await?;
        let rs = self
            .agent_replica_set(group, cluster, &hello.replica_set_name)
            .await?;
        let deadline = tokio::time::Instant::now() + wait.min(MAX_POLL_WAIT);
        loop {
            let wake = self.agent_news.notified();
            let tasks = self.collect_tasks(cluster, &rs, hello, timeout).await?;
            if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(tasks);
            }
            let recheck = (tokio::time::Instant::now() + POLL_RECHECK).min(deadline);
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep_until(recheck) => {}
            }
        }
    }

    /// Fixes the expected members of a ready job (once); returns when it was planned.
    pub async fn plan_agent_job(
        &self,
        job: &RestoreJobRecord,
        rs: &ClusterRecord,
        timeout: Duration,
    ) -> DomainResult<UnixSeconds> {
        Ok(self
            .meta
            .plan_agent_job(
                job.id,
                rs.id,
                self.agent_seen_since(timeout),
                self.clock.now(),
            )
            .await?)
    }

    async fn collect_tasks(
        &self,
        cluster: ClusterId,
        rs: &ClusterRecord,
        hello: &AgentHello,
        timeout: Duration,
    ) -> DomainResult<Vec<AgentTaskRecord>> {
        let mine: HashSet<&str> = hello.members.iter().map(String::as_str).collect();
        let now = self.clock.now();
        let mut tasks = Vec::new();
        for job in self.meta.open_agent_jobs(cluster).await? {
            if self.job_target_replica_set(&job).await?.id != rs.id {
                continue;
            }
            let ready = matches!(
                job.delivery_status,
                DeliveryStatus::Ready | DeliveryStatus::Interrupted
            );
            if job.status == JobStatus::InProgress && !ready {
                continue;
            }
            let mut members = self.meta.job_members(job.id).await?;
            if job.status == JobStatus::InProgress {
                self.plan_agent_job(&job, rs, timeout).await?;
                // Writes only for members not yet part of the job: polls are frequent.
                let missing: Vec<String> = hello
                    .members
                    .iter()
                    .filter(|m| !members.iter().any(|r| &r.member_name == *m))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    self.meta.join_agent_job(job.id, &missing, now).await?;
                    members = self.meta.job_members(job.id).await?;
                }
            }
            for member in members {
                if !mine.contains(member.member_name.as_str()) {
                    continue;
                }
                if let Some(action) = self
                    .task_action(&job, &member, &hello.agent_id, now)
                    .await?
                {
                    tasks.push(AgentTaskRecord {
                        job: job.clone(),
                        member_name: member.member_name,
                        action,
                    });
                }
            }
        }
        Ok(tasks)
    }

    /// What the agent `agent` is to do with `member` now, claiming it to apply.
    async fn task_action(
        &self,
        job: &RestoreJobRecord,
        member: &RestoreMemberRecord,
        agent: &str,
        now: UnixSeconds,
    ) -> DomainResult<Option<TaskAction>> {
        let held = member.agent_id.as_deref() == Some(agent);
        let holds_data = matches!(member.state, MemberState::Applying | MemberState::Applied);
        Ok(match job.status {
            JobStatus::InProgress => match member.state {
                MemberState::Pending | MemberState::Applying
                    if self
                        .meta
                        .claim_member(job.id, &member.member_name, agent, now)
                        .await? =>
                {
                    Some(TaskAction::Apply)
                }
                _ => None,
            },
            JobStatus::Finished if held && holds_data => Some(TaskAction::Commit),
            JobStatus::Broken | JobStatus::Killed if held && holds_data => {
                Some(TaskAction::Rollback)
            }
            _ => None,
        })
    }

    /// Records an agent's report for one (job, member) and settles the job; returns the
    /// job's status afterwards, so an agent learns at once that it was cancelled.
    pub async fn agent_report(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        report: &rewind_api_types::agent::MemberReport,
    ) -> DomainResult<JobStatus> {
        check_name("agentId", &report.agent_id)?;
        check_name("memberName", &report.member_name)?;
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let job_id = JobId::parse(&report.job_id).ok_or_else(|| {
            invalid(
                "jobId",
                format!(
                    "Invalid attribute jobId specified: {:?} is not a 24-hex id.",
                    report.job_id
                ),
            )
        })?;
        let job = self
            .meta
            .get_job_by_id(job_id)
            .await?
            .filter(|j| {
                matches!(j.method, DeliveryMethod::Automated { target_group, target_cluster }
                    if target_group == group && target_cluster == cluster)
            })
            .ok_or_else(|| {
                DomainError::rejected(
                    ErrorCode::RestoreJobNotFound,
                    format!("No automated restore job with ID {job_id} targets cluster {cluster}."),
                    vec![job_id.to_hex()],
                )
            })?;
        if report.state == MemberState::Pending {
            return Err(invalid(
                "state",
                "Invalid attribute state specified: an agent cannot report PENDING.",
            ));
        }
        let now = self.clock.now();
        let recorded = self
            .meta
            .report_member(
                job.id,
                &report.member_name,
                &report.agent_id,
                &MemberUpdate {
                    state: report.state,
                    progress_bytes: report.progress_bytes,
                    failure: report.reason.as_deref(),
                },
                now,
            )
            .await?;
        if !recorded {
            return Err(DomainError::rejected(
                ErrorCode::RestoreMemberNotClaimed,
                format!(
                    "Agent {} does not hold member {} of restore job {job_id}.",
                    report.agent_id, report.member_name
                ),
                vec![report.agent_id.clone(), report.member_name.clone()],
            ));
        }
        tracing::info!(job.id = %job.id, member = %report.member_name, state = report.state.as_str(), progress_bytes = report.progress_bytes, "agent report");
        let status = self.settle_agent_job(&job).await?;
        self.agent_news.notify_waiters();
        Ok(status)
    }

    /// Derives a job's status from its members: BROKEN when one failed, FINISHED when all
    /// applied. Returns the status it has afterwards.
    async fn settle_agent_job(&self, job: &RestoreJobRecord) -> DomainResult<JobStatus> {
        let members = self.meta.job_members(job.id).await?;
        let now = self.clock.now();
        let failed = members.iter().find(|m| m.state == MemberState::Failed);
        let verdict = if let Some(m) = failed {
            Some((
                JobStatus::Broken,
                Some(format!(
                    "member {} failed: {}",
                    m.member_name,
                    m.failure.as_deref().unwrap_or("no reason given")
                )),
            ))
        } else if !members.is_empty()
            && members
                .iter()
                .all(|m| matches!(m.state, MemberState::Applied | MemberState::Committed))
        {
            Some((JobStatus::Finished, None))
        } else {
            None
        };
        if let Some((status, reason)) = verdict {
            if self
                .meta
                .settle_job(job.id, status, reason.as_deref(), now)
                .await?
            {
                match &reason {
                    Some(reason) => {
                        tracing::error!(job.id = %job.id, reason, "automated restore broken")
                    }
                    None => tracing::info!(job.id = %job.id, "automated restore finished"),
                }
            }
        }
        let current = self.meta.get_job_by_id(job.id).await?;
        Ok(current.map_or(job.status, |j| j.status))
    }

    /// Breaks automated jobs whose agents stay silent longer than `timeout`; returns how
    /// many broke. Plans ready jobs that no agent has polled for yet, so the timeout runs.
    pub async fn break_silent_agent_jobs(&self, timeout: Duration) -> DomainResult<usize> {
        let now = self.clock.now();
        let limit = now - timeout.as_secs() as i64;
        let mut broken = 0;
        for job in self.meta.automated_jobs_in_progress().await? {
            if !matches!(
                job.delivery_status,
                DeliveryStatus::Ready | DeliveryStatus::Interrupted
            ) {
                continue;
            }
            let rs = match self.job_target_replica_set(&job).await {
                Ok(rs) => rs,
                Err(err) => {
                    tracing::warn!(job.id = %job.id, error = %err, "automated restore has no target replica set");
                    continue;
                }
            };
            let planned_at = self.plan_agent_job(&job, &rs, timeout).await?;
            let members = self.meta.job_members(job.id).await?;
            let rs_name = rs.replica_set_name.as_deref().unwrap_or_default();
            let reason = if members.is_empty() && planned_at < limit {
                Some(format!(
                    "no agent serves replica set {rs_name}: none reported within {} s",
                    timeout.as_secs()
                ))
            } else {
                members
                    .iter()
                    .find(|m| {
                        matches!(m.state, MemberState::Pending | MemberState::Applying)
                            && m.updated < limit
                    })
                    .map(|m| {
                        format!(
                            "the agent of member {} of replica set {rs_name} did not report within {} s",
                            m.member_name,
                            timeout.as_secs()
                        )
                    })
            };
            if let Some(reason) = reason {
                if self
                    .meta
                    .settle_job(job.id, JobStatus::Broken, Some(&reason), now)
                    .await?
                {
                    tracing::error!(job.id = %job.id, reason, "automated restore broken");
                    broken += 1;
                }
            }
        }
        if broken > 0 {
            self.agent_news.notify_waiters();
        }
        Ok(broken)
    }

    /// Where a restore job stands, for operators watching it: its preparation, and the
    /// members of an automated restore with what their agents have downloaded.
    pub async fn restore_progress(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> DomainResult<RestoreProgress> {
        let job = self.get_restore(principal, group, cluster, id).await?;
        let members = self.meta.job_members(job.id).await?;
        let recorded = self
            .meta
            .preparation_progress(job.id)
            .await?
            .unwrap_or_default();
        Ok(RestoreProgress::of(job, members, recorded))
    }
    /// Cancels a restore job (and the rest of its batch): KILLED. Agents roll back the
    /// members they applied. A job that already ended cannot be cancelled.
    pub async fn cancel_restore(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: JobId,
    ) -> DomainResult<RestoreJobRecord> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let job = self.get_restore(principal, group, cluster, id).await?;
        if job.status != JobStatus::InProgress {
            return Err(DomainError::rejected(
                ErrorCode::CannotCancelRestoreJob,
                format!(
                    "Restore job {id} cannot be cancelled: it is already {}.",
                    job.status.as_str()
                ),
                vec![id.to_hex()],
            ));
        }
        let now = self.clock.now();
        let reason = "cancelled by an operator";
        let siblings = match job.batch_id {
            Some(batch) => {
                let all = crate::model::PageRequest {
                    offset: 0,
                    limit: u64::MAX,
                };
                self.meta
                    .list_jobs(group, cluster, Some(batch), all)
                    .await?
                    .items
            }
            None => vec![job.clone()],
        };
        for sibling in &siblings {
            if self
                .meta
                .settle_job(sibling.id, JobStatus::Killed, Some(reason), now)
                .await?
            {
                tracing::info!(job.id = %sibling.id, "restore job cancelled");
            }
        }
        self.agent_news.notify_waiters();
        self.get_restore(principal, group, cluster, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::TestProject;
    use crate::meta::conformance::{http_job, replica_set, snapshot_of, ts};

    fn replica_set_spec(name: &str) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            shards: None,
            fcv: None,
        }
    }

    #[tokio::test]
    async fn a_first_heartbeat_is_accepted_by_a_node_whose_cluster_list_predates_the_target() {
        let p = TestProject::start(replica_set_spec("rs0")).await;
        let other = p.second_node();
        // The other node has the project's cluster list cached, without the target.
        other.find_cluster(p.group, p.cluster).await.unwrap();
        let target = p
            .services
            .register_cluster(&p.principal, p.group, &replica_set_spec("rs1"))
            .await
            .unwrap()[0]
            .id;
        let hello = AgentHello {
            agent_id: "host0".into(),
            members: vec!["node0:27017".into()],
            replica_set_name: "rs1".into(),
        };
        other
            .agent_heartbeat(&p.principal, p.group, target, &hello)
            .await
            .unwrap();
        let found = other
            .get_cluster(&p.principal, p.group, target)
            .await
            .unwrap();
        assert_eq!(found.cluster_name, "rs1");
        // A cluster that exists nowhere is still missing.
        let missing = other.find_cluster(p.group, ClusterId::generate()).await;
        assert_eq!(missing.unwrap_err().code(), ErrorCode::ClusterNotFound);
    }

    fn job() -> RestoreJobRecord {
        let cluster = replica_set(GroupId::generate(), "c");
        http_job(&snapshot_of(&cluster, ts(10, 0), &["rs0"]), 5)
    }

    fn member(name: &str, bytes: u64) -> RestoreMemberRecord {
        RestoreMemberRecord {
            job_id: JobId::generate(),
            member_name: name.into(),
            state: MemberState::Applying,
            agent_id: Some("a".into()),
            progress_bytes: bytes,
            failure: None,
            updated: 0,
        }
    }

    #[test]
    fn a_job_being_prepared_shows_the_recorded_figures() {
        let recorded = PreparationProgress {
            prepared_bytes: 40,
            planned_bytes: Some(100),
        };
        let shown = RestoreProgress::of(job(), vec![], recorded);
        assert_eq!(
            (shown.prepared_bytes, shown.expected_bytes),
            (40, Some(100))
        );
        assert_eq!(shown.delivered_bytes, None, "HTTP delivery has no figure");
    }

    #[test]
    fn a_prepared_archive_counts_whole_and_members_add_up() {
        let automated = RestoreJobRecord {
            archive_bytes: Some(120),
            method: DeliveryMethod::Automated {
                target_group: GroupId::generate(),
                target_cluster: ClusterId::generate(),
            },
            ..job()
        };
        let recorded = PreparationProgress {
            prepared_bytes: 90,
            planned_bytes: Some(120),
        };
        let members = vec![member("a:1", 30), member("b:1", 120)];
        let shown = RestoreProgress::of(automated, members, recorded);
        assert_eq!(
            (shown.prepared_bytes, shown.expected_bytes),
            (120, Some(120))
        );
        assert_eq!(shown.delivered_bytes, Some(150));
    }
}
