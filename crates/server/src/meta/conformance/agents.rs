//! [`AgentMeta`](crate::meta::AgentMeta): agents' heartbeats, the plans of automated
//! restores, and the per-member claims and reports through which agents apply them.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{
    automated_job, http_job, race, seed_cluster, seed_replica_set, seed_snapshot, sharded_cluster,
    ALL,
};
use crate::ids::{ClusterId, JobId};
use crate::meta::agents::{MemberState, MemberUpdate, RestoreMemberRecord};
use crate::meta::MetaStore;
use crate::model::{ClusterRecord, JobStatus, RestoreJobRecord, SnapshotRecord, UnixSeconds};

/// A snapshot of one cluster and a second cluster, `target`, that restores go into.
struct Restores {
    snapshot: SnapshotRecord,
    target: ClusterRecord,
}

impl Restores {
    async fn seed(meta: &dyn MetaStore) -> Restores {
        let source = seed_cluster(meta).await;
        let snapshot = seed_snapshot(meta, &source, 100).await;
        let target = seed_replica_set(meta, source.group_id, "target").await;
        Restores { snapshot, target }
    }

    /// A new automated restore into `target`, in progress.
    async fn job_into(&self, meta: &dyn MetaStore, target: &ClusterRecord) -> RestoreJobRecord {
        let job = automated_job(&self.snapshot, target, 10);
        meta.insert_jobs(std::slice::from_ref(&job)).await.unwrap();
        job
    }

    /// A new automated restore into `target` planned (at 300) with `members`, announced at 200.
    async fn planned_job(&self, meta: &dyn MetaStore, members: &[&str]) -> RestoreJobRecord {
        let job = self.job_into(meta, &self.target).await;
        announce(meta, &self.target, "agent-0", members, 200).await;
        let planned = meta
            .plan_agent_job(job.id, self.target.id, 200, 300)
            .await
            .unwrap();
        assert_eq!(planned, 300);
        job
    }
}

async fn announce(
    meta: &dyn MetaStore,
    replica_set: &ClusterRecord,
    agent: &str,
    members: &[&str],
    now: UnixSeconds,
) {
    let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
    meta.record_heartbeat(replica_set.id, &[], agent, &members, now)
        .await
        .unwrap();
}

/// The job's members in name order: the trait promises the rows, not their order.
async fn members(meta: &dyn MetaStore, job: JobId) -> Vec<RestoreMemberRecord> {
    let mut rows = meta.job_members(job).await.unwrap();
    rows.sort_by(|a, b| a.member_name.cmp(&b.member_name));
    rows
}

async fn names(meta: &dyn MetaStore, job: JobId) -> Vec<String> {
    members(meta, job)
        .await
        .into_iter()
        .map(|m| m.member_name)
        .collect()
}

async fn member(meta: &dyn MetaStore, job: JobId, name: &str) -> RestoreMemberRecord {
    members(meta, job)
        .await
        .into_iter()
        .find(|m| m.member_name == name)
        .expect("a planned member")
}

fn pending(job: JobId, name: &str, at: UnixSeconds) -> RestoreMemberRecord {
    RestoreMemberRecord {
        job_id: job,
        member_name: name.to_owned(),
        state: MemberState::Pending,
        agent_id: None,
        progress_bytes: 0,
        failure: None,
        updated: at,
    }
}

fn update(state: MemberState, progress_bytes: u64) -> MemberUpdate<'static> {
    MemberUpdate {
        state,
        progress_bytes,
        failure: None,
    }
}

fn job_ids(jobs: Vec<RestoreJobRecord>) -> BTreeSet<JobId> {
    jobs.into_iter().map(|j| j.id).collect()
}

pub async fn a_heartbeat_marks_the_replica_set_and_its_cluster_alive(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let rows = sharded_cluster(restores.target.group_id, "sharded", 2);
    meta.insert_clusters(&rows).await.unwrap();
    let (top, shard) = (&rows[0], &rows[1]);
    let members = vec!["m1".to_owned(), "m2".to_owned()];
    meta.record_heartbeat(shard.id, &[top.id], "agent-1", &members, 500)
        .await
        .unwrap();

    let beats: Vec<(ClusterId, Option<UnixSeconds>)> = meta
        .list_clusters(top.group_id, ALL)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.id, c.last_heartbeat))
        .collect();
    for row in &rows {
        let expected = (row.id == top.id || row.id == shard.id).then_some(500);
        assert!(beats.contains(&(row.id, expected)), "{row:?}: {beats:?}");
    }
    let job = restores.job_into(meta, top).await;
    meta.plan_agent_job(job.id, shard.id, 500, 510)
        .await
        .unwrap();
    assert_eq!(names(meta, job.id).await, members, "the members it serves");

    // A later heartbeat announces again, from whichever agent serves the member now.
    announce(meta, shard, "agent-2", &["m1"], 600).await;
    let later = restores.job_into(meta, top).await;
    meta.plan_agent_job(later.id, shard.id, 600, 610)
        .await
        .unwrap();
    assert_eq!(names(meta, later.id).await, ["m1"]);
}

