//! Leases held by one node of several: the fencing token that every claim hands out, and
//! the leases of the periodic background tasks, so that those run on one node at a time
//! however many nodes run them.

use async_trait::async_trait;

use super::MetaResult;
use crate::model::UnixSeconds;

/// A fencing token: which grant of a lease its holder acts on. Every claim of a restore job
/// (and every grant of a task lease) stores a larger one; a write conditional on the token
/// a holder was handed matches nothing once the lease was granted again, so a node whose
/// lease lapsed cannot overwrite what the newer holder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseToken(pub i64);

#[async_trait]
pub trait TaskLeaseMeta: Send + Sync + 'static {
    /// Grants (or renews) the lease of `task` to `holder` until `until` when no other holder
    /// has it past `now`: it is free, it already is `holder`'s, or its time ran out (it is
    /// taken over). Each grant stores and returns a larger token; `None` while another
    /// holder's lease lasts. Atomic: two holders never both get it.
    async fn hold_task_lease(
        &self,
        task: &str,
        holder: &str,
        now: UnixSeconds,
        until: UnixSeconds,
    ) -> MetaResult<Option<LeaseToken>>;

    /// Ends `holder`'s grant `token` of `task` at once, so another holder may take it
    /// without waiting for it to run out; `false` (and nothing changes) when that grant is
    /// no longer the current one.
    async fn release_task_lease(
        &self,
        task: &str,
        holder: &str,
        token: LeaseToken,
    ) -> MetaResult<bool>;
}
