//! [`RestoreMeta`](crate::meta::RestoreMeta)'s download accounting: one conditional update
//! of a link's ledger decides each download, and links past their expiry are found.
//! The rules (when a download may start, what a resume may resend) are the domain's; the
//! store only has to compare and set atomically.

use std::sync::Arc;

use super::{http_job, race, seed_cluster, seed_snapshot};
use crate::meta::MetaStore;
use crate::model::{
    DeliveryLedger, DeliveryMethod, DeliveryStatus, JobStatus, RestoreJobRecord, SnapshotRecord,
    UnixSeconds,
};

/// A finished HTTP job whose link is `status`, expiring at `expires`, stored.
async fn seed_link(
    meta: &dyn MetaStore,
    snapshot: &SnapshotRecord,
    status: DeliveryStatus,
    expires: UnixSeconds,
) -> RestoreJobRecord {
    let job = RestoreJobRecord {
        status: JobStatus::Finished,
        delivery_status: status,
        method: DeliveryMethod::Http {
            max_downloads: 3,
            expiration_hours: None,
        },
        expires: Some(expires),
        finished_at: Some(50),
        ..http_job(snapshot, 10)
    };
    meta.insert_jobs(std::slice::from_ref(&job)).await.unwrap();
    job
}

async fn seed_snapshot_of_a_cluster(meta: &dyn MetaStore) -> SnapshotRecord {
    let cluster = seed_cluster(meta).await;
    seed_snapshot(meta, &cluster, 100).await
}

async fn ledger_of(meta: &dyn MetaStore, job: &RestoreJobRecord) -> DeliveryLedger {
    meta.get_job_by_id(job.id)
        .await
        .unwrap()
        .expect("a stored job")
        .ledger()
}

pub async fn a_ledger_is_replaced_only_over_the_ledger_it_was_expected_to_be(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_link(meta, &snapshot, DeliveryStatus::Ready, 10_000).await;
    let fresh = ledger_of(meta, &job).await;
    assert_eq!(
        fresh,
        DeliveryLedger {
            status: DeliveryStatus::Ready,
            downloads_started: 0,
            downloads_completed: 0,
            resume_offset: None,
            resent_bytes: 0,
        }
    );
    let next = DeliveryLedger {
        status: DeliveryStatus::Interrupted,
        downloads_started: 2,
        downloads_completed: 1,
        resume_offset: Some(5_000_000_000),
        resent_bytes: 77,
    };
    let stale = DeliveryLedger {
        downloads_started: 1,
        ..fresh
    };
    assert!(!meta.update_delivery(job.id, &stale, &next).await.unwrap());
    assert_eq!(
        ledger_of(meta, &job).await,
        fresh,
        "a stale ledger changes nothing"
    );
    assert!(meta.update_delivery(job.id, &fresh, &next).await.unwrap());
    assert_eq!(ledger_of(meta, &job).await, next, "every field reads back");
    assert!(
        !meta.update_delivery(job.id, &fresh, &next).await.unwrap(),
        "the same update applies once"
    );
    let missing = crate::ids::JobId::generate();
    assert!(!meta.update_delivery(missing, &next, &fresh).await.unwrap());
}

pub async fn no_resume_point_and_a_resume_point_at_zero_are_told_apart(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_link(meta, &snapshot, DeliveryStatus::Ready, 10_000).await;
    let none = ledger_of(meta, &job).await;
    let at_zero = DeliveryLedger {
        resume_offset: Some(0),
        ..none
    };
    assert!(
        !meta.update_delivery(job.id, &at_zero, &none).await.unwrap(),
        "no point is not a point at byte 0"
    );
    assert!(meta.update_delivery(job.id, &none, &at_zero).await.unwrap());
    assert!(!meta.update_delivery(job.id, &none, &at_zero).await.unwrap());
    assert_eq!(ledger_of(meta, &job).await.resume_offset, Some(0));
}