pub async fn a_plan_is_fixed_once_from_the_members_seen_since(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let target = &restores.target;
    let job = restores.job_into(meta, target).await;
    announce(meta, target, "agent-0", &["m-old"], 100).await;
    announce(meta, target, "agent-1", &["m-a", "m-b"], 200).await;
    let elsewhere = seed_replica_set(meta, target.group_id, "elsewhere").await;
    announce(meta, &elsewhere, "agent-9", &["m-far"], 200).await;

    assert_eq!(
        meta.plan_agent_job(job.id, target.id, 150, 300)
            .await
            .unwrap(),
        300
    );
    let planned = vec![pending(job.id, "m-a", 300), pending(job.id, "m-b", 300)];
    assert_eq!(members(meta, job.id).await, planned);

    announce(meta, target, "agent-2", &["m-c"], 400).await;
    assert_eq!(
        meta.plan_agent_job(job.id, target.id, 0, 500)
            .await
            .unwrap(),
        300,
        "planned earlier"
    );
    assert_eq!(members(meta, job.id).await, planned, "the plan is fixed");
}

pub async fn a_late_member_joins_only_a_job_in_progress(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let job = restores.planned_job(meta, &["m-a"]).await;
    assert!(meta
        .claim_member(job.id, "m-a", "agent-1", 400)
        .await
        .unwrap());

    let late = vec!["m-a".to_owned(), "m-z".to_owned()];
    meta.join_agent_job(job.id, &late, 600).await.unwrap();
    let joined = members(meta, job.id).await;
    assert_eq!(joined[1], pending(job.id, "m-z", 600));
    assert_eq!(
        (joined[0].state, joined[0].agent_id.as_deref()),
        (MemberState::Applying, Some("agent-1")),
        "a member already planned is left as it is"
    );

    assert!(meta
        .settle_job(job.id, JobStatus::Killed, None, 700)
        .await
        .unwrap());
    meta.join_agent_job(job.id, &["m-y".to_owned()], 800)
        .await
        .unwrap();
    assert_eq!(names(meta, job.id).await, ["m-a", "m-z"]);
}

pub async fn a_member_is_claimed_by_one_agent_and_resumed_by_it(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let job = restores.planned_job(meta, &["m-a"]).await;
    assert!(meta
        .claim_member(job.id, "m-a", "agent-1", 400)
        .await
        .unwrap());
    let claimed = member(meta, job.id, "m-a").await;
    assert_eq!(
        (claimed.state, claimed.agent_id.as_deref(), claimed.updated),
        (MemberState::Applying, Some("agent-1"), 400)
    );
    assert!(
        !meta
            .claim_member(job.id, "m-a", "agent-2", 410)
            .await
            .unwrap(),
        "another agent cannot take a held member"
    );
    assert_eq!(
        member(meta, job.id, "m-a").await,
        claimed,
        "the refused claim changed nothing"
    );

    assert!(
        meta.claim_member(job.id, "m-a", "agent-1", 420)
            .await
            .unwrap(),
        "a restarted agent resumes its own claim"
    );
    assert_eq!(member(meta, job.id, "m-a").await.updated, 420);
    assert!(!meta
        .claim_member(job.id, "m-none", "agent-1", 430)
        .await
        .unwrap());

    assert!(meta
        .report_member(
            job.id,
            "m-a",
            "agent-1",
            &update(MemberState::Applied, 9),
            440
        )
        .await
        .unwrap());
    assert!(
        !meta
            .claim_member(job.id, "m-a", "agent-1", 450)
            .await
            .unwrap(),
        "an applied member is claimed no more"
    );
}

pub async fn racing_agents_never_both_claim_a_member(meta: Arc<dyn MetaStore>) {
    let restores = Restores::seed(meta.as_ref()).await;
    let names: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let job = restores.planned_job(meta.as_ref(), &name_refs).await.id;
    for name in &names {
        let racing = name.clone();
        let won = race(&meta, 6, move |meta, i| {
            let name = racing.clone();
            async move {
                meta.claim_member(job, &name, &format!("agent-{i}"), 500)
                    .await
                    .unwrap()
            }
        })
        .await;
        let winners: Vec<usize> = (0..won.len()).filter(|i| won[*i]).collect();
        assert_eq!(winners.len(), 1, "{name}: one agent holds it: {won:?}");
        let holder = member(meta.as_ref(), job, name).await.agent_id;
        assert_eq!(holder, Some(format!("agent-{}", winners[0])), "{name}");
    }
}

