//! Shared steps of the snapshot and restore tests: generated data directories, imports
//! through the real `rewind` client, restore jobs, downloads and tree comparisons.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rewind_cli::client::ApiClient;
use rewind_formats::ChunkId;
use rewind_server::blocks::chunk::{OBJECT_HEADER_BYTES, OBJECT_MAGIC};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::support::*;

/// The longest a restore job of a few MiB may take to become ready.
pub const JOB_READY_WITHIN: Duration = Duration::from_secs(60);

/// Generates a dbpath-shaped tree of about `bytes` under `dir`.
pub fn generate(dir: &Path, bytes: u64, seed: u64) {
    rewind_devtools::generate_dbpath(dir, bytes, seed).expect("the dbpath is generated");
}

/// A `rewind` command carrying the bootstrap key and the server address in the environment.
pub fn rewind_client_command(server: &TestServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewind"));
    command
        .env_remove("RUST_LOG")
        .env("REWIND_SERVER", &server.url)
        .env("REWIND_PUBLIC_KEY", &server.boot.public_key)
        .env("REWIND_PRIVATE_KEY", &server.boot.private_key);
    command
}

/// Runs a client `rewind` command to completion.
pub fn rewind_as_client(server: &TestServer, args: &[&str]) -> Output {
    rewind_client_command(server)
        .args(args)
        .output()
        .expect("the rewind binary runs")
}

/// `rewind snapshot import --json` with `source` (`["--from", DIR]` or `--part` pairs);
/// returns its summary.
pub fn import(server: &TestServer, group: &str, cluster: &str, source: &[&str]) -> Value {
    let mut args = vec![
        "snapshot",
        "import",
        "--group",
        group,
        "--cluster",
        cluster,
        "--json",
    ];
    args.extend_from_slice(source);
    let out = rewind_as_client(server, &args);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("import --json prints a summary")
}

/// `import` of one replica set's directory; returns the summary.
pub fn import_dir(server: &TestServer, group: &str, cluster: &str, dir: &Path) -> Value {
    import(server, group, cluster, &["--from", dir.to_str().unwrap()])
}

/// Registers a replica set and returns its cluster id.
pub async fn register_replica_set(client: &ApiClient, group: &str, name: &str) -> String {
    let registered = register_cluster(client, group, json!({ "clusterName": name })).await;
    registered["members"][0]["id"].as_str().unwrap().to_owned()
}

/// A server with one registered replica set, and a generated dbpath imported into it.
/// A server with one registered replica set `rs0`: the server, a client holding the
/// bootstrap key, and the project and cluster ids.
pub async fn registered_replica_set(flags: &[&str]) -> (TestServer, ApiClient, String, String) {
    let server = TestServer::start_with(flags);
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    (server, client, group, cluster)
}

pub struct ImportedReplicaSet {
    pub server: TestServer,
    pub client: ApiClient,
    pub group: String,
    pub cluster: String,
    pub snapshot: String,
    pub source: tempfile::TempDir,
}

impl ImportedReplicaSet {
    /// `bytes` of generated data (seed `seed`) imported into replica set `rs0`.
    pub async fn start(bytes: u64, seed: u64, flags: &[&str]) -> ImportedReplicaSet {
        ImportedReplicaSet::start_on(TestServer::start_with(flags), bytes, seed).await
    }

    /// As `start`, on a server already started.
    pub async fn start_on(server: TestServer, bytes: u64, seed: u64) -> ImportedReplicaSet {
        ImportedReplicaSet::start_taken_at(server, bytes, seed, &[]).await
    }

    /// As `start_on`, with `import_flags` (such as `--taken-at`) added to the import.
    pub async fn start_taken_at(
        server: TestServer,
        bytes: u64,
        seed: u64,
        import_flags: &[&str],
    ) -> ImportedReplicaSet {
        let client = server.client();
        let group = server.boot.group_id.clone();
        let cluster = register_replica_set(&client, &group, "rs0").await;
        let source = tempfile::tempdir().unwrap();
        generate(source.path(), bytes, seed);
        let mut args = vec!["--from", source.path().to_str().unwrap()];
        args.extend_from_slice(import_flags);
        let summary = import(&server, &group, &cluster, &args);
        let snapshot = summary["snapshotId"].as_str().unwrap().to_owned();
        ImportedReplicaSet {
            server,
            client,
            group,
            cluster,
            snapshot,
            source,
        }
    }