/// Twenty transfers race for a link of three downloads, each deciding as the domain does:
/// read the ledger, take a download if one remains, retry when another transfer moved the
/// ledger first.
pub async fn racing_download_starts_spend_a_budget_of_three_exactly_three_times(
    meta: Arc<dyn MetaStore>,
) {
    const BUDGET: u32 = 3;
    let snapshot = seed_snapshot_of_a_cluster(meta.as_ref()).await;
    let job = seed_link(meta.as_ref(), &snapshot, DeliveryStatus::Ready, 10_000).await;
    let id = job.id;
    let started = race(&meta, 20, move |meta, _| async move {
        loop {
            let ledger = meta.get_job_by_id(id).await.unwrap().unwrap().ledger();
            if ledger.downloads_started >= BUDGET {
                return false;
            }
            let next = DeliveryLedger {
                downloads_started: ledger.downloads_started + 1,
                ..ledger
            };
            if meta.update_delivery(id, &ledger, &next).await.unwrap() {
                return true;
            }
        }
    })
    .await;
    assert_eq!(started.iter().filter(|s| **s).count(), 3, "{started:?}");
    assert_eq!(
        ledger_of(meta.as_ref(), &job).await.downloads_started,
        BUDGET
    );
}

pub async fn links_past_expiry_are_listed_by_status_oldest_expiry_first(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let late = seed_link(meta, &snapshot, DeliveryStatus::Ready, 300).await;
    let early = seed_link(meta, &snapshot, DeliveryStatus::Interrupted, 100).await;
    let spent = seed_link(meta, &snapshot, DeliveryStatus::MaxDownloadsExceeded, 100).await;
    let middle = seed_link(meta, &snapshot, DeliveryStatus::Ready, 200).await;
    let live = [DeliveryStatus::Ready, DeliveryStatus::Interrupted];
    let listed = |now, limit| async move {
        let jobs = meta.links_expired_by(now, &live, limit).await.unwrap();
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(listed(99, 10).await, vec![]);
    assert_eq!(
        listed(200, 10).await,
        vec![early.id, middle.id],
        "expiry at `now` is due"
    );
    assert_eq!(listed(1_000, 2).await, vec![early.id, middle.id]);
    assert_eq!(listed(1_000, 10).await, vec![early.id, middle.id, late.id]);
    let spent_ones = meta
        .links_expired_by(1_000, &[DeliveryStatus::MaxDownloadsExceeded], 10)
        .await
        .unwrap();
    assert_eq!(spent_ones.len(), 1);
    assert_eq!(spent_ones[0].id, spent.id);
    assert!(meta
        .links_expired_by(1_000, &[], 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_spent_link_holds_its_snapshot_while_a_transfer_or_a_resume_remains(
    meta: &dyn MetaStore,
) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_link(
        meta,
        &snapshot,
        DeliveryStatus::MaxDownloadsExceeded,
        10_000,
    )
    .await;
    let in_use = || async {
        meta.snapshot_has_active_jobs(snapshot.id, 500)
            .await
            .unwrap()
    };
    assert!(!in_use().await, "a spent link with nothing under way");
    let mut ledger = ledger_of(meta, &job).await;
    for (next, holds, what) in [
        (
            DeliveryLedger {
                downloads_started: 1,
                ..ledger
            },
            true,
            "a transfer is under way",
        ),
        (
            DeliveryLedger {
                downloads_started: 1,
                downloads_completed: 1,
                ..ledger
            },
            false,
            "it ended",
        ),
        (
            DeliveryLedger {
                downloads_started: 1,
                downloads_completed: 1,
                resume_offset: Some(9),
                ..ledger
            },
            true,
            "it may still be resumed",
        ),
    ] {
        assert!(meta.update_delivery(job.id, &ledger, &next).await.unwrap());
        ledger = next;
        assert_eq!(in_use().await, holds, "{what}");
    }
    assert!(
        !meta
            .snapshot_has_active_jobs(snapshot.id, 10_000)
            .await
            .unwrap(),
        "not past its expiry"
    );
}

mod tests {
    contract_tests!(
        a_ledger_is_replaced_only_over_the_ledger_it_was_expected_to_be,
        no_resume_point_and_a_resume_point_at_zero_are_told_apart,
        links_past_expiry_are_listed_by_status_oldest_expiry_first,
        a_spent_link_holds_its_snapshot_while_a_transfer_or_a_resume_remains,
    );
    contract_tests!(concurrent: racing_download_starts_spend_a_budget_of_three_exactly_three_times);
}
