//! Task leases: the periodic background tasks (the retention sweeper with its garbage
//! collection, the checkpointer, the agent monitor) run on every node that runs background
//! work, and each pass runs only on the node holding that task's lease, so several nodes
//! never sweep, collect or break jobs at the same time.
//!
//! A lease lasts a fixed time unless renewed; its holder renews it while it runs passes. A
//! node that dies stops renewing, and another node takes the task over once the lease ran
//! out: at most the lease's duration (plus a second of clock resolution) after its last
//! renewal.

use std::time::Duration;

use super::{DomainResult, Services};
use crate::meta::LeaseToken;

/// The periodic tasks held by a lease, each under its own name in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Retention, link expiry and garbage collection of chunks, packs and oplog slices.
    Sweeper,
    Checkpointer,
    AgentMonitor,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Sweeper => "sweeper",
            Task::Checkpointer => "checkpointer",
            Task::AgentMonitor => "agent-monitor",
        }
    }
}

impl Services {
    /// Takes or renews `task`'s lease for `holder` for `lease`; `None` while another node
    /// holds it.
    pub async fn hold_task_lease(
        &self,
        task: Task,
        holder: &str,
        lease: Duration,
    ) -> DomainResult<Option<LeaseToken>> {
        let now = self.clock.now();
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        Ok(self
            .meta
            .hold_task_lease(task.name(), holder, now, until)
            .await?)
    }

    /// Gives `task`'s lease up at once (a node stopping), so that another node need not
    /// wait for it to run out; `false` when `token` was no longer the current grant.
    pub async fn release_task_lease(
        &self,
        task: Task,
        holder: &str,
        token: LeaseToken,
    ) -> DomainResult<bool> {
        Ok(self
            .meta
            .release_task_lease(task.name(), holder, token)
            .await?)
    }
}
