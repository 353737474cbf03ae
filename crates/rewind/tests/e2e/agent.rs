//! Automated restores applied by `rewind agent` processes: one server, one agent per
//! target member, each with its own data directory and shell stop/start commands, all on
//! loopback. Faults (a killed agent, a flipped byte, a failing start, a server restart, a
//! cancel) must leave every member on either the snapshot or its previous data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fixtures::*;
use crate::support::*;

/// The longest an automated restore of a few MiB may take from creation to its end.
pub(crate) const RESTORE_WITHIN: Duration = Duration::from_secs(90);

/// One target member on this "host": its data directory and the files its scripts touch.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) dbpath: PathBuf,
    /// Written `started`/`stopped` by the start and stop commands.
    pub(crate) state_file: PathBuf,
}

impl Member {
    pub(crate) fn new(root: &Path, name: &str, old_seed: u64) -> Member {
        let dbpath = root.join(name).join("db");
        std::fs::create_dir_all(&dbpath).unwrap();
        generate(&dbpath, 200_000, old_seed);
        Member {
            name: name.to_owned(),
            state_file: root.join(name).join("mongod.state"),
            dbpath,
        }
    }

    pub(crate) fn beside(&self, suffix: &str) -> PathBuf {
        self.dbpath.with_file_name(format!("db.rewind-{suffix}"))
    }

    pub(crate) fn stop_command(&self) -> String {
        format!("echo stopped > '{}'", self.state_file.display())
    }

    pub(crate) fn start_command(&self) -> String {
        format!("echo started > '{}'", self.state_file.display())
    }
}

