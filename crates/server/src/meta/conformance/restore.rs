//! [`RestoreMeta`](crate::meta::RestoreMeta): restore jobs, their claims and leases, and
//! what they keep from collection. The download accounting has its own contracts.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{http_job, page, race, seed_cluster, seed_replica_set, seed_snapshot, ALL};
use crate::ids::{BatchId, ClusterId, GroupId, JobId};
use crate::meta::restore::{ClaimedJob, JobLease, PreparationProgress, PreparedOutcome};
use crate::meta::LeaseToken;
use crate::meta::MetaStore;
use crate::model::{DeliveryStatus, JobStatus, RestoreJobRecord, SnapshotRecord, UnixSeconds};

/// A project's cluster with one snapshot, taken at second 100.
async fn seed_snapshot_of_a_cluster(meta: &dyn MetaStore) -> SnapshotRecord {
    let cluster = seed_cluster(meta).await;
    seed_snapshot(meta, &cluster, 100).await
}

/// Inserts one waiting job of `snapshot` per creation time, each as its own request.
async fn seed_jobs(
    meta: &dyn MetaStore,
    snapshot: &SnapshotRecord,
    created: &[UnixSeconds],
) -> Vec<RestoreJobRecord> {
    let mut jobs = Vec::new();
    for at in created {
        let job = http_job(snapshot, *at);
        meta.insert_jobs(std::slice::from_ref(&job)).await.unwrap();
        jobs.push(job);
    }
    jobs
}

async fn by_id(meta: &dyn MetaStore, id: JobId) -> RestoreJobRecord {
    meta.get_job_by_id(id).await.unwrap().expect("a stored job")
}

