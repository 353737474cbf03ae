//! `rewind agent`: applies automated restores to the members of one replica set on this
//! host. It long-polls the server for (job, member) tasks and, per member: stops it,
//! downloads the archive (resuming with `Range`) while unpacking it into a staging
//! directory, verifies the SHA-1, swaps the staging directory in with renames (keeping
//! the previous data), starts the member and reports. Any failure puts the previous data back. A journal beside each
//! `dbpath` lets a restarted agent resume or roll back instead of leaving a half swap.

pub mod apply;
pub mod config;
mod unpack;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rewind_api_types::agent::{
    AgentHello, AgentTask, HeartbeatAck, MemberReport, MemberState, ReportAck, TaskAction,
    WorkRequest, WorkResponse,
};

use crate::client::{ApiClient, Credentials};
use config::{AgentConfig, DEFAULT_POLL_WAIT_SECS};

/// Pause after a failed poll before the next one.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The agent's link to the server.
pub struct AgentLink {
    api: ApiClient,
    base: String,
    hello: AgentHello,
    pub http: reqwest::Client,
}

impl AgentLink {
    pub fn new(config: &AgentConfig) -> Result<AgentLink> {
        let api = ApiClient::new(Credentials {
            server: config.server.clone(),
            public_key: config.public_key.clone(),
            private_key: config.private_key.clone(),
        })?;
        Ok(AgentLink {
            api,
            base: format!(
                "/api/rewind/v1/groups/{}/clusters/{}/agents",
                config.group_id, config.cluster_id
            ),
            hello: AgentHello {
                agent_id: config.agent_id.clone(),
                members: config.members.iter().map(|m| m.name.clone()).collect(),
                replica_set_name: config.replica_set.clone(),
            },
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    pub async fn heartbeat(&self) -> Result<HeartbeatAck> {
        self.api
            .post_json(&format!("{}/heartbeat", self.base), &self.hello)
            .await
    }

    pub async fn poll(&self, wait_secs: u64) -> Result<Vec<AgentTask>> {
        let request = WorkRequest {
            hello: self.hello.clone(),
            wait_secs,
        };
        let response: WorkResponse = self
            .api
            .post_json(&format!("{}/work", self.base), &request)
            .await?;
        Ok(response.tasks)
    }

    /// Reports a member's state; returns the job's `statusName`.
    pub async fn report(
        &self,
        task: &AgentTask,
        state: MemberState,
        progress_bytes: u64,
        reason: Option<String>,
    ) -> Result<String> {
        let report = MemberReport {
            agent_id: self.hello.agent_id.clone(),
            job_id: task.job_id.clone(),
            member_name: task.member_name.clone(),
            progress_bytes,
            reason,
            state,
        };
        let ack: ReportAck = self
            .api
            .post_json(&format!("{}/reports", self.base), &report)
            .await?;
        Ok(ack.status_name)
    }

    /// Reports an outcome, retrying until the server takes it (it may be restarting).
    pub async fn report_until_taken(
        &self,
        task: &AgentTask,
        state: MemberState,
        progress_bytes: u64,
        reason: Option<String>,
    ) {
        for attempt in 1u32.. {
            match self
                .report(task, state, progress_bytes, reason.clone())
                .await
            {
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(job.id = %task.job_id, member = %task.member_name, attempt, error = %err, "report not taken; retrying");
                    tokio::time::sleep(
                        RETRY_PAUSE.min(Duration::from_millis(200 * u64::from(attempt))),
                    )
                    .await;
                    if attempt >= 300 {
                        return;
                    }
                }
            }
        }
    }
}

/// Runs the agent until the process is stopped.
pub async fn run(config: AgentConfig) -> Result<()> {
    let link = Arc::new(AgentLink::new(&config)?);
    let wait = config.poll_wait_secs.unwrap_or(DEFAULT_POLL_WAIT_SECS);
    match link.heartbeat().await {
        Ok(ack) => {
            tracing::info!(agent = %config.agent_id, last_heartbeat = %ack.last_heartbeat, "agent registered")
        }
        Err(err) => tracing::warn!(error = %err, "first heartbeat failed; polling will retry"),
    }
    loop {
        let tasks = match link.poll(wait).await {
            Ok(tasks) => tasks,
            Err(err) => {
                tracing::warn!(error = %err, "poll for work failed");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        for task in tasks {
            let Some(member) = config.members.iter().find(|m| m.name == task.member_name) else {
                continue;
            };
            tracing::info!(job.id = %task.job_id, member = %task.member_name, action = ?task.action, "task");
            match task.action {
                TaskAction::Apply => apply::apply(&link, member, &task).await,
                TaskAction::Commit => apply::commit(&link, member, &task).await,
                TaskAction::Rollback => apply::rollback(&link, member, &task).await,
            }
        }
    }
}
