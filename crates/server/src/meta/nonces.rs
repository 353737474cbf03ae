//! The Digest replay ledger: which counters of which nonces were already used, shared by
//! every node that uses the store.

use async_trait::async_trait;

use super::MetaResult;
use crate::model::UnixSeconds;

/// One use of a Digest nonce: the nonce (by its expiry and its random bits, which tell apart
/// the nonces that expire in one second) and the counter (`nc`) the client sent with it.
///
/// The expiry is part of the nonce, written by the node that issued it, so every node
/// records a given header under the same key, and old uses are forgotten in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceUse {
    pub expires: UnixSeconds,
    pub tag: i64,
    pub nc: u32,
}

#[async_trait]
pub trait NonceMeta: Send + Sync + 'static {
    /// Records `nonce_use`. Returns `true` when it was never recorded before, `false` when
    /// it was (a replayed header). Of concurrent recorders of one use, on any node, exactly
    /// one gets `true`.
    async fn record_nonce_use(&self, nonce_use: NonceUse) -> MetaResult<bool>;

    /// Forgets the uses of nonces that expired before `now`; returns how many. A nonce that
    /// has expired is refused before the ledger is consulted, so this loses nothing.
    async fn purge_nonce_uses(&self, now: UnixSeconds) -> MetaResult<u64>;
}
