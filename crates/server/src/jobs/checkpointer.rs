//! The checkpointer: records the checkpoints of sharded clusters (FCV 4.0 or earlier) once
//! their stored oplog reaches past them, and deletes those that left the point-in-time
//! window (see [`crate::domain::checkpoints`]).
//!
//! Its own task rather than a sweeper pass: it runs every few seconds and right after a
//! push stored oplog, so a checkpoint appears soon after the oplog that proves it, while the
//! sweeper's chunk collection stays on its slower schedule. A pass reads only metadata unless
//! a checkpoint is due, and recording is idempotent, so extra passes (or passes on several
//! nodes at once) cost little and change nothing.

use std::sync::Arc;
use std::time::Duration;

use super::lease::TaskLease;
use super::{sleep_or_shutdown, Shutdown};
use crate::domain::Services;

/// Default pause between two passes.
pub const DEFAULT_CHECKPOINT_PASS_INTERVAL: Duration = Duration::from_secs(30);
/// The debug line each finished pass logs.
pub const PASS_FINISHED: &str = "checkpoint pass finished";
/// Shortest pause between two passes, however often oplog is pushed.
const MIN_PAUSE: Duration = Duration::from_secs(1);

pub struct Checkpointer {
    services: Arc<Services>,
}

impl Checkpointer {
    pub fn new(services: Arc<Services>) -> Self {
        Checkpointer { services }
    }

    /// Runs a pass every `interval`, or sooner after a push, until shutdown, while `lease`
    /// is held. A failing pass is logged and retried.
    ///
    /// A push on a node that does not hold the lease wakes only that node's checkpointer,
    /// which finds the lease held elsewhere: the holder records the checkpoint on its next
    /// pass, within `interval`.
    pub async fn run(self, interval: Duration, mut lease: TaskLease, mut shutdown: Shutdown) {
        let pause = MIN_PAUSE.min(interval);
        loop {
            let now = self.services.clock.now();
            match lease.run(self.services.record_checkpoints(now)).await {
                None => {}
                Some(Ok(pass)) => {
                    if pass.recorded + pass.deleted > 0 {
                        tracing::info!(
                            checkpoints_recorded = pass.recorded,
                            checkpoints_deleted = pass.deleted,
                            "checkpoint pass"
                        );
                    }
                    // Every pass, at debug level: shows an operator (or a test) that
                    // passes run even when they find nothing to do.
                    tracing::debug!("{PASS_FINISHED}");
                }
                Some(Err(err)) => tracing::error!(error = %err, "checkpoint pass failed"),
            }
            if !sleep_or_shutdown(pause, &mut shutdown).await {
                lease.release().await;
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval.saturating_sub(pause)) => {}
                _ = self.services.oplog_stored.notified() => {}
                _ = shutdown.changed() => {
                    lease.release().await;
                    return;
                }
            }
        }
    }
}
