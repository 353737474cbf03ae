//! The block store on S3 under faults, each test on a SeaweedFS of its own (the `weed`
//! binary [`WEED_VAR`] names, on free loopback ports): the server stopped in the middle of
//! an import and of a download, and an object corrupted in the bucket. Nothing is lost and
//! nothing broken is presented as whole.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::snapshots::random_files;
use crate::support::*;

/// Names the SeaweedFS binary (`weed`) these tests start their own servers with; unset,
/// they are skipped. The keys are the standard `AWS_*` variables, which it then enforces.
const WEED_VAR: &str = "REWIND_TEST_WEED";
/// Loopback ports one server takes (S3, master, volume, filer, admin, debug and their gRPC).
const PORTS_PER_SERVER: u16 = 11;
/// How long a SeaweedFS server may take to answer S3 once started (about 2 s when idle).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Port ranges tried before a test gives up starting its server.
const START_ATTEMPTS: usize = 3;
/// How long one S3 request is retried by the servers under test before it fails.
const RETRY_FLAGS: [&str; 2] = ["--s3-retry-timeout-secs", "2"];

/// A SeaweedFS of the test's own, with its data in a directory that outlives restarts.
struct Weed {
    binary: PathBuf,
    dir: tempfile::TempDir,
    base_port: u16,
    child: Option<Child>,
}

