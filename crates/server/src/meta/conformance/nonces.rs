//! [`NonceMeta`](crate::meta::NonceMeta): the Digest replay ledger.

use std::sync::Arc;

use super::race;
use crate::meta::{MetaStore, NonceUse};

/// Expiries are counted from here, decades ahead, so that a backend's own purge of what
/// expired by the wall clock leaves the contracts' uses alone.
const LATER: i64 = 4_000_000_000;

fn nonce_use(expires: i64, tag: i64, nc: u32) -> NonceUse {
    NonceUse {
        expires: LATER + expires,
        tag,
        nc,
    }
}

pub async fn a_nonce_use_is_recorded_once(meta: &dyn MetaStore) {
    let first = nonce_use(1_000, -7, 1);
    assert!(meta.record_nonce_use(first).await.unwrap(), "a new use");
    assert!(
        !meta.record_nonce_use(first).await.unwrap(),
        "the same nonce and nc again is a replay"
    );
    for other in [
        nonce_use(1_000, -7, 2),
        nonce_use(1_000, 8, 1),
        nonce_use(1_001, -7, 1),
        nonce_use(1_000, -7, u32::MAX),
    ] {
        assert!(
            meta.record_nonce_use(other).await.unwrap(),
            "{other:?} differs from {first:?} and is new"
        );
    }
    assert!(!meta.record_nonce_use(first).await.unwrap());
}

pub async fn racing_recorders_of_one_use_let_exactly_one_win(meta: Arc<dyn MetaStore>) {
    const USES: u32 = 4;
    // Every racer records the same four uses, in an order of its own, so that the backend's
    // batches overlap in every way.
    let won = race(&meta, 12, |meta, i| async move {
        let mut won = Vec::new();
        for k in 0..USES {
            let nc = (k + i as u32) % USES + 1;
            if meta
                .record_nonce_use(nonce_use(5_000, 42, nc))
                .await
                .unwrap()
            {
                won.push(nc);
            }
        }
        won
    })
    .await;
    let mut winners: Vec<u32> = won.into_iter().flatten().collect();
    winners.sort_unstable();
    assert_eq!(
        winners,
        (1..=USES).collect::<Vec<_>>(),
        "each use has exactly one winner"
    );
}

pub async fn expired_uses_are_forgotten_and_the_others_kept(meta: &dyn MetaStore) {
    let old = nonce_use(100, 1, 1);
    let current = nonce_use(200, 2, 1);
    let ends_now = nonce_use(150, 3, 1);
    for u in [old, current, ends_now] {
        assert!(meta.record_nonce_use(u).await.unwrap());
    }
    assert_eq!(
        meta.purge_nonce_uses(LATER + 150).await.unwrap(),
        1,
        "only the use of the nonce that expired before now is forgotten"
    );
    assert!(
        !meta.record_nonce_use(current).await.unwrap(),
        "an unexpired nonce's use is still known"
    );
    assert!(
        !meta.record_nonce_use(ends_now).await.unwrap(),
        "a nonce valid until this very second is still known"
    );
    assert!(
        meta.record_nonce_use(old).await.unwrap(),
        "the expired use was forgotten"
    );
    assert_eq!(meta.purge_nonce_uses(LATER + 1_000).await.unwrap(), 3);
    assert_eq!(meta.purge_nonce_uses(LATER + 1_000).await.unwrap(), 0);
}

mod tests {
    contract_tests!(
        a_nonce_use_is_recorded_once,
        expired_uses_are_forgotten_and_the_others_kept,
    );
    contract_tests!(concurrent: racing_recorders_of_one_use_let_exactly_one_win);
}
