//! Two `rewind serve` nodes on one PostgreSQL and one block directory, behind a
//! round-robin load balancer that sends each client's successive requests to alternate
//! nodes, with one node killed (SIGKILL) in the middle of the work: jobs being prepared, a
//! download, an automated restore through three agents. The other node must take the work
//! over within the lease and finish it once, with every download counted once and every
//! archive whole; a Digest header captured before the kill stays refused by both nodes.
//!
//! They need PostgreSQL (`REWIND_TEST_DATABASE_URL`): several nodes cannot share SQLite.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::agent::*;
use crate::fixtures::*;
use crate::nodes_auth::{assert_replay_refused, used_header};
use crate::support::*;

/// Lease of every job and task: a dead node's work is taken over within about this long.
const LEASE_SECS: u64 = 3;
/// Longest the surviving node may take to finish everything the dead one left.
const TAKEN_OVER_WITHIN: Duration = Duration::from_secs(90);

const NEEDS: &str = "two nodes share one PostgreSQL metadata store";

/// A deployment of two nodes behind a balancer: `imported.server` is node A, reached (as
/// every client here reaches the deployment) through the balancer, whose URL is also the
/// public URL of both nodes, download links included.
struct TwoNodes {
    imported: ImportedReplicaSet,
    b: TestServer,
    balancer: LoadBalancer,
    /// The nodes' own addresses, for requests aimed at one of them.
    a_url: String,
    b_url: String,
}

impl TwoNodes {
    async fn start(bytes: u64, seed: u64) -> TwoNodes {
        let balancer = LoadBalancer::start();
        let lease = LEASE_SECS.to_string();
        let flags = [
            "--lease-secs",
            lease.as_str(),
            "--public-url",
            &balancer.url,
        ];
        let a_listen = free_loopback_address();
        let mut a = TestServer::start_listening(&a_listen, &flags);
        a.url = format!("http://{a_listen}");
        let b = TestServer::start_node_of_listening(&a, &free_loopback_address(), &flags);
        balancer.balance(&[&a, &b]);
        let (a_url, b_url) = (a.url.clone(), b.url.clone());
        a.url = balancer.url.clone();
        // Imported through the balancer: its batches land on both nodes.
        let imported = ImportedReplicaSet::start_on(a, bytes, seed).await;
        TwoNodes {
            imported,
            b,
            balancer,
            a_url,
            b_url,
        }
    }

    /// `url` (a download link, on the balancer) aimed at one node instead.
    fn on_node(&self, url: &str, node: &str) -> String {
        url.replacen(&self.balancer.url, node, 1)
    }

    /// A hand-driven Digest signer aimed at `node` itself, not at the balancer.
    fn signer_at(&self, node: &str) -> Signer {
        let boot = &self.imported.server.boot;
        Signer::new(node, &boot.public_key, &boot.private_key)
    }

    fn group_path(&self) -> String {
        format!("{API}/groups/{}", self.imported.server.boot.group_id)
    }

    /// One `Authorization` header each node has accepted, captured while both are up.
    async fn headers_used_at_each_node(&self) -> Vec<String> {
        let path = self.group_path();
        let mut captured = Vec::new();
        for node in [&self.a_url, &self.b_url] {
            captured.push(used_header(&self.signer_at(node), &path).await);
        }
        captured
    }

    /// After node B's SIGKILL: every captured header is refused by A, which survived, and by
    /// B once restarted on its address (a supervisor's restart): a used nonce count stays
    /// used across a crash, whichever node saw it.
    async fn assert_replays_refused_by_both_nodes(&mut self, captured: &[String]) {
        let path = self.group_path();
        let at_a = self.signer_at(&self.a_url);
        for header in captured {
            assert_replay_refused(&at_a, &path, header).await;
        }
        self.b.restart();
        let at_b = self.signer_at(&self.b_url);
        for header in captured {
            assert_replay_refused(&at_b, &path, header).await;
        }
    }

    fn job_path(&self, id: &str) -> String {
        format!("{}/{id}", self.imported.jobs_path())
    }

    async fn job(&self, id: &str) -> Value {
        let reply = get(&self.imported.client, &self.job_path(id)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()
    }

    /// Waits until `check` holds for the job; returns it.
    async fn job_until(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TAKEN_OVER_WITHIN;
        loop {
            let job = self.job(id).await;
            if check(&job) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "after {TAKEN_OVER_WITHIN:?}: {job}"
            );
            pause(Duration::from_millis(200)).await;
        }
    }

