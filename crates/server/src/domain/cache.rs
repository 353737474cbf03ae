//! A small read-through cache with a time-to-live, for metadata read on every request
//! (keys, projects, cluster lists) and written rarely.
//!
//! Writes made through this node invalidate entries at once; writes made on another node
//! become visible within the TTL of their commit (entries age from the start of their load). A plain `std::sync::Mutex` suffices: the critical
//! sections are map lookups and never await.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    /// Entries kept before expired ones are swept out.
    sweep_above: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, sweep_above: usize) -> Self {
        TtlCache {
            ttl,
            sweep_above,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // No operation under this lock can leave the map half-updated, so a poisoned lock
        // is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, or the one `load` produces (which is then cached).
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some((at, value)) = self.lock().get(key) {
            if at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        // Aged from before the load, not after: what it reads holds every change committed
        // before it started, so an entry that misses a change (committed on another node)
        // started before that commit and expires within the TTL of it, however long the
        // load took.
        let started = Instant::now();
        let value = load.await?;
        let mut entries = self.lock();
        if entries.len() >= self.sweep_above {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key.clone(), (started, value.clone()));
        Ok(value)
    }

    /// Forgets a key, so the next read loads it afresh.
    pub fn invalidate(&self, key: &K) {
        self.lock().remove(key);
    }
}