    pub fn jobs_path(&self) -> String {
        restore_jobs_path(&self.group, &self.cluster)
    }

    /// Creates an HTTP restore of the snapshot with `delivery` fields added to
    /// `methodName: HTTP`; returns the created jobs.
    pub async fn restore(&self, delivery: Value) -> Vec<Value> {
        let mut d = json!({ "methodName": "HTTP" });
        for (k, v) in delivery.as_object().unwrap() {
            d[k] = v.clone();
        }
        create_jobs(
            &self.client,
            &self.jobs_path(),
            json!({ "delivery": d, "snapshotId": self.snapshot }),
        )
        .await
    }

    /// Waits until the job is prepared (or broken) and returns it.
    pub async fn ready_job(&self, job: &Value) -> Value {
        wait_for_job(&self.client, &self.jobs_path(), job_id(job)).await
    }

    /// With the chunk `victim_id` damaged in the block store: verification names it, and a
    /// restore job is BROKEN with a reason and offers no download.
    pub async fn assert_damage_is_caught(&self, victim_id: &str) {
        let out = rewind_as_client(
            &self.server,
            &[
                "snapshot",
                "verify",
                "--group",
                &self.group,
                "--cluster",
                &self.cluster,
                "--snapshot",
                &self.snapshot,
                "--json",
            ],
        );
        assert!(!out.status.success(), "verify exits non-zero on damage");
        let report: Value =
            serde_json::from_slice(&out.stdout).expect("verify --json prints a report");
        assert_eq!(report["corrupt"], json!([victim_id]), "{report}");
        assert_eq!(report["missing"], json!([]), "{report}");

        let jobs = self.restore(json!({"maxDownloads": 1})).await;
        let job = self.ready_job(&jobs[0]).await;
        assert_eq!(job["statusName"], "BROKEN", "{job}");
        assert_eq!(job["delivery"]["statusName"], "FAILED", "{job}");
        assert!(
            job["failureReason"].as_str().is_some_and(|r| !r.is_empty()),
            "a broken job says why: {job}"
        );
        assert!(
            job["delivery"].get("url").is_none(),
            "no download is offered: {job}"
        );
        assert!(job.get("hashes").is_none(), "{job}");
    }
}

pub fn restore_jobs_path(group: &str, cluster: &str) -> String {
    format!("{API}/groups/{group}/clusters/{cluster}/restoreJobs")
}

pub fn snapshots_path(group: &str, cluster: &str) -> String {
    format!("{API}/groups/{group}/clusters/{cluster}/snapshots")
}

pub fn job_id(job: &Value) -> &str {
    job["id"].as_str().expect("a job has an id")
}