/// A running `rewind agent` with its config and log; killed when dropped.
pub(crate) struct Agent {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn spawn(config: PathBuf, log: PathBuf) -> Agent {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args(["agent", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("rewind agent starts");
        Agent { child, config, log }
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        *self = Agent::spawn(self.config.clone(), self.log.clone());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The target side of a test: a registered target cluster and where its agents live.
pub(crate) struct Target {
    pub(crate) group: String,
    pub(crate) cluster: String,
    public_key: String,
    private_key: String,
    pub(crate) root: tempfile::TempDir,
}

impl Target {
    /// Registers a target cluster (`shards: None` for a replica set) with a project key
    /// holding `GROUP_BACKUP_ADMIN`, as an operator would give each agent.
    pub(crate) async fn register(server: &TestServer, name: &str, shards: Option<u32>) -> Target {
        let client = server.client();
        let group = server.boot.group_id.clone();
        let mut body = json!({ "clusterName": name });
        if let Some(n) = shards {
            body["shards"] = n.into();
        }
        let registered = register_cluster(&client, &group, body).await;
        let cluster = registered["members"][0]["id"].as_str().unwrap().to_owned();
        let (id, public_key, private_key) = create_key(
            &client,
            &format!("{API}/groups/{group}/apiKeys"),
            "GROUP_BACKUP_ADMIN",
        )
        .await;
        allow_loopback(&client, &server.boot.org_id, &id).await;
        Target {
            group,
            cluster,
            public_key,
            private_key,
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes an agent config for `members` of `replica_set` and starts the agent.
    pub(crate) fn agent(
        &self,
        server_url: &str,
        replica_set: &str,
        id: &str,
        members: &[(&Member, String)],
    ) -> Agent {
        let mut text = format!(
            "server = \"{server_url}\"\npublic_key = \"{}\"\nprivate_key = \"{}\"\ngroup_id = \"{}\"\n\
             cluster_id = \"{}\"\nreplica_set = \"{replica_set}\"\nagent_id = \"{id}\"\npoll_wait_secs = 5\n",
            self.public_key, self.private_key, self.group, self.cluster
        );
        for (m, start) in members {
            text.push_str(&format!(
                "\n[[members]]\nname = \"{}\"\ndbpath = \"{}\"\nstop_command = \"{}\"\nstart_command = \"{}\"\n",
                m.name,
                m.dbpath.display(),
                m.stop_command().replace('\\', "\\\\").replace('"', "\\\""),
                start.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
        let config = self.root.path().join(format!("{id}.toml"));
        std::fs::write(&config, text).unwrap();
        Agent::spawn(config, self.root.path().join(format!("{id}.log")))
    }

    pub(crate) fn cluster_path(&self) -> String {
        format!("{API}/groups/{}/clusters/{}", self.group, self.cluster)
    }
}

/// The seed's "automated restore from a snapshot" body, verbatim but for the ids.
fn seed_automated_body(target_group: &str, target_cluster: &str, snapshot: &str) -> String {
    r#"
       {
         "delivery" : {
           "methodName" : "AUTOMATED_RESTORE",
           "targetGroupId" : "{TARGET-PROJECT-ID}",
           "targetClusterId" : "{TARGET-CLUSTER-ID}"
         },
         "snapshotId": "{SNAPSHOT-ID}"
       }"#
    .replace("{TARGET-PROJECT-ID}", target_group)
    .replace("{TARGET-CLUSTER-ID}", target_cluster)
    .replace("{SNAPSHOT-ID}", snapshot)
}

pub(crate) async fn create_automated(
    server: &TestServer,
    jobs_path: &str,
    target: &Target,
    snapshot: &str,
) -> Vec<Value> {
    let body = seed_automated_body(&target.group, &target.cluster, snapshot);
    let reply: Reply = server
        .client()
        .send(
            Method::POST,
            &format!("{jobs_path}?pretty=true"),
            Some(body.as_bytes()),
            "application/json",
        )
        .await
        .expect("the server answers")
        .into();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let jobs = reply.json()["results"].as_array().unwrap().clone();
    for job in &jobs {
        assert_eq!(job["statusName"], "IN_PROGRESS", "{job}");
        assert_eq!(job["delivery"]["methodName"], "HTTP", "{job}");
        assert_eq!(job["delivery"]["targetClusterId"], target.cluster.as_str());
    }
    jobs
}

/// Polls a job until it leaves IN_PROGRESS; returns it.
pub(crate) async fn wait_until_ended(server: &TestServer, jobs_path: &str, id: &str) -> Value {
    let deadline = Instant::now() + RESTORE_WITHIN;
    let client = server.client();
    loop {
        let job = get(&client, &format!("{jobs_path}/{id}")).await.json();
        if job["statusName"] != "IN_PROGRESS" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is still in progress: {job}"
        );
        pause(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until `check` holds.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + RESTORE_WITHIN;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        pause(Duration::from_millis(100)).await;
    }
}

/// The member holds exactly the snapshot's files; the restore info lies beside it; the
/// previous data directory is gone once the job finished.
#[track_caller]
pub(crate) fn assert_member_restored(member: &Member, source: &Path) {
    assert_eq!(
        read_tree(&member.dbpath),
        read_tree(source),
        "{} is the snapshot",
        member.name
    );
    assert!(
        member.beside("info").join("restoreInfo.txt").is_file(),
        "restoreInfo.txt beside {}",
        member.name
    );
    assert_eq!(
        std::fs::read_to_string(&member.state_file).unwrap().trim(),
        "started"
    );
}

pub(crate) fn no_restore_leftovers(member: &Member) -> bool {
    ["previous", "journal.json", "staging", "download.tar.gz"]
        .iter()
        .all(|s| !member.beside(s).exists())
}

/// A three-member target replica set `target` with one agent per member, heartbeating.
pub(crate) async fn three_member_target(server: &TestServer) -> (Target, Vec<Member>, Vec<Agent>) {
    let target = Target::register(server, "target", None).await;
    let members: Vec<Member> = (0..3)
        .map(|i| Member::new(target.root.path(), &format!("node{i}:27017"), 900 + i))
        .collect();
    let agents: Vec<Agent> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            target.agent(
                &server.url,
                "target",
                &format!("host{i}"),
                &[(m, m.start_command())],
            )
        })
        .collect();
    eventually_heartbeat(&server.client(), &target).await;
    (target, members, agents)
}

#[tokio::test]
async fn three_agents_apply_the_seed_automated_restore_to_a_three_member_replica_set() {
    let imported = ImportedReplicaSet::start(2 << 20, 501, &[]).await;
    let server = &imported.server;
    let (target, members, _agents) = three_member_target(server).await;
    let client = server.client();
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    assert_eq!(jobs.len(), 1);
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    assert!(job.get("failureReason").is_none(), "{job}");
    for m in &members {
        assert_member_restored(m, imported.source.path());
    }
    let listed = get(
        &client,
        &format!(
            "{REWIND_API}/groups/{}/clusters/{}/restoreJobs/{}/members",
            imported.group,
            imported.cluster,
            job_id(&jobs[0])
        ),
    )
    .await
    .json();
    let listed = listed["results"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (m, row) in members.iter().zip(&listed) {
        assert_eq!(row["memberName"], m.name.as_str());
        assert!(
            matches!(row["state"].as_str(), Some("APPLIED" | "COMMITTED")),
            "{row}"
        );
        assert!(row["progressBytes"].as_u64().unwrap_or(0) > 0, "{row}");
    }
    eventually("every member dropped its previous data", || {
        members.iter().all(no_restore_leftovers)
    })
    .await;
}

#[tokio::test]
async fn an_automated_oplog_restore_leaves_the_oplog_to_replay_beside_each_member() {
    let base = chrono::Utc::now().timestamp() as u32 - 600;
    let taken_at = format!("{}:1", base + 10);
    let imported = ImportedReplicaSet::start_taken_at(
        TestServer::start(),
        1 << 20,
        502,
        &["--taken-at", &taken_at],
    )
    .await;
    let server = &imported.server;
    let entries: Vec<(u32, Vec<u8>)> = (base..base + 300)
        .map(|s| (s, rewind_devtools::oplog::oplog_entry(s, 1, "replayed")))
        .collect();
    let oplog = imported.source.path().with_extension("oplog.bson");
    std::fs::write(
        &oplog,
        entries
            .iter()
            .flat_map(|(_, e)| e.clone())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let pushed = rewind_as_client(
        server,
        &[
            "oplog",
            "push",
            "--group",
            &imported.group,
            "--cluster",
            &imported.cluster,
            oplog.to_str().unwrap(),
        ],
    );
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let (target, members, _agents) = three_member_target(server).await;

    let body = json!({
        "delivery": {
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": target.group,
            "targetClusterId": target.cluster,
        },
        "oplogTs": (base + 200).to_string(),
        "oplogInc": "1",
    });
    let jobs = create_jobs(&server.client(), &imported.jobs_path(), body).await;
    assert_eq!(jobs[0]["pointInTime"], true);
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    let replayed: Vec<u8> = entries
        .iter()
        .filter(|(s, _)| (base + 11..=base + 200).contains(s))
        .flat_map(|(_, e)| e.clone())
        .collect();
    for m in &members {
        assert_member_restored(m, imported.source.path());
        let oplog = m.beside("info").join("oplog.bson");
        assert!(
            std::fs::read(&oplog).unwrap() == replayed,
            "{}: oplog.bson holds the entries after the snapshot up to the target",
            m.name
        );
        assert_eq!(decode_oplog_with_pymongo(&oplog).len(), 190);
    }
}

/// Waits until the agents' heartbeats show on the target cluster (and the three members
/// are registered: each agent heartbeats before it polls).
pub(crate) async fn eventually_heartbeat(client: &rewind_cli::client::ApiClient, target: &Target) {
    let deadline = Instant::now() + RESTORE_WITHIN;
    loop {
        let cluster = get(client, &target.cluster_path()).await.json();
        if cluster.get("lastHeartbeat").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat: {cluster}");
        pause(Duration::from_millis(100)).await;
    }
    // Give every agent time for its first heartbeat, which precedes its first poll.
    pause(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn a_failing_start_command_rolls_back_and_breaks_the_job_with_the_reason() {
    let imported = ImportedReplicaSet::start(1 << 20, 511, &[]).await;
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let good = Member::new(target.root.path(), "good:27017", 910);
    let bad = Member::new(target.root.path(), "bad:27017", 911);
    let before_good = read_tree(&good.dbpath);
    let before_bad = read_tree(&bad.dbpath);
    let failing = "echo 'mongod exited: bad WiredTiger files' >&2; exit 3".to_owned();
    let _a = target.agent(
        &server.url,
        "target",
        "host-good",
        &[(&good, good.start_command())],
    );
    let _b = target.agent(&server.url, "target", "host-bad", &[(&bad, failing)]);
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "BROKEN", "{job}");
    let reason = job["failureReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bad:27017")
            && reason.contains("start command failed")
            && reason.contains("bad WiredTiger files"),
        "{reason}"
    );
    eventually("both members are back on their previous data", || {
        read_tree(&bad.dbpath) == before_bad
            && read_tree(&good.dbpath) == before_good
            && no_restore_leftovers(&bad)
            && no_restore_leftovers(&good)
    })
    .await;
}

#[tokio::test]
async fn a_cancel_mid_restore_rolls_back_every_member_and_ends_killed() {
    let imported = ImportedReplicaSet::start(1 << 20, 521, &[]).await;
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let members: Vec<Member> = (0..3)
        .map(|i| Member::new(target.root.path(), &format!("n{i}:27017"), 920 + i))
        .collect();
    let before: Vec<_> = members.iter().map(|m| read_tree(&m.dbpath)).collect();
    // Slow starts keep the job in progress long enough to cancel it mid-way.
    let _agents: Vec<Agent> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let slow = format!("sleep 3; {}", m.start_command());
            target.agent(&server.url, "target", &format!("h{i}"), &[(m, slow)])
        })
        .collect();
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    eventually("every member has begun", || {
        members.iter().all(|m| m.beside("journal.json").exists())
    })
    .await;
    let cancel = |job: &str| {
        let args = ["restore", "cancel", job, "--group", &imported.group];
        let mut command = rewind_client_command(server);
        command
            .args(args)
            .args(["--cluster", &imported.cluster, "--json"]);
        command.output().expect("the rewind binary runs")
    };
    let out = cancel(job_id(&jobs[0]));
    assert!(
        out.status.success(),
        "cancel failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cancelled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cancelled["statusName"], "KILLED", "{cancelled}");
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "KILLED");
    eventually("every member is back on its previous data", || {
        members.iter().zip(&before).all(|(m, b)| {
            try_read_tree(&m.dbpath).is_ok_and(|t| t == *b) && no_restore_leftovers(m)
        })
    })
    .await;
    assert!(
        !cancel(job_id(&jobs[0])).status.success(),
        "an ended job cannot be cancelled again"
    );
}

#[tokio::test]
async fn an_automated_restore_with_no_agent_breaks_after_the_agent_timeout() {
    let imported = ImportedReplicaSet::start(300_000, 531, &["--agent-timeout-secs", "2"]).await;
    let server = &imported.server;
    let target = Target::register(server, "lonely", None).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "BROKEN", "{job}");
    let reason = job["failureReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no agent serves replica set lonely"),
        "{reason}"
    );
}

/// A loopback TCP proxy in front of the server: forwards every connection; download
/// connections (`GET /backup/…`) can be slowed down and have one byte flipped once.
#[derive(Clone)]
pub(crate) struct Proxy {
    port: u16,
    upstream: Arc<Mutex<String>>,
    /// Response byte (counted from the start of a download connection) to flip, once.
    flip_at: Arc<AtomicU64>,
    flipped: Arc<AtomicBool>,
    /// Pause after each forwarded download piece of at most 16 KiB.
    pub(crate) slow: Arc<AtomicBool>,
    ranged_requests: Arc<AtomicU64>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            upstream: Arc::new(Mutex::new(String::new())),
            flip_at: Arc::new(AtomicU64::new(u64::MAX)),
            flipped: Arc::new(AtomicBool::new(false)),
            slow: Arc::new(AtomicBool::new(false)),
            ranged_requests: Arc::new(AtomicU64::new(0)),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(p.clone().serve(conn));
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn point_at(&self, address: &str) {
        *self.upstream.lock().unwrap() = address.to_owned();
    }

    async fn serve(self, mut client: TcpStream) {
        let upstream = self.upstream.lock().unwrap().clone();
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let mut first = vec![0u8; 8192];
        let n = match client.read(&mut first).await {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        let head = String::from_utf8_lossy(&first[..n]).to_ascii_lowercase();
        let is_download = head.starts_with("get /backup/");
        if is_download && head.contains("\r\nrange: bytes=") {
            self.ranged_requests.fetch_add(1, Ordering::SeqCst);
        }
        if server.write_all(&first[..n]).await.is_err() {
            return;
        }
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let upstream_copy = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut seen = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = self.flip_at.load(Ordering::SeqCst);
            if is_download
                && at >= seen
                && at < seen + n as u64
                && !self.flipped.swap(true, Ordering::SeqCst)
            {
                buf[(at - seen) as usize] ^= 0x01;
            }
            seen += n as u64;
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if is_download && self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        upstream_copy.abort();
    }
}

/// A server whose public URL is a proxy, so the agents' downloads pass through it.
pub(crate) async fn proxied_replica_set(bytes: u64, seed: u64) -> (ImportedReplicaSet, Proxy) {
    let proxy = Proxy::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    proxy.point_at(&listen);
    let public = proxy.url();
    // A fixed port, so the proxy still reaches the server after a restart.
    let mut server = TestServer::start_listening(&listen, &["--public-url", &public]);
    // The tests' clients and the agents' API calls go straight to the server.
    server.url = format!("http://{listen}");
    let imported = ImportedReplicaSet::start_on(server, bytes, seed).await;
    (imported, proxy)
}

#[tokio::test]
async fn a_byte_flipped_in_transit_is_caught_by_the_sha1_and_downloaded_again() {
    let (imported, proxy) = proxied_replica_set(1 << 20, 541).await;
    proxy.flip_at.store(40_000, Ordering::SeqCst);
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let m = Member::new(target.root.path(), "solo:27017", 940);
    let agent = target.agent(&server.url, "target", "solo", &[(&m, m.start_command())]);
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    assert!(
        proxy.flipped.load(Ordering::SeqCst),
        "the proxy flipped a byte"
    );
    assert!(
        agent.log_text().contains("SHA-1 mismatch"),
        "{}",
        agent.log_text()
    );
    assert_member_restored(&m, imported.source.path());
}

#[tokio::test]
async fn an_agent_killed_mid_download_resumes_with_range_and_finishes() {
    let (imported, proxy) = proxied_replica_set(3 << 20, 551).await;
    proxy.slow.store(true, Ordering::SeqCst);
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let m = Member::new(target.root.path(), "solo:27017", 950);
    let mut agent = target.agent(&server.url, "target", "solo", &[(&m, m.start_command())]);
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let partial = m.beside("download.tar.gz");
    eventually("part of the archive is downloaded", || {
        std::fs::metadata(&partial)
            .map(|md| md.len() > 256 * 1024)
            .unwrap_or(false)
    })
    .await;
    agent.kill();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0, "the partial download is kept");
    proxy.slow.store(false, Ordering::SeqCst);
    agent.restart();
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    assert!(
        proxy.ranged_requests.load(Ordering::SeqCst) >= 1,
        "the download resumed with Range"
    );
    assert_member_restored(&m, imported.source.path());
}

#[tokio::test]
async fn a_server_restart_mid_restore_loses_nothing() {
    let (mut imported, proxy) = proxied_replica_set(3 << 20, 561).await;
    proxy.slow.store(true, Ordering::SeqCst);
    let target = Target::register(&imported.server, "target", None).await;
    let m = Member::new(target.root.path(), "solo:27017", 960);
    // The server comes back on the same port.
    let direct = imported.server.url.clone();
    let _agent = target.agent(&direct, "target", "solo", &[(&m, m.start_command())]);
    eventually_heartbeat(&imported.server.client(), &target).await;
    let jobs_path = imported.jobs_path();
    let jobs = create_automated(&imported.server, &jobs_path, &target, &imported.snapshot).await;
    let partial = m.beside("download.tar.gz");
    eventually("part of the archive is downloaded", || {
        std::fs::metadata(&partial)
            .map(|md| md.len() > 256 * 1024)
            .unwrap_or(false)
    })
    .await;
    imported.server.restart();
    imported.server.url = direct;
    proxy.slow.store(false, Ordering::SeqCst);
    let job = wait_until_ended(&imported.server, &jobs_path, job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    assert_member_restored(&m, imported.source.path());
}

#[tokio::test]
async fn a_sharded_target_gets_each_shard_and_the_config_server_from_its_own_agent() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let ImportedShardedCluster {
        cluster: source_cluster,
        snapshot,
        dirs,
    } = ImportedShardedCluster::import(&server, 400_000, 570).await;

    let target = Target::register(&server, "mirror", Some(2)).await;
    let target_sets = ["mirror-shard-0", "mirror-shard-1", "mirror-config-0"];
    let members: Vec<Member> = target_sets
        .iter()
        .map(|rs| Member::new(target.root.path(), &format!("{rs}-a:27017"), 980))
        .collect();
    let _agents: Vec<Agent> = members
        .iter()
        .zip(target_sets)
        .map(|(m, rs)| target.agent(&server.url, rs, rs, &[(m, m.start_command())]))
        .collect();
    eventually_heartbeat(&client, &target).await;
    let jobs_path = restore_jobs_path(&group, &source_cluster);
    let jobs = create_automated(&server, &jobs_path, &target, &snapshot).await;
    assert_eq!(jobs.len(), 3, "one job per shard plus the config server");
    for job in &jobs {
        let job = wait_until_ended(&server, &jobs_path, job_id(job)).await;
        assert_eq!(job["statusName"], "FINISHED", "{job}");
    }
    for (m, dir) in members.iter().zip(&dirs) {
        assert_member_restored(m, dir.path());
    }
}

#[tokio::test]
async fn two_agents_claiming_the_same_member_never_both_apply_it() {
    let imported = ImportedReplicaSet::start(500_000, 581, &[]).await;
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    // Two hosts misconfigured to serve the same member, each with its own directory.
    let mut a = Member::new(target.root.path(), "a", 990);
    let mut b = Member::new(target.root.path(), "b", 991);
    a.name = "shared:27017".to_owned();
    b.name = "shared:27017".to_owned();
    let other = Member::new(target.root.path(), "other:27017", 992);
    let _agents = [
        target.agent(&server.url, "target", "host-a", &[(&a, a.start_command())]),
        target.agent(&server.url, "target", "host-b", &[(&b, b.start_command())]),
        target.agent(
            &server.url,
            "target",
            "host-c",
            &[(&other, other.start_command())],
        ),
    ];
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let job = wait_until_ended(server, &imported.jobs_path(), job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    let source = read_tree(imported.source.path());
    let restored = [&a, &b]
        .iter()
        .filter(|m| read_tree(&m.dbpath) == source)
        .count();
    assert_eq!(restored, 1, "exactly one agent applied the shared member");
    assert_member_restored(&other, imported.source.path());
}

#[tokio::test]
async fn agent_endpoints_accept_only_backup_roles_on_the_target_project() {
    let server = TestServer::start();
    let owner = server.client();
    let group = server.boot.group_id.clone();
    let target = register_replica_set(&owner, &group, "target").await;
    let heartbeat = format!("{REWIND_API}/groups/{group}/clusters/{target}/agents/heartbeat");
    let hello = json!({"agentId": "h", "members": ["m:27017"], "replicaSetName": "target"});
    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&owner, &server.boot.org_id, &id).await;
    let reader = server.client_for(&public, &private);
    post(&reader, &heartbeat, hello.clone())
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    let other = post(
        &owner,
        &format!("{API}/groups"),
        json!({"name": "Elsewhere"}),
    )
    .await
    .json();
    let other = other["id"].as_str().unwrap().to_owned();
    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{other}/apiKeys"),
        "GROUP_BACKUP_ADMIN",
    )
    .await;
    allow_loopback(&owner, &server.boot.org_id, &id).await;
    let outsider = server.client_for(&public, &private);
    post(&outsider, &heartbeat, hello.clone())
        .await
        .assert_error(401, "NOT_IN_GROUP", &[&group]);
    post(&owner, &heartbeat, json!({"agentId": "h"}))
        .await
        .assert_error(400, "INVALID_JSON_ATTRIBUTE", &[]);
    let acked = post(&owner, &heartbeat, hello).await;
    assert_eq!(acked.status, 200, "{}", acked.text);
    assert!(acked.json()["lastHeartbeat"].is_string());
}
