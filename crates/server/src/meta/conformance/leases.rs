//! [`TaskLeaseMeta`](crate::meta::TaskLeaseMeta): the leases under which one node at a time
//! runs a periodic background task.

use std::sync::Arc;

use super::race;
use crate::meta::{LeaseToken, MetaStore};

const TASK: &str = "sweeper";

pub async fn a_free_task_lease_is_granted_and_a_held_one_refused(meta: &dyn MetaStore) {
    let a = meta.hold_task_lease(TASK, "a", 10, 20).await.unwrap();
    assert!(a.is_some(), "nobody held it");
    assert_eq!(
        meta.hold_task_lease(TASK, "b", 15, 25).await.unwrap(),
        None,
        "a holds it until 20"
    );
    assert_eq!(
        meta.hold_task_lease(TASK, "b", 20, 30).await.unwrap(),
        None,
        "a holds it through second 20"
    );
    assert!(
        meta.hold_task_lease("checkpointer", "b", 15, 25)
            .await
            .unwrap()
            .is_some(),
        "another task's lease is its own"
    );
}

pub async fn the_holder_renews_its_task_lease_under_a_larger_token(meta: &dyn MetaStore) {
    let first = meta.hold_task_lease(TASK, "a", 10, 20).await.unwrap();
    let renewed = meta.hold_task_lease(TASK, "a", 15, 40).await.unwrap();
    assert!(renewed > first, "{first:?} then {renewed:?}");
    assert_eq!(
        meta.hold_task_lease(TASK, "b", 30, 50).await.unwrap(),
        None,
        "renewed until 40"
    );
}

pub async fn an_expired_task_lease_is_taken_over(meta: &dyn MetaStore) {
    let a = meta
        .hold_task_lease(TASK, "a", 10, 20)
        .await
        .unwrap()
        .expect("granted");
    let b = meta
        .hold_task_lease(TASK, "b", 21, 31)
        .await
        .unwrap()
        .expect("a's lease ran out at 20");
    assert!(b > a, "{a:?} then {b:?}");
    assert_eq!(
        meta.hold_task_lease(TASK, "a", 22, 32).await.unwrap(),
        None,
        "a lost it to b"
    );
    assert!(
        !meta.release_task_lease(TASK, "a", a).await.unwrap(),
        "a's release of a grant that is not current changes nothing"
    );
    assert_eq!(meta.hold_task_lease(TASK, "c", 25, 35).await.unwrap(), None);
}

pub async fn a_released_task_lease_is_free_for_another_holder(meta: &dyn MetaStore) {
    let a = meta
        .hold_task_lease(TASK, "a", 10, 100)
        .await
        .unwrap()
        .expect("granted");
    assert!(
        !meta.release_task_lease(TASK, "b", a).await.unwrap(),
        "only the holder releases"
    );
    assert!(
        !meta
            .release_task_lease(TASK, "a", LeaseToken(a.0 + 1))
            .await
            .unwrap(),
        "only the current grant"
    );
    assert_eq!(meta.hold_task_lease(TASK, "b", 11, 21).await.unwrap(), None);
    assert!(meta.release_task_lease(TASK, "a", a).await.unwrap());
    let b = meta
        .hold_task_lease(TASK, "b", 12, 22)
        .await
        .unwrap()
        .expect("released long before it ran out");
    assert!(
        b > a,
        "tokens keep growing across releases: {a:?} then {b:?}"
    );
}

pub async fn racing_holders_never_hold_a_task_lease_at_once(meta: Arc<dyn MetaStore>) {
    // Every round, eight holders race for the lease at the same instant, once it ran out:
    // exactly one wins each round.
    for round in 0..10i64 {
        let now = 100 * (round + 1);
        let won = race(&meta, 8, |meta, holder| async move {
            meta.hold_task_lease(TASK, &format!("holder-{holder}"), now, now + 50)
                .await
                .unwrap()
        })
        .await;
        let winners: Vec<LeaseToken> = won.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
    }
}

mod tests {
    contract_tests!(
        a_free_task_lease_is_granted_and_a_held_one_refused,
        the_holder_renews_its_task_lease_under_a_larger_token,
        an_expired_task_lease_is_taken_over,
        a_released_task_lease_is_free_for_another_holder,
    );
    contract_tests!(concurrent: racing_holders_never_hold_a_task_lease_at_once);
}