/// POSTs a create body and returns the jobs of the 200 list page.
pub async fn create_jobs(client: &ApiClient, jobs_path: &str, body: Value) -> Vec<Value> {
    let reply = post(client, jobs_path, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["results"].as_array().unwrap().clone()
}

/// Polls a job until it leaves preparation: delivery `READY` (or later) or the job `BROKEN`.
pub async fn wait_for_job(client: &ApiClient, jobs_path: &str, id: &str) -> Value {
    wait_for_job_within(client, jobs_path, id, JOB_READY_WITHIN).await
}

/// Whether a job's archive is still being prepared: not BROKEN, delivery not yet `READY`.
pub fn is_being_prepared(job: &Value) -> bool {
    let delivery = job["delivery"]["statusName"].as_str().unwrap_or("");
    job["statusName"] != "BROKEN" && matches!(delivery, "NOT_STARTED" | "IN_PROGRESS")
}

/// `wait_for_job` with a chosen bound.
pub async fn wait_for_job_within(
    client: &ApiClient,
    jobs_path: &str,
    id: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let reply = get(client, &format!("{jobs_path}/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let job = reply.json();
        if !is_being_prepared(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is still being prepared: {job}"
        );
        pause(Duration::from_millis(100)).await;
    }
}

/// A plain (unauthenticated) GET of a download URL, with an optional `Range` header.
pub async fn fetch(
    url: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    fetch_with(reqwest::Method::GET, url, range).await
}

/// As `fetch`, with another method (`HEAD`).
pub async fn fetch_with(
    method: reqwest::Method,
    url: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(range) = range {
        request = request.header(reqwest::header::RANGE, range);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the body arrives").to_vec();
    (status, headers, body)
}

/// The error code of a JSON error body.
pub fn error_code(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    value["errorCode"].as_str().unwrap_or("").to_owned()
}

pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// Extracts a `.tar.gz` held in memory into `dir`.
pub fn untar(archive: &[u8], dir: &Path) {
    let gz = flate2::read::MultiGzDecoder::new(archive);
    tar::Archive::new(gz)
        .unpack(dir)
        .expect("the archive is a valid tar.gz");
}

/// Extracts the `.tar.gz` file `archive` into `dir` with GNU tar, which must succeed
/// (gzip checks every member's CRC-32 and length on the way).
#[track_caller]
pub fn gnu_untar(archive: &Path, dir: &Path) {
    let tar = Command::new("tar")
        .arg("xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .output()
        .expect("GNU tar runs");
    assert!(
        tar.status.success(),
        "tar xzf failed: {}",
        String::from_utf8_lossy(&tar.stderr)
    );
}

/// Every regular file under `root`, by path relative to it, with its content.
pub fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    try_read_tree(root).unwrap_or_else(|err| panic!("cannot read {}: {err}", root.display()))
}

/// As `read_tree`, or the error when the tree changed while it was read (a file removed
/// between listing and reading it), for checks that wait for a tree to settle.
pub fn try_read_tree(root: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under the root");
                let relative = relative.to_string_lossy().replace('\\', "/");
                files.insert(relative, std::fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

/// Asserts `restored` holds exactly the files of `source`, byte for byte, plus a
/// `restoreInfo.txt`.
#[track_caller]
pub fn assert_restored_tree(source: &Path, restored: &Path) {
    let expected = read_tree(source);
    let mut actual = read_tree(restored);
    let info = actual
        .remove("restoreInfo.txt")
        .expect("the archive holds restoreInfo.txt");
    assert!(!info.is_empty(), "restoreInfo.txt is empty");
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&actual), names(&expected), "the restored file names");
    for (name, bytes) in &expected {
        assert!(
            actual[name] == *bytes,
            "{name} differs: {} bytes restored, {} imported",
            actual[name].len(),
            bytes.len()
        );
    }
}

/// Downloads a ready job's archive in full and returns it.
pub async fn download_archive(job: &Value) -> Vec<u8> {
    let url = job["delivery"]["url"]
        .as_str()
        .expect("a ready job has a URL");
    let (status, _, body) = fetch(url, None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    body
}

/// Every pack object the block store holds under `data_dir`.
pub fn pack_objects(data_dir: &Path) -> Vec<PathBuf> {
    let root = data_dir.join("blocks").join("packs");
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A chunk object inside a pack file.
pub struct PackedChunk {
    /// Where the chunk's payload lies in the pack file.
    pub payload: Range<usize>,
    /// Encoding byte of the object header: 0 raw, 1 raw deflate.
    pub encoding: u8,
}

impl PackedChunk {
    /// The chunk's id (64 hex digits), recovered by decoding its payload out of `pack`.
    pub fn id(&self, pack: &[u8]) -> String {
        let payload = &pack[self.payload.clone()];
        let plain = match self.encoding {
            0 => payload.to_vec(),
            1 => {
                let mut plain = Vec::new();
                flate2::read::DeflateDecoder::new(payload)
                    .read_to_end(&mut plain)
                    .unwrap();
                plain
            }
            other => panic!("unknown chunk encoding {other}"),
        };
        ChunkId::of(&plain).to_hex()
    }
}

/// Splits a pack into its chunk objects by walking their headers: a pack is the chunks'
/// object bytes end to end, each header giving the encoding (byte 5) and the payload's
/// length (bytes 16..20, big-endian).
pub fn packed_chunks(pack: &[u8]) -> Vec<PackedChunk> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < pack.len() {
        let header = &pack[at..at + OBJECT_HEADER_BYTES];
        assert_eq!(header[..4], OBJECT_MAGIC, "a chunk object starts at {at}");
        let len = u32::from_be_bytes(header[16..20].try_into().unwrap()) as usize;
        let start = at + OBJECT_HEADER_BYTES;
        found.push(PackedChunk {
            payload: start..start + len,
            encoding: header[5],
        });
        at = start + len;
    }
    found
}

/// How many chunks the packs under `data_dir` hold.
pub fn packed_chunk_count(data_dir: &Path) -> usize {
    pack_objects(data_dir)
        .iter()
        .filter_map(|pack| std::fs::read(pack).ok())
        .map(|bytes| packed_chunks(&bytes).len())
        .sum()
}

/// A sharded cluster `ledger` (two shards and a config server) registered on `server`,
/// with a generated directory of `bytes` per replica set (seeds from `seed`) imported.
pub struct ImportedShardedCluster {
    pub cluster: String,
    pub snapshot: String,
    /// Source directories of `ledger-shard-0`, `ledger-shard-1`, `ledger-config-0`.
    pub dirs: Vec<tempfile::TempDir>,
}

impl ImportedShardedCluster {
    pub async fn import(server: &TestServer, bytes: u64, seed: u64) -> ImportedShardedCluster {
        ImportedShardedCluster::import_with(server, bytes, seed, json!({}), &[]).await
    }

    /// As `import`, with `registration`'s fields added to the registration body (such as
    /// `featureCompatibilityVersion`) and `import_flags` added to `rewind snapshot import`
    /// (such as `--taken-at`).
    pub async fn import_with(
        server: &TestServer,
        bytes: u64,
        seed: u64,
        registration: Value,
        import_flags: &[&str],
    ) -> ImportedShardedCluster {
        let client = server.client();
        let group = server.boot.group_id.clone();
        let mut body = json!({"clusterName": "ledger", "shards": 2});
        for (k, v) in registration.as_object().expect("registration fields") {
            body[k] = v.clone();
        }
        let registered = register_cluster(&client, &group, body).await;
        let cluster = registered["members"][0]["id"].as_str().unwrap().to_owned();
        let parts = ["ledger-shard-0", "ledger-shard-1", "ledger-config-0"];
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut source = Vec::new();
        for (i, (name, dir)) in parts.iter().zip(&dirs).enumerate() {
            generate(dir.path(), bytes, seed + i as u64);
            source.push("--part".to_owned());
            source.push(format!("{name}={}", dir.path().display()));
        }
        let mut source: Vec<&str> = source.iter().map(String::as_str).collect();
        source.extend_from_slice(import_flags);
        let summary = import(server, &group, &cluster, &source);
        let snapshot = summary["snapshotId"].as_str().unwrap().to_owned();
        ImportedShardedCluster {
            cluster,
            snapshot,
            dirs,
        }
    }
}

/// A `python3` command that can import MongoDB's own BSON implementation (the `bson`
/// package of `pymongo`), to read archives independently of this crate's BSON code: the
/// system's when it has it (CI installs it), else with `pymongo` installed once from PyPI
/// into a directory under the target directory (`pip --target`, nothing system-wide).
pub fn python_with_bson() -> Command {
    static EXTRA_PATH: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let python = |path: Option<&Path>| {
        let mut command = Command::new("python3");
        if let Some(path) = path {
            command.env("PYTHONPATH", path);
        }
        command
    };
    let has_bson = |path: Option<&Path>| {
        python(path)
            .args(["-c", "import bson; bson.decode_all; bson.Timestamp"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let extra = EXTRA_PATH.get_or_init(|| {
        if has_bson(None) {
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pymongo");
        if !has_bson(Some(&dir)) {
            let installed = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--target"])
                .arg(&dir)
                .arg("pymongo")
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                installed,
                "python3 lacks pymongo and pip could not install it (`pip install pymongo`)"
            );
        }
        assert!(has_bson(Some(&dir)), "pymongo's bson is not importable");
        Some(dir)
    });
    python(extra.as_deref())
}

/// The entries of an `oplog.bson` as MongoDB's Python driver decodes them: for each, its
/// `ts` (seconds, increment), `op`, `ns` and `o.note`.
pub fn decode_oplog_with_pymongo(file: &Path) -> Vec<(u32, u32, String, String, String)> {
    const SCRIPT: &str = "import bson, json, sys\n\
        docs = bson.decode_all(open(sys.argv[1], 'rb').read())\n\
        print(json.dumps([[d['ts'].time, d['ts'].inc, d['op'], d['ns'], d['o']['note']] for d in docs]))\n";
    let out = python_with_bson()
        .args(["-c", SCRIPT])
        .arg(file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "pymongo could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