pub async fn only_the_claiming_agent_reports_on_a_member(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let job = restores.planned_job(meta, &["m-a", "m-b"]).await;
    let failed = MemberUpdate {
        state: MemberState::Failed,
        progress_bytes: 7,
        failure: Some("disk full"),
    };
    assert!(
        !meta
            .report_member(job.id, "m-a", "agent-1", &failed, 400)
            .await
            .unwrap(),
        "nobody holds a pending member"
    );
    assert!(meta
        .claim_member(job.id, "m-a", "agent-1", 410)
        .await
        .unwrap());
    assert!(!meta
        .report_member(job.id, "m-a", "agent-2", &failed, 420)
        .await
        .unwrap());
    assert_eq!(
        member(meta, job.id, "m-a").await.state,
        MemberState::Applying
    );

    let progress = update(MemberState::Applying, 1_000);
    assert!(meta
        .report_member(job.id, "m-a", "agent-1", &progress, 430)
        .await
        .unwrap());
    assert_eq!(member(meta, job.id, "m-a").await.progress_bytes, 1_000);
    assert!(meta
        .report_member(job.id, "m-a", "agent-1", &failed, 440)
        .await
        .unwrap());
    assert_eq!(
        member(meta, job.id, "m-a").await,
        RestoreMemberRecord {
            job_id: job.id,
            member_name: "m-a".to_owned(),
            state: MemberState::Failed,
            agent_id: Some("agent-1".to_owned()),
            progress_bytes: 7,
            failure: Some("disk full".to_owned()),
            updated: 440,
        }
    );
    assert_eq!(
        member(meta, job.id, "m-b").await,
        pending(job.id, "m-b", 300)
    );
}

pub async fn a_job_is_settled_once(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let job = restores.job_into(meta, &restores.target).await;
    assert!(meta
        .settle_job(job.id, JobStatus::Broken, Some("agents gone"), 700)
        .await
        .unwrap());
    assert!(!meta
        .settle_job(job.id, JobStatus::Finished, None, 800)
        .await
        .unwrap());
    let settled = meta.get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(
        (
            settled.status,
            settled.failure.as_deref(),
            settled.finished_at
        ),
        (JobStatus::Broken, Some("agents gone"), Some(700)),
        "the second settlement changed nothing"
    );
    assert!(!meta
        .settle_job(JobId::generate(), JobStatus::Killed, None, 900)
        .await
        .unwrap());
}

/// Plans `job` with one member, `m`, brings it to `state` and settles the job as killed.
async fn settle_with_member(
    meta: &dyn MetaStore,
    restores: &Restores,
    state: MemberState,
) -> JobId {
    let job = restores.planned_job(meta, &["m"]).await.id;
    if state != MemberState::Pending {
        assert!(meta.claim_member(job, "m", "agent-1", 400).await.unwrap());
        assert!(meta
            .report_member(job, "m", "agent-1", &update(state, 1), 410)
            .await
            .unwrap());
    }
    assert!(meta
        .settle_job(job, JobStatus::Killed, None, 500)
        .await
        .unwrap());
    job
}

pub async fn open_jobs_are_those_in_progress_or_holding_applied_data(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let in_progress = restores.job_into(meta, &restores.target).await.id;
    let half_applied = settle_with_member(meta, &restores, MemberState::Applying).await;
    let applied = settle_with_member(meta, &restores, MemberState::Applied).await;
    for state in [
        MemberState::Pending,
        MemberState::Failed,
        MemberState::RolledBack,
        MemberState::Committed,
    ] {
        settle_with_member(meta, &restores, state).await;
    }
    let other = seed_replica_set(meta, restores.target.group_id, "other").await;
    restores.job_into(meta, &other).await;
    let download = http_job(&restores.snapshot, 10);
    meta.insert_jobs(&[download]).await.unwrap();

    assert_eq!(
        job_ids(meta.open_agent_jobs(restores.target.id).await.unwrap()),
        BTreeSet::from([in_progress, half_applied, applied])
    );
}

pub async fn jobs_in_progress_are_listed_for_every_target(meta: &dyn MetaStore) {
    let restores = Restores::seed(meta).await;
    let here = restores.job_into(meta, &restores.target).await.id;
    let other = seed_replica_set(meta, restores.target.group_id, "other").await;
    let there = restores.job_into(meta, &other).await.id;
    settle_with_member(meta, &restores, MemberState::Applied).await;
    meta.insert_jobs(&[http_job(&restores.snapshot, 10)])
        .await
        .unwrap();
    assert_eq!(
        job_ids(meta.automated_jobs_in_progress().await.unwrap()),
        BTreeSet::from([here, there])
    );
}

mod tests {
    contract_tests!(
        a_heartbeat_marks_the_replica_set_and_its_cluster_alive,
        a_plan_is_fixed_once_from_the_members_seen_since,
        a_late_member_joins_only_a_job_in_progress,
        a_member_is_claimed_by_one_agent_and_resumed_by_it,
        only_the_claiming_agent_reports_on_a_member,
        a_job_is_settled_once,
        open_jobs_are_those_in_progress_or_holding_applied_data,
        jobs_in_progress_are_listed_for_every_target,
    );
    contract_tests!(concurrent: racing_agents_never_both_claim_a_member);
}