    /// `rewind snapshot verify` finds every chunk of the snapshot whole.
    fn assert_snapshot_verifies(&self) {
        let i = &self.imported;
        let out = rewind_as_client(
            &i.server,
            &[
                "snapshot",
                "verify",
                "--group",
                &i.group,
                "--cluster",
                &i.cluster,
                "--snapshot",
                &i.snapshot,
                "--json",
            ],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        });
        assert!(out.status.success(), "verify: {report}");
        assert_eq!(
            (&report["corrupt"], &report["missing"]),
            (&json!([]), &json!([])),
            "{report}"
        );
    }
}

/// Downloads a whole archive and checks it against the SHA-1 the API then reports.
async fn download_and_check(d: &TwoNodes, job: &Value) {
    let body = download_archive(job).await;
    let id = job_id(job);
    let reported = d
        .job_until(id, |j| j["hashes"][0]["hash"].is_string())
        .await;
    assert_eq!(
        reported["hashes"][0]["hash"].as_str().unwrap(),
        sha1_hex(&body),
        "job {id}: the archive is the one the API vouches for"
    );
}

#[tokio::test]
async fn jobs_being_prepared_on_a_node_that_dies_are_finished_once_by_the_other() {
    if needs_postgres(NEEDS) {
        return;
    }
    let mut d = TwoNodes::start(24 << 20, 1201).await;
    let body = json!({
        "delivery": {"methodName": "HTTP", "maxDownloads": 1, "expirationHours": 1},
        "snapshotId": d.imported.snapshot,
    });
    // Created through the balancer, so that both nodes' workers are woken and claim.
    let path = d.imported.jobs_path();
    let creations = (0..20).map(|_| create_jobs(&d.imported.client, &path, body.clone()));
    let created: Vec<Value> = futures::future::join_all(creations)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(created.len(), 20);
    let captured = d.headers_used_at_each_node().await;
    d.b.kill();

    let mut in_flight = 0;
    for job in &created {
        in_flight += usize::from(is_being_prepared(&d.job(job_id(job)).await));
    }
    assert!(
        in_flight > 0,
        "the node died while jobs were being prepared (all were ready already)"
    );
    let mut finished = Vec::new();
    for job in &created {
        let job = d.job_until(job_id(job), |j| !is_being_prepared(j)).await;
        assert_eq!(job["statusName"], "FINISHED", "{job}");
        assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
        finished.push(job);
    }
    // Finished once: a second finish (a stale claim's outcome) would move the link's
    // expiry, which starts when the job finishes.
    pause(Duration::from_secs(2 * LEASE_SECS + 1)).await;
    for job in &finished {
        assert_eq!(
            &d.job(job_id(job)).await,
            job,
            "finished once, then left alone"
        );
    }
    let listed = get(&d.imported.client, &d.imported.jobs_path())
        .await
        .json();
    assert_eq!(listed["totalCount"], 20, "{listed}");
    for job in &finished {
        download_and_check(&d, job).await;
    }
    d.assert_snapshot_verifies();
    d.assert_replays_refused_by_both_nodes(&captured).await;
}

