//! Background work: the retention sweeper and garbage collector, the restore worker, the
//! agent monitor and the checkpointer. Every task watches one shutdown signal and exits promptly when it flips.

pub mod agent_monitor;
pub mod checkpointer;
pub mod lease;
pub mod sweeper;
pub mod worker;

use std::time::Duration;

/// Default of how long a node's lease on a restore job or a background task lasts
/// unrenewed. Its holder renews every third of it, so a live node keeps it through two
/// missed renewals; a node that died holds it up to this long (plus a second of clock
/// resolution) before another takes the work over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// Shortest lease accepted: renewals every third of it, at least a second apart.
pub const MIN_LEASE: Duration = Duration::from_secs(3);
/// Longest lease accepted.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// The shared shutdown signal: `true` once the server is stopping.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

/// Sleeps for `period`, returning early (`false`) when shutdown is requested.
pub async fn sleep_or_shutdown(period: std::time::Duration, shutdown: &mut Shutdown) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = shutdown.changed() => false,
    }
}