fn ids(jobs: &[RestoreJobRecord]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

fn claimed_ids(claimed: &[ClaimedJob]) -> Vec<JobId> {
    claimed.iter().map(|c| c.job.id).collect()
}

async fn claim(
    meta: &dyn MetaStore,
    worker: &str,
    now: UnixSeconds,
    lease_until: UnixSeconds,
    limit: u32,
) -> Vec<JobId> {
    claimed_ids(&claim_leases(meta, worker, now, lease_until, limit).await)
}

async fn claim_leases(
    meta: &dyn MetaStore,
    worker: &str,
    now: UnixSeconds,
    lease_until: UnixSeconds,
    limit: u32,
) -> Vec<ClaimedJob> {
    meta.claim_jobs(worker, now, lease_until, limit)
        .await
        .unwrap()
}

fn leases(claimed: &[ClaimedJob]) -> Vec<JobLease> {
    claimed.iter().map(ClaimedJob::lease).collect()
}

/// Renews `leases` for `worker`; the jobs renewed, sorted.
async fn renew(
    meta: &dyn MetaStore,
    leases: &[JobLease],
    worker: &str,
    until: UnixSeconds,
) -> Vec<JobId> {
    let mut renewed = meta.renew_leases(leases, worker, until).await.unwrap();
    renewed.sort_by_key(JobId::to_hex);
    renewed
}

fn sorted(mut ids: Vec<JobId>) -> Vec<JobId> {
    ids.sort_by_key(JobId::to_hex);
    ids
}

fn ready(now: UnixSeconds) -> PreparedOutcome {
    PreparedOutcome {
        status: JobStatus::Finished,
        delivery_status: DeliveryStatus::Ready,
        archive_bytes: Some(4_096),
        archive_sha1: Some("ab".repeat(20)),
        expires: Some(now + 3_600),
        finished_at: Some(now),
        failure: None,
    }
}

fn broken(now: UnixSeconds) -> PreparedOutcome {
    PreparedOutcome {
        status: JobStatus::Broken,
        delivery_status: DeliveryStatus::Failed,
        archive_bytes: None,
        archive_sha1: None,
        expires: None,
        finished_at: Some(now),
        failure: Some("the snapshot's chunks are gone".to_owned()),
    }
}

/// A job of `snapshot` as it stands after its preparation ended, link `delivery` expiring
/// at `expires`.
fn settled_job(
    snapshot: &SnapshotRecord,
    status: JobStatus,
    delivery: DeliveryStatus,
    expires: Option<UnixSeconds>,
) -> RestoreJobRecord {
    RestoreJobRecord {
        status,
        delivery_status: delivery,
        expires,
        finished_at: Some(50),
        ..http_job(snapshot, 10)
    }
}

pub async fn a_job_is_found_by_its_cluster_or_by_id_alone(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = RestoreJobRecord {
        batch_id: Some(BatchId::generate()),
        point_in_time: true,
        expires: Some(9_000),
        ..http_job(&snapshot, 10)
    };
    meta.insert_jobs(std::slice::from_ref(&job)).await.unwrap();
    let (group, cluster) = (snapshot.group_id, snapshot.cluster_id);
    assert_eq!(
        meta.get_job(group, cluster, job.id).await.unwrap(),
        Some(job.clone())
    );
    assert_eq!(meta.get_job_by_id(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(
        meta.get_job(GroupId::generate(), cluster, job.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.get_job(group, ClusterId::generate(), job.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.get_job(group, cluster, JobId::generate())
            .await
            .unwrap(),
        None
    );
    assert_eq!(meta.get_job_by_id(JobId::generate()).await.unwrap(), None);
}

pub async fn a_batch_of_jobs_is_inserted_whole_or_not_at_all(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let first = seed_jobs(meta, &snapshot, &[10]).await.remove(0);
    meta.insert_jobs(&[]).await.unwrap();
    let (b, c) = (http_job(&snapshot, 11), http_job(&snapshot, 12));
    let clash = RestoreJobRecord {
        created: 13,
        ..first.clone()
    };
    assert!(
        meta.insert_jobs(&[b.clone(), clash, c.clone()])
            .await
            .is_err(),
        "a job id is stored once"
    );
    for job in [&b, &c] {
        assert_eq!(
            meta.get_job_by_id(job.id).await.unwrap(),
            None,
            "none of the batch"
        );
    }
    assert_eq!(
        by_id(meta, first.id).await,
        first,
        "the earlier job is untouched"
    );
}

pub async fn concurrent_requests_each_insert_their_jobs_whole(meta: Arc<dyn MetaStore>) {
    let snapshot = seed_snapshot_of_a_cluster(meta.as_ref()).await;
    let taken = seed_jobs(meta.as_ref(), &snapshot, &[1]).await.remove(0);
    // Eight requests of three jobs each; the fourth reuses a stored job's id.
    let requests: Arc<Vec<Vec<RestoreJobRecord>>> = Arc::new(
        (0..8)
            .map(|i| {
                let mut jobs: Vec<RestoreJobRecord> =
                    (0..3).map(|j| http_job(&snapshot, 10 * i + j)).collect();
                if i == 3 {
                    jobs[1].id = taken.id;
                }
                jobs
            })
            .collect(),
    );
    let racing = requests.clone();
    let outcomes = race(&meta, requests.len(), move |meta, i| {
        let racing = racing.clone();
        async move { meta.insert_jobs(&racing[i]).await.is_ok() }
    })
    .await;
    for (i, (jobs, inserted)) in requests.iter().zip(&outcomes).enumerate() {
        assert_eq!(
            *inserted,
            i != 3,
            "request {i}: only the one at fault fails"
        );
        for job in jobs.iter().filter(|j| j.id != taken.id) {
            let stored = meta.get_job_by_id(job.id).await.unwrap();
            assert_eq!(stored.as_ref(), inserted.then_some(job), "request {i}");
        }
    }
    assert_eq!(by_id(meta.as_ref(), taken.id).await, taken);
}

pub async fn a_clusters_jobs_are_listed_newest_first_by_batch_in_pages(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let singles = seed_jobs(meta, &snapshot, &[100, 300, 200]).await;
    let batch = BatchId::generate();
    let sharded: Vec<RestoreJobRecord> = [400, 401]
        .into_iter()
        .map(|at| RestoreJobRecord {
            batch_id: Some(batch),
            ..http_job(&snapshot, at)
        })
        .collect();
    meta.insert_jobs(&sharded).await.unwrap();
    let other_cluster = seed_replica_set(meta, snapshot.group_id, "other").await;
    let elsewhere = seed_snapshot(meta, &other_cluster, 100).await;
    seed_jobs(meta, &elsewhere, &[500]).await;

    let (group, cluster) = (snapshot.group_id, snapshot.cluster_id);
    let newest_first = vec![
        sharded[1].clone(),
        sharded[0].clone(),
        singles[1].clone(),
        singles[2].clone(),
        singles[0].clone(),
    ];
    let all = meta.list_jobs(group, cluster, None, ALL).await.unwrap();
    assert_eq!((all.total, all.items), (5, newest_first.clone()));
    let middle = meta
        .list_jobs(group, cluster, None, page(1, 2))
        .await
        .unwrap();
    assert_eq!(
        (middle.total, middle.items),
        (5, newest_first[1..3].to_vec())
    );
    let of_batch = meta
        .list_jobs(group, cluster, Some(batch), ALL)
        .await
        .unwrap();
    assert_eq!(
        (of_batch.total, of_batch.items),
        (2, newest_first[..2].to_vec())
    );
    let no_batch = meta
        .list_jobs(group, cluster, Some(BatchId::generate()), ALL)
        .await
        .unwrap();
    assert_eq!((no_batch.total, no_batch.items.len()), (0, 0));
    let wrong_group = meta
        .list_jobs(GroupId::generate(), cluster, None, ALL)
        .await
        .unwrap();
    assert_eq!((wrong_group.total, wrong_group.items.len()), (0, 0));
}

pub async fn workers_claim_the_oldest_waiting_jobs_first(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let jobs = seed_jobs(meta, &snapshot, &[3, 1, 2]).await;
    let done = [
        settled_job(&snapshot, JobStatus::Finished, DeliveryStatus::Ready, None),
        settled_job(&snapshot, JobStatus::Broken, DeliveryStatus::Failed, None),
        settled_job(
            &snapshot,
            JobStatus::Killed,
            DeliveryStatus::NotStarted,
            None,
        ),
    ];
    meta.insert_jobs(&done).await.unwrap();

    let first = claim_leases(meta, "w1", 10, 100, 2).await;
    assert_eq!(
        claimed_ids(&first),
        [jobs[1].id, jobs[2].id],
        "oldest first"
    );
    assert_eq!(claim(meta, "w2", 10, 100, 5).await, [jobs[0].id]);
    assert!(
        claim(meta, "w3", 10, 100, 5).await.is_empty(),
        "every waiting job is leased; the others are not waiting"
    );
}

pub async fn a_lapsed_lease_is_claimed_again_under_a_larger_token(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_jobs(meta, &snapshot, &[1]).await.remove(0);
    let first = claim_leases(meta, "w1", 10, 100, 1).await;
    assert_eq!(claimed_ids(&first), [job.id]);
    assert!(
        claim(meta, "w2", 50, 150, 1).await.is_empty(),
        "still leased"
    );
    let again = claim_leases(meta, "w2", 101, 200, 1).await;
    assert_eq!(claimed_ids(&again), [job.id]);
    // The worker gives up on a job after so many attempts: each claim is one.
    assert_eq!((first[0].job.attempts, again[0].job.attempts), (1, 2));
    assert_eq!(by_id(meta, job.id).await.attempts, 2);
    assert!(
        again[0].token > first[0].token,
        "each claim hands out a larger fencing token: {:?} then {:?}",
        first[0].token,
        again[0].token
    );
}

pub async fn only_the_lease_holder_renews_it(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let jobs = seed_jobs(meta, &snapshot, &[1, 2, 3]).await;
    let of_w1 = claim_leases(meta, "w1", 10, 100, 2).await;
    assert_eq!(claimed_ids(&of_w1), ids(&jobs[..2]));
    let of_w2 = claim_leases(meta, "w2", 10, 100, 1).await;
    assert_eq!(claimed_ids(&of_w2), [jobs[2].id]);
    let all: Vec<JobLease> = leases(&of_w1).into_iter().chain(leases(&of_w2)).collect();
    assert_eq!(
        renew(meta, &all, "w1", 500).await,
        sorted(ids(&jobs[..2])),
        "only the leases w1 holds"
    );
    assert_eq!(
        claim(meta, "w3", 200, 300, 5).await,
        [jobs[2].id],
        "only the lease w1 did not hold lapsed"
    );
    assert!(renew(meta, &[], "w1", 600).await.is_empty());
    let unknown = JobLease {
        job: JobId::generate(),
        token: of_w1[0].token,
    };
    assert!(renew(meta, &[unknown], "w1", 600).await.is_empty());
    assert!(
        renew(meta, &all, "w2", 600).await.is_empty(),
        "w2 lost its lease"
    );
}

pub async fn a_stale_token_renews_nothing_after_the_job_is_claimed_again(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_jobs(meta, &snapshot, &[1]).await.remove(0);
    // One worker name claims twice (a node that stalled past its lease, then claimed the
    // job again): the name alone cannot tell the two claims apart, the token does.
    let stale = claim_leases(meta, "w1", 10, 100, 1).await.remove(0);
    let fresh = claim_leases(meta, "w1", 150, 250, 1).await.remove(0);
    assert_eq!(fresh.job.id, job.id);
    assert!(
        renew(meta, &[stale.lease()], "w1", 1_000).await.is_empty(),
        "the first claim's token is stale"
    );
    assert!(
        claim(meta, "w2", 260, 360, 1).await.contains(&job.id),
        "the stale renewal did not extend the lease"
    );
}

pub async fn preparation_progress_is_recorded_only_by_the_lease_holder(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let jobs = seed_jobs(meta, &snapshot, &[1]).await;
    let id = jobs[0].id;
    assert_eq!(
        meta.preparation_progress(id).await.unwrap(),
        Some(PreparationProgress::default()),
        "nothing recorded before preparation"
    );
    assert!(
        !meta
            .record_preparation_progress(id, "w1", 10, 100)
            .await
            .unwrap(),
        "an unclaimed job takes no figures"
    );
    assert_eq!(claim(meta, "w1", 10, 100, 1).await, [id]);
    assert!(meta
        .record_preparation_progress(id, "w1", 40, 100)
        .await
        .unwrap());
    assert!(!meta
        .record_preparation_progress(id, "w2", 90, 100)
        .await
        .unwrap());
    assert_eq!(
        meta.preparation_progress(id).await.unwrap(),
        Some(PreparationProgress {
            prepared_bytes: 40,
            planned_bytes: Some(100),
        })
    );
    assert_eq!(
        meta.preparation_progress(JobId::generate()).await.unwrap(),
        None
    );
}

pub async fn a_preparation_is_finished_only_by_the_lease_holder(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_jobs(meta, &snapshot, &[1]).await.remove(0);
    let of_w1 = claim_leases(meta, "w1", 10, 100, 1).await.remove(0);
    let of_w2 = claim_leases(meta, "w2", 150, 250, 1).await.remove(0);
    assert_eq!((of_w1.job.id, of_w2.job.id), (job.id, job.id));

    assert_eq!(
        meta.finish_preparations("w1", &[(of_w1.lease(), ready(160))])
            .await
            .unwrap(),
        [false],
        "w1 lost its lease"
    );
    assert_eq!(by_id(meta, job.id).await.status, JobStatus::InProgress);
    let forged = JobLease {
        token: of_w2.token,
        ..of_w1.lease()
    };
    assert_eq!(
        meta.finish_preparations("w1", &[(forged, ready(160))])
            .await
            .unwrap(),
        [false],
        "the current token under another worker's name"
    );

    let outcome = ready(170);
    assert_eq!(
        meta.finish_preparations("w2", &[(of_w2.lease(), outcome.clone())])
            .await
            .unwrap(),
        [true]
    );
    let done = by_id(meta, job.id).await;
    assert_eq!(
        (
            done.status,
            done.delivery_status,
            done.archive_bytes,
            done.archive_sha1,
            done.expires,
            done.finished_at,
            done.failure,
        ),
        (
            outcome.status,
            outcome.delivery_status,
            outcome.archive_bytes,
            outcome.archive_sha1,
            outcome.expires,
            outcome.finished_at,
            outcome.failure,
        )
    );
    assert!(
        claim(meta, "w3", 10_000, 10_100, 5).await.is_empty(),
        "no longer waiting"
    );
    assert_eq!(
        meta.finish_preparations("w2", &[(of_w2.lease(), broken(180))])
            .await
            .unwrap(),
        [false],
        "the lease went with the first outcome"
    );
    assert_eq!(by_id(meta, job.id).await.status, JobStatus::Finished);
}

pub async fn a_stale_token_finishes_nothing_after_the_job_is_claimed_again(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let job = seed_jobs(meta, &snapshot, &[1]).await.remove(0);
    let stale = claim_leases(meta, "w1", 10, 100, 1).await.remove(0);
    let fresh = claim_leases(meta, "w1", 150, 250, 1).await.remove(0);
    assert_eq!(
        meta.finish_preparations("w1", &[(stale.lease(), broken(160))])
            .await
            .unwrap(),
        [false],
        "a write under the lapsed claim's token is refused"
    );
    let now = by_id(meta, job.id).await;
    assert_eq!((now.status, now.failure), (JobStatus::InProgress, None));
    assert_eq!(
        meta.finish_preparations("w1", &[(fresh.lease(), ready(170))])
            .await
            .unwrap(),
        [true],
        "the current claim's write lands"
    );
    assert_eq!(by_id(meta, job.id).await.status, JobStatus::Finished);
    let never = JobLease {
        token: LeaseToken(fresh.token.0 + 1),
        ..fresh.lease()
    };
    assert_eq!(
        meta.finish_preparations("w1", &[(never, broken(180))])
            .await
            .unwrap(),
        [false]
    );
}

pub async fn finishing_reports_each_outcome_on_its_own(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let jobs = seed_jobs(meta, &snapshot, &[1, 2]).await;
    let of_w1 = claim_leases(meta, "w1", 10, 100, 2).await;
    assert_eq!(claimed_ids(&of_w1), ids(&jobs));
    assert_eq!(claim(meta, "w2", 150, 250, 1).await, [jobs[0].id]);
    let outcomes = [
        (of_w1[0].lease(), ready(160)),
        (of_w1[1].lease(), broken(160)),
    ];
    assert_eq!(
        meta.finish_preparations("w1", &outcomes).await.unwrap(),
        [false, true]
    );
    assert_eq!(by_id(meta, jobs[0].id).await.status, JobStatus::InProgress);
    let failed = by_id(meta, jobs[1].id).await;
    assert_eq!(failed.status, JobStatus::Broken);
    assert_eq!(failed.failure, outcomes[1].1.failure);
    assert_eq!(
        meta.finish_preparations("w1", &[]).await.unwrap(),
        Vec::<bool>::new()
    );
}

pub async fn a_link_expiry_given_at_creation_outlives_the_preparation(meta: &dyn MetaStore) {
    let snapshot = seed_snapshot_of_a_cluster(meta).await;
    let given = RestoreJobRecord {
        expires: Some(5_000),
        ..http_job(&snapshot, 1)
    };
    let computed = http_job(&snapshot, 2);
    meta.insert_jobs(&[given.clone(), computed.clone()])
        .await
        .unwrap();
    let claimed = claim_leases(meta, "w1", 10, 100, 2).await;
    assert_eq!(claimed_ids(&claimed), [given.id, computed.id]);
    let without_expiry = PreparedOutcome {
        expires: None,
        ..ready(20)
    };
    let outcomes = [
        (claimed[0].lease(), without_expiry),
        (claimed[1].lease(), ready(20)),
    ];
    assert_eq!(
        meta.finish_preparations("w1", &outcomes).await.unwrap(),
        [true, true]
    );
    assert_eq!(by_id(meta, given.id).await.expires, Some(5_000));
    assert_eq!(by_id(meta, computed.id).await.expires, ready(20).expires);
}

pub async fn racing_workers_never_claim_the_same_job(meta: Arc<dyn MetaStore>) {
    let snapshot = seed_snapshot_of_a_cluster(meta.as_ref()).await;
    let created: Vec<UnixSeconds> = (0..60).collect();
    let jobs = seed_jobs(meta.as_ref(), &snapshot, &created).await;
    let claimed = race(&meta, 4, |meta, worker| async move {
        let worker = format!("worker-{worker}");
        let mut mine = Vec::new();
        loop {
            let batch = meta.claim_jobs(&worker, 10, 1_000, 3).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch);
        }
    })
    .await;
    let all: Vec<&ClaimedJob> = claimed.iter().flatten().collect();
    let distinct: BTreeSet<JobId> = all.iter().map(|c| c.job.id).collect();
    assert_eq!(distinct.len(), all.len(), "a job was claimed twice");
    assert_eq!(
        distinct,
        ids(&jobs).into_iter().collect(),
        "every job was claimed"
    );
    assert!(all.iter().all(|c| c.job.attempts == 1), "each claimed once");
}

pub async fn oplog_reads_of_restores_in_flight_start_at_their_oldest_snapshot(
    meta: &dyn MetaStore,
) {
    let cluster = seed_cluster(meta).await;
    let now = 1_000;
    let of_cluster = &cluster;
    let snapshot = |created| async move { seed_snapshot(meta, of_cluster, created).await };
    let (s50, s100, s150, s200, s300) = (
        snapshot(50).await,
        snapshot(100).await,
        snapshot(150).await,
        snapshot(200).await,
        snapshot(300).await,
    );
    assert_eq!(
        meta.oldest_active_oplog_start(cluster.id, now)
            .await
            .unwrap(),
        None
    );
    let pit = |job: RestoreJobRecord| RestoreJobRecord {
        point_in_time: true,
        ..job
    };
    let counted = [
        pit(http_job(&s300, 1)),
        pit(settled_job(
            &s200,
            JobStatus::Finished,
            DeliveryStatus::Ready,
            None,
        )),
        pit(settled_job(
            &s150,
            JobStatus::Finished,
            DeliveryStatus::Interrupted,
            Some(now + 1),
        )),
    ];
    let ignored = [
        pit(settled_job(
            &s100,
            JobStatus::Finished,
            DeliveryStatus::Ready,
            Some(now - 1),
        )),
        pit(settled_job(
            &s100,
            JobStatus::Finished,
            DeliveryStatus::Expired,
            None,
        )),
        pit(settled_job(
            &s100,
            JobStatus::Broken,
            DeliveryStatus::Failed,
            None,
        )),
        pit(settled_job(
            &s100,
            JobStatus::Finished,
            DeliveryStatus::MaxDownloadsExceeded,
            None,
        )),
        http_job(&s50, 1),
    ];
    meta.insert_jobs(&ignored).await.unwrap();
    let other = seed_replica_set(meta, cluster.group_id, "other").await;
    let theirs = seed_snapshot(meta, &other, 10).await;
    meta.insert_jobs(&[pit(http_job(&theirs, 1))])
        .await
        .unwrap();
    assert_eq!(
        meta.oldest_active_oplog_start(cluster.id, now)
            .await
            .unwrap(),
        None,
        "finished with a dead link, not to a moment, or of another cluster"
    );
    for (job, oldest) in counted.iter().zip([&s300, &s200, &s150]) {
        meta.insert_jobs(std::slice::from_ref(job)).await.unwrap();
        assert_eq!(
            meta.oldest_active_oplog_start(cluster.id, now)
                .await
                .unwrap(),
            Some(oldest.created)
        );
    }
    assert_eq!(
        meta.oldest_active_oplog_start(cluster.id, now + 1)
            .await
            .unwrap(),
        Some(s200.created),
        "the interrupted link expired"
    );
}

pub async fn a_snapshot_is_in_use_while_a_job_reads_it(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let now = 1_000;
    let mut cases = Vec::new();
    let states = [
        (
            JobStatus::InProgress,
            DeliveryStatus::NotStarted,
            None,
            true,
        ),
        (
            JobStatus::InProgress,
            DeliveryStatus::InProgress,
            Some(now - 1),
            true,
        ),
        (JobStatus::Finished, DeliveryStatus::Ready, None, true),
        (
            JobStatus::Finished,
            DeliveryStatus::Interrupted,
            Some(now + 1),
            true,
        ),
        (
            JobStatus::Finished,
            DeliveryStatus::Ready,
            Some(now - 1),
            false,
        ),
        (JobStatus::Finished, DeliveryStatus::Expired, None, false),
        (
            JobStatus::Finished,
            DeliveryStatus::MaxDownloadsExceeded,
            None,
            false,
        ),
        (JobStatus::Broken, DeliveryStatus::Failed, None, false),
        (JobStatus::Killed, DeliveryStatus::NotStarted, None, false),
    ];
    for (i, (status, delivery, expires, in_use)) in states.into_iter().enumerate() {
        let snapshot = seed_snapshot(meta, &cluster, 100 + i as u32).await;
        let job = settled_job(&snapshot, status, delivery, expires);
        meta.insert_jobs(&[job]).await.unwrap();
        cases.push((snapshot, (status, delivery, expires), in_use));
    }
    let unread = seed_snapshot(meta, &cluster, 10).await;
    cases.push((
        unread,
        (JobStatus::Killed, DeliveryStatus::Failed, None),
        false,
    ));
    for (snapshot, state, in_use) in &cases {
        assert_eq!(
            meta.snapshot_has_active_jobs(snapshot.id, now)
                .await
                .unwrap(),
            *in_use,
            "a job {state:?}"
        );
    }
}

mod tests {
    contract_tests!(
        a_job_is_found_by_its_cluster_or_by_id_alone,
        a_batch_of_jobs_is_inserted_whole_or_not_at_all,
        a_clusters_jobs_are_listed_newest_first_by_batch_in_pages,
        workers_claim_the_oldest_waiting_jobs_first,
        a_lapsed_lease_is_claimed_again_under_a_larger_token,
        only_the_lease_holder_renews_it,
        a_stale_token_renews_nothing_after_the_job_is_claimed_again,
        a_preparation_is_finished_only_by_the_lease_holder,
        a_stale_token_finishes_nothing_after_the_job_is_claimed_again,
        preparation_progress_is_recorded_only_by_the_lease_holder,
        finishing_reports_each_outcome_on_its_own,
        a_link_expiry_given_at_creation_outlives_the_preparation,
        oplog_reads_of_restores_in_flight_start_at_their_oldest_snapshot,
        a_snapshot_is_in_use_while_a_job_reads_it,
    );
    contract_tests!(
        concurrent: racing_workers_never_claim_the_same_job,
        concurrent_requests_each_insert_their_jobs_whole,
    );
}