#[tokio::test]
async fn a_download_cut_by_its_node_dying_is_counted_once_and_the_link_serves_the_rest() {
    if needs_postgres(NEEDS) {
        return;
    }
    let mut d = TwoNodes::start(24 << 20, 1202).await;
    let jobs = d.imported.restore(json!({"maxDownloads": 2})).await;
    let job = d.imported.ready_job(&jobs[0]).await;
    assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let captured = d.headers_used_at_each_node().await;

    let mut cut = reqwest::get(d.on_node(&url, &d.b_url)).await.unwrap();
    assert_eq!(cut.status(), StatusCode::OK);
    let total = cut.content_length().expect("a length");
    assert!(
        total > 8 << 20,
        "an archive larger than socket buffers: {total}"
    );
    let mut received = 0u64;
    while received < 1 << 20 {
        received += cut.chunk().await.unwrap().expect("more of the body").len() as u64;
    }
    d.b.kill();
    while let Ok(Some(piece)) = cut.chunk().await {
        received += piece.len() as u64;
    }
    assert!(
        received < total,
        "the transfer was cut: {received} of {total}"
    );

    // The cut download took one of the two: one more is served, whole, then none.
    let on_a = d.on_node(&url, &d.a_url);
    let (status, _, body) = fetch(&on_a, None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let done = d
        .job_until(job_id(&job), |j| j["hashes"][0]["hash"].is_string())
        .await;
    assert_eq!(done["hashes"][0]["hash"].as_str().unwrap(), sha1_hex(&body));
    let (status, _, refused) = fetch(&on_a, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(error_code(&refused), "MAX_DOWNLOADS_EXCEEDED");
    assert_eq!(
        d.job(job_id(&job)).await["delivery"]["statusName"],
        "MAX_DOWNLOADS_EXCEEDED"
    );
    d.assert_snapshot_verifies();
    d.assert_replays_refused_by_both_nodes(&captured).await;
}

#[tokio::test]
async fn parallel_downloads_on_both_nodes_get_exactly_max_downloads() {
    if needs_postgres(NEEDS) {
        return;
    }
    let d = TwoNodes::start(1 << 20, 1203).await;
    let jobs = d.imported.restore(json!({"maxDownloads": 3})).await;
    let job = d.imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 { &d.a_url } else { &d.b_url };
            let url = d.on_node(&url, node);
            tokio::spawn(async move { fetch(&url, None).await })
        })
        .collect();
    let mut served = Vec::new();
    for attempt in attempts {
        let (status, _, body) = attempt.await.unwrap();
        match status {
            StatusCode::OK => served.push(body),
            StatusCode::GONE => assert_eq!(error_code(&body), "MAX_DOWNLOADS_EXCEEDED"),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert_eq!(
        served.len(),
        3,
        "exactly maxDownloads, whichever node served"
    );
    let done = d
        .job_until(job_id(&job), |j| {
            j["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED"
                && j["hashes"][0]["hash"].is_string()
        })
        .await;
    for body in &served {
        assert_eq!(sha1_hex(body), done["hashes"][0]["hash"].as_str().unwrap());
    }
}

/// Three agents, each on its own member, reaching the deployment through the balancer, so
/// that each agent's successive requests (long-polls, claims, reports, downloads) alternate
/// between the two nodes; node B is killed once every member has begun when `kill_midway`.
/// The job ends FINISHED; both nodes answered agents' polls (and reports, when neither
/// dies), and neither refused an agent.
async fn automated_restore_through_the_balancer(seed: u64, kill_midway: bool) {
    let mut d = TwoNodes::start(2 << 20, seed).await;
    let server = &d.imported.server;
    let target = Target::register(server, "target", None).await;
    let members: Vec<Member> = (0..3)
        .map(|i| Member::new(target.root.path(), &format!("node{i}:27017"), seed + i))
        .collect();
    // Slow starts keep the restore going long enough for a node to die in the middle.
    let _agents: Vec<Agent> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let slow = format!("sleep 2; {}", m.start_command());
            target.agent(&d.balancer.url, "target", &format!("host{i}"), &[(m, slow)])
        })
        .collect();
    eventually_heartbeat(&server.client(), &target).await;
    let path = d.imported.jobs_path();
    let jobs = create_automated(server, &path, &target, &d.imported.snapshot).await;
    let captured = d.headers_used_at_each_node().await;
    if kill_midway {
        eventually("every member has begun", || {
            members.iter().all(|m| m.beside("journal.json").exists())
        })
        .await;
        // Both nodes have answered agents before one of them dies.
        assert_both_nodes_served(&d, "/agents/work");
        d.b.kill();
    }
    let job = wait_until_ended(&d.imported.server, &path, job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    for m in &members {
        assert_member_restored(m, d.imported.source.path());
    }
    // Ended once: the job stays as it ended.
    pause(Duration::from_secs(2 * LEASE_SECS + 1)).await;
    assert_eq!(d.job(job_id(&jobs[0])).await, job);
    d.assert_snapshot_verifies();
    assert_both_nodes_served(&d, "/agents/work");
    if !kill_midway {
        assert_both_nodes_served(&d, "/agents/reports");
    }
    d.assert_replays_refused_by_both_nodes(&captured).await;
}

/// Each node answered some agent requests to `endpoint` with a success, and no agent
/// request was refused by either node (other than a Digest challenge).
#[track_caller]
fn assert_both_nodes_served(d: &TwoNodes, endpoint: &str) {
    let refused: Vec<_> = d
        .balancer
        .answers("/agents/")
        .into_iter()
        .filter(|(_, status)| !status.is_success() && *status != StatusCode::UNAUTHORIZED)
        .collect();
    assert_eq!(refused, [], "agent requests refused (node, status)");
    let answers = d.balancer.answers(endpoint);
    for node in [0, 1] {
        assert!(
            answers.iter().any(|&(n, s)| n == node && s.is_success()),
            "{endpoint} answered by node A and node B: {answers:?}"
        );
    }
}

#[tokio::test]
async fn agents_whose_requests_alternate_between_two_nodes_finish_an_automated_restore() {
    if needs_postgres(NEEDS) {
        return;
    }
    automated_restore_through_the_balancer(1210, false).await;
}

#[tokio::test]
async fn an_automated_restore_survives_a_node_killed_while_three_agents_apply_it() {
    if needs_postgres(NEEDS) {
        return;
    }
    automated_restore_through_the_balancer(1220, true).await;
}
