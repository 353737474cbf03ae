//! The agent monitor: breaks automated restores whose agents stay silent for longer than
//! the agent timeout. Its own task rather than a sweeper pass, so that the timeout is
//! honoured within seconds whatever the sweep interval.

use std::sync::Arc;
use std::time::Duration;

use super::lease::TaskLease;
use super::{sleep_or_shutdown, Shutdown};
use crate::domain::Services;

/// Shortest and longest pause between two checks.
const MIN_TICK: Duration = Duration::from_secs(1);
const MAX_TICK: Duration = Duration::from_secs(10);

pub struct AgentMonitor {
    services: Arc<Services>,
    timeout: Duration,
}

impl AgentMonitor {
    pub fn new(services: Arc<Services>, timeout: Duration) -> Self {
        AgentMonitor { services, timeout }
    }

    /// Checks every quarter of the timeout (1 to 10 s) until shutdown, while `lease` is
    /// held: one node of several breaks jobs at a time.
    pub async fn run(self, mut lease: TaskLease, mut shutdown: Shutdown) {
        let tick = (self.timeout / 4).clamp(MIN_TICK, MAX_TICK);
        loop {
            let pass = self.services.break_silent_agent_jobs(self.timeout);
            if let Some(Err(err)) = lease.run(pass).await {
                tracing::error!(error = %err, "agent monitor pass failed");
            }
            if !sleep_or_shutdown(tick, &mut shutdown).await {
                lease.release().await;
                return;
            }
        }
    }
}
