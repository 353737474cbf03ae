//! The Digest replay ledger: the rule that one nonce's counter is used once.
//!
//! Where the ledger lives decides which nonces a node may accept:
//! - **In this process's memory**, over the embedded store: an SQLite store is served by
//!   one process (several nodes need a database server), so the process that issued a
//!   nonce is the only one that can see it used. Nonces carry their issuer's random epoch,
//!   and one from another process (a node before its restart) is answered stale: the
//!   ledger that knew its counters is gone. No write per request.
//! - **In the metadata store**, over PostgreSQL: every node records every use there, so a
//!   nonce issued by one node is accepted by all of them, and a header used at one node is
//!   refused by every other, across restarts too. One batched insert per request (see the
//!   PostgreSQL backend's `nonces` module).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::DomainResult;
use crate::meta::{MetaStore, NonceUse};
use crate::model::UnixSeconds;

/// Nonces tracked in memory before expired ones are swept out.
const SWEEP_THRESHOLD: usize = 100_000;

pub enum ReplayLedger {
    /// The highest counter seen with each unexpired nonce, in this process.
    Process(Mutex<HashMap<(UnixSeconds, i64), u32>>),
    /// Every use of every unexpired nonce, in the store all nodes share.
    Shared(Arc<dyn MetaStore>),
}

impl ReplayLedger {
    /// A ledger in this process's memory.
    pub fn in_process() -> Self {
        ReplayLedger::Process(Mutex::new(HashMap::new()))
    }

    /// The ledger of nodes sharing `meta`.
    pub fn shared(meta: Arc<dyn MetaStore>) -> Self {
        ReplayLedger::Shared(meta)
    }

    /// Whether other processes record into (and see) this ledger, so that their nonces
    /// may be accepted here.
    pub fn is_shared(&self) -> bool {
        matches!(self, ReplayLedger::Shared(_))
    }

    /// Records a use of a nonce that was verified unexpired at `now`. `false`: a replay.
    ///
    /// The in-process ledger refuses any counter not above the highest one seen (RFC
    /// 7616's rule, one number per nonce). The shared one refuses a counter already used:
    /// requests with one nonce may reach different nodes out of order, and a counter never
    /// used cannot be a replay (its response needs the key).
    pub async fn record(&self, nonce_use: NonceUse, now: UnixSeconds) -> DomainResult<bool> {
        match self {
            ReplayLedger::Process(seen) => {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() >= SWEEP_THRESHOLD {
                    seen.retain(|(expires, _), _| *expires >= now);
                }
                match seen.get_mut(&(nonce_use.expires, nonce_use.tag)) {
                    Some(last) if nonce_use.nc <= *last => Ok(false),
                    Some(last) => {
                        *last = nonce_use.nc;
                        Ok(true)
                    }
                    None => {
                        seen.insert((nonce_use.expires, nonce_use.tag), nonce_use.nc);
                        Ok(true)
                    }
                }
            }
            ReplayLedger::Shared(meta) => Ok(meta.record_nonce_use(nonce_use).await?),
        }
    }
}
