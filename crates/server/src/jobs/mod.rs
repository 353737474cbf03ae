//! Background work: the retention sweeper and garbage collector, the restore worker, the
//! agent monitor and the checkpointer. Every task watches one shutdown signal and exits promptly when it flips.

pub mod agent_monitor;
pub mod checkpointer;
pub mod sweeper;
pub mod worker;

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