impl Weed {
    /// Starts one, or says why not and returns `None`.
    async fn start(test: &str) -> Option<Weed> {
        let Some(binary) = std::env::var_os(WEED_VAR) else {
            println!("skipped: {WEED_VAR} names no SeaweedFS binary ({test})");
            return None;
        };
        // In memory when there is one: SeaweedFS refuses writes on a nearly full disk.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary directory");
        let mut weed = Weed {
            binary: PathBuf::from(binary),
            dir,
            base_port: free_port_range(PORTS_PER_SERVER),
            child: None,
        };
        // A port of the range may be taken between the check and the server's bind (by a
        // test running beside this one): such a server exits, and another range is tried.
        for _ in 0..START_ATTEMPTS {
            if weed.run().await {
                return Some(weed);
            }
            weed.stop();
            weed.base_port = free_port_range(PORTS_PER_SERVER);
        }
        panic!(
            "SeaweedFS did not start in {START_ATTEMPTS} attempts: {}",
            weed.log_tail()
        );
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.base_port)
    }

    /// The bucket, as the test inspects and damages it.
    fn bucket(&self) -> AmazonS3 {
        AmazonS3Builder::from_env()
            .with_endpoint(self.endpoint())
            .with_bucket_name("rewind")
            .with_allow_http(true)
            .with_region("us-east-1")
            .build()
            .expect("an S3 client")
    }

    /// Every pack object in the bucket.
    async fn packs(&self) -> Vec<ObjectPath> {
        let listed: Vec<_> = self
            .bucket()
            .list(None)
            .try_collect()
            .await
            .expect("the bucket lists");
        listed
            .into_iter()
            .map(|meta| meta.location)
            .filter(|path| path.as_ref().contains("/packs/"))
            .collect()
    }

    /// Kills the server without warning, as a crash or a lost host would.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its directory and ports (the endpoint the Rewind server
    /// was given), and waits until S3 answers.
    async fn resume(&mut self) {
        assert!(
            self.run().await,
            "SeaweedFS did not restart: {}",
            self.log_tail()
        );
    }

    /// The end of the server's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2_000);
        log.get(start..).unwrap_or_default().to_owned()
    }

    /// Starts the server on its directory and ports; whether S3 answered within
    /// [`START_TIMEOUT`] (false too when the server exited first).
    async fn run(&mut self) -> bool {
        let port = |n: u16| (self.base_port + n).to_string();
        let log = std::fs::File::create(self.dir.path().join("weed.log")).expect("a log file");
        let child = Command::new(&self.binary)
            .arg("mini")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=rewind"])
            .args(["-admin.ui=false", "-webdav=false", "-volume.max=8"])
            .args([
                "-master.volumeSizeLimitMB=64",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .args(["-s3.port", &port(0), "-s3.port.grpc", &port(1)])
            .args(["-master.port", &port(2), "-master.port.grpc", &port(3)])
            .args(["-volume.port", &port(4), "-volume.port.grpc", &port(5)])
            .args(["-filer.port", &port(6), "-filer.port.grpc", &port(7)])
            .args(["-admin.port", &port(8), "-admin.port.grpc", &port(9)])
            .args(["-debug.port", &port(10)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("weed starts");
        self.child = Some(child);
        std::fs::create_dir_all(self.dir.path().join("data")).expect("the data directory");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let listed = self.bucket().list(None).next().await;
            if !matches!(listed, Some(Err(_))) {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited || Instant::now() >= deadline {
                return false;
            }
            pause(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first of `count` consecutive loopback ports that are free now.
fn free_port_range(count: u16) -> u16 {
    loop {
        // Below Linux's ephemeral ports (32768 and up), which outgoing connections take.
        let base = 10_000 + rand::random::<u16>() % 20_000;
        let free = (0..count).all(|n| TcpListener::bind(("127.0.0.1", base + n)).is_ok());
        if free {
            return base;
        }
    }
}

#[tokio::test]
async fn an_import_while_s3_is_down_fails_clearly_and_a_rerun_after_its_restart_deduplicates() {
    let test = "an import while S3 is down";
    let Some(mut weed) = Weed::start(test).await else {
        return;
    };
    let server = TestServer::start_on_s3(&weed.endpoint(), &RETRY_FLAGS);
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    let source = tempfile::tempdir().unwrap();
    random_files(source.path(), 12, 8 << 20, 61);
    let import = rewind_client_command(&server)
        .args([
            "snapshot",
            "import",
            "--group",
            &group,
            "--cluster",
            &cluster,
        ])
        .args(["--json", "--from", source.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while weed.packs().await.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the import stored nothing in 60 s"
        );
        pause(Duration::from_millis(20)).await;
    }
    weed.stop();
    let failed = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "the import went through without S3"
    );
    assert!(
        stderr.contains("503 STORAGE_UNAVAILABLE") && stderr.contains("block store"),
        "the client is told why: {stderr}"
    );

    // A request that needs the store is answered at once (within the retry bound), clearly.
    let asked = Instant::now();
    let entry = rewind_devtools::oplog::oplog_entry(crate::oplog::now_secs() - 60, 1, "x");
    let push = format!("{}/rs0", crate::oplog::oplog_path(&group, &cluster));
    let reply = send_raw(
        &client,
        reqwest::Method::POST,
        &push,
        &entry,
        "application/octet-stream",
    )
    .await;
    let body = reply.assert_error(503, "STORAGE_UNAVAILABLE", &[]);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("block store could not be reached")),
        "{body}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );

    weed.resume().await;
    let rerun = import_dir(&server, &group, &cluster, source.path());
    let scanned = rerun["bytesScanned"].as_u64().unwrap();
    let uploaded = rerun["bytesUploaded"].as_u64().unwrap();
    assert_eq!(scanned, 96 << 20);
    assert!(
        uploaded < scanned,
        "what reached S3 before it stopped is not sent again: {uploaded} of {scanned} bytes"
    );
    let snapshot = rerun["snapshotId"].as_str().unwrap();
    let fetched = get(
        &client,
        &format!("{}/{snapshot}", snapshots_path(&group, &cluster)),
    )
    .await;
    assert_eq!(fetched.json()["complete"], true, "{}", fetched.text);
}

#[tokio::test]
async fn a_download_while_s3_stops_breaks_off_and_is_not_counted() {
    let Some(mut weed) = Weed::start("a download while S3 stops").await else {
        return;
    };
    let server = TestServer::start_on_s3(&weed.endpoint(), &RETRY_FLAGS);
    // Far more than the server reads ahead (32 MiB), so that stopping S3 after the first
    // MiB leaves most of the archive unreadable.
    let imported = ImportedReplicaSet::start_on(server, 96 << 20, 62).await;
    let jobs = imported.restore(json!({ "maxDownloads": 2 })).await;
    let job = imported.ready_job(&jobs[0]).await;
    let url = job["delivery"]["url"].as_str().expect("a download link");

    let response = reqwest::get(url).await.expect("the download starts");
    assert_eq!(response.status(), 200);
    let announced = response.content_length().expect("a Content-Length");
    let mut body = response.bytes_stream();
    let mut received = 0u64;
    while received < 1 << 20 {
        received += body
            .next()
            .await
            .expect("more bytes")
            .expect("a chunk")
            .len() as u64;
    }
    weed.stop();
    let mut broke = false;
    while let Some(piece) = body.next().await {
        match piece {
            Ok(bytes) => received += bytes.len() as u64,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(
        broke || received < announced,
        "a transfer whose blocks became unreadable looks complete: {received} of {announced} bytes"
    );
    assert!(received < announced, "{received} of {announced} bytes");

    let jobs_path = restore_jobs_path(&imported.group, &imported.cluster);
    let seen = get(&imported.client, &format!("{jobs_path}/{}", job_id(&job))).await;
    assert!(
        seen.json()
            .get("hashes")
            .is_none_or(|h| h[0].get("hash").is_none()),
        "a broken transfer is not a download: {}",
        seen.text
    );

    weed.resume().await;
    let archive = download_once_s3_serves(&job).await;
    let restored = tempfile::tempdir().unwrap();
    untar(&archive, restored.path());
    assert_restored_tree(imported.source.path(), restored.path());
}

/// The job's archive, downloaded whole once S3 serves reads again. SeaweedFS answers S3
/// before its volume server serves reads after a restart, so the first downloads may still
/// break off (uncounted), as a client trying again would see; a few tries, a second apart.
async fn download_once_s3_serves(job: &Value) -> Vec<u8> {
    let url = job["delivery"]["url"]
        .as_str()
        .expect("a ready job has a URL");
    for _ in 0..10 {
        if let Ok(response) = reqwest::get(url).await {
            if response.status() == StatusCode::OK {
                // A body cut short is an error (its length was announced), never a short Ok.
                if let Ok(body) = response.bytes().await {
                    return body.to_vec();
                }
            }
        }
        pause(Duration::from_secs(1)).await;
    }
    panic!("no whole download within 10 tries after S3 came back");
}

#[tokio::test]
async fn an_object_corrupted_in_the_bucket_is_caught_by_verify_and_breaks_the_restore() {
    let Some(weed) = Weed::start("an object corrupted in the bucket").await else {
        return;
    };
    let server = TestServer::start_on_s3(&weed.endpoint(), &RETRY_FLAGS);
    let imported = ImportedReplicaSet::start_on(server, 1 << 20, 63).await;
    let packs = weed.packs().await;
    assert!(!packs.is_empty(), "the import stored packs in the bucket");
    let pack = &packs[packs.len() / 2];
    let bucket = weed.bucket();
    let mut bytes = bucket
        .get(pack)
        .await
        .expect("the pack reads")
        .bytes()
        .await
        .expect("its bytes")
        .to_vec();
    let chunks = packed_chunks(&bytes);
    assert!(chunks.len() > 2, "a pack holds many chunks");
    let victim = &chunks[chunks.len() / 2];
    let victim_id = victim.id(&bytes);
    bytes[victim.payload.start + victim.payload.len() / 2] ^= 0x40;
    bucket
        .put(pack, bytes.into())
        .await
        .expect("the damaged pack is written back");

    imported.assert_damage_is_caught(&victim_id).await;
}
