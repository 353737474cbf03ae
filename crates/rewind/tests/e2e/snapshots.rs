//! Snapshots end to end: imports through the real client, the Cloud Manager snapshot
//! endpoints, dedup, verification, interrupted imports, retention and garbage collection.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// An ISO-8601 UTC time `secs` from now (negative for the past).
fn iso_from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn patch(client: &rewind_cli::client::ApiClient, path: &str, body: Value) -> Reply {
    call(client, Method::PATCH, path, Some(body)).await
}

fn object_keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn an_imported_dbpath_is_listed_fetched_patched_and_deleted_with_cloud_manager_fields() {
    let (server, client, group, cluster) = registered_replica_set(&[]).await;
    let source = tempfile::tempdir().unwrap();
    generate(source.path(), 3 << 20, 11);
    let dir = source.path().to_str().unwrap();
    let older = import(
        &server,
        &group,
        &cluster,
        &["--from", dir, "--taken-at", "1700000000:1"],
    );
    let newer = import(
        &server,
        &group,
        &cluster,
        &["--from", dir, "--taken-at", "1700003600:2"],
    );
    let (older, newer) = (
        older["snapshotId"].as_str().unwrap(),
        newer["snapshotId"].as_str().unwrap(),
    );
    let snapshots = snapshots_path(&group, &cluster);

    let list = get(&client, &snapshots).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let list = list.json();
    assert_eq!(list["totalCount"], 2);
    let ids: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [newer, older], "snapshots are listed newest first");

    let one = get(&client, &format!("{snapshots}/{newer}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let snapshot = one.json();
    assert_eq!(
        object_keys(&snapshot),
        [
            "clusterId",
            "complete",
            "created",
            "doNotDelete",
            "groupId",
            "id",
            "lastOplogAppliedTimestamp",
            "links",
            "namespaceFilterList",
            "parts"
        ],
        "a snapshot without expiry has exactly Cloud Manager's fields: {snapshot}"
    );
    assert_eq!(snapshot["clusterId"], cluster);
    assert_eq!(snapshot["groupId"], group);
    assert_eq!(snapshot["complete"], true);
    assert_eq!(snapshot["doNotDelete"], false);
    assert_eq!(
        snapshot["created"],
        json!({"date": "2023-11-14T23:13:20Z", "increment": 2})
    );
    assert_eq!(
        snapshot["links"][0]["href"],
        server.at(&format!("{snapshots}/{newer}"))
    );
    let parts = snapshot["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    let part = &parts[0];
    assert_eq!(
        object_keys(part),
        [
            "clusterId",
            "compressionSetting",
            "dataSizeBytes",
            "encryptionEnabled",
            "fileSizeBytes",
            "mongodVersion",
            "replicaSetName",
            "storageSizeBytes",
            "typeName"
        ]
    );
    assert_eq!(part["clusterId"], cluster);
    assert_eq!(part["replicaSetName"], "rs0");
    assert_eq!(part["typeName"], "REPLICA_SET");
    assert_eq!(part["compressionSetting"], "GZIP");
    assert_eq!(part["encryptionEnabled"], false);
    let tree = read_tree(source.path());
    let file_bytes: u64 = tree.values().map(|b| b.len() as u64).sum();
    let data_bytes: u64 = tree
        .iter()
        .filter(|(name, _)| name.starts_with("collection-") || name.starts_with("index-"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!(part["fileSizeBytes"], file_bytes);
    assert_eq!(part["dataSizeBytes"], data_bytes);
    let stored = part["storageSizeBytes"].as_u64().unwrap();
    assert!(
        stored > 0 && stored < file_bytes,
        "compressible data is stored smaller: {stored} of {file_bytes}"
    );

    let future = iso_from_now(7 * 86_400);
    let patched = patch(
        &client,
        &format!("{snapshots}/{newer}"),
        json!({"expires": future}),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["expires"], future);
    assert_eq!(
        get(&client, &format!("{snapshots}/{newer}")).await.json()["expires"],
        future
    );

    let kept = patch(
        &client,
        &format!("{snapshots}/{newer}"),
        json!({"doNotDelete": true}),
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    let kept = kept.json();
    assert_eq!(kept["doNotDelete"], true);
    assert!(
        kept.get("expires").is_none(),
        "doNotDelete clears expires: {kept}"
    );

    patch(
        &client,
        &format!("{snapshots}/{older}"),
        json!({"expires": iso_from_now(-60)}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["expires"]);

    delete(&client, &format!("{snapshots}/{newer}"))
        .await
        .assert_error(409, "CANNOT_DELETE_SNAPSHOT_MARKED_DO_NOT_DELETE", &[newer]);

    let deleted = delete(&client, &format!("{snapshots}/{older}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty(), "204 has no body");
    let gone = get(&client, &format!("{snapshots}/{older}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    assert_eq!(gone.json()["errorCode"], "SNAPSHOT_NOT_FOUND");
}

#[tokio::test]
async fn a_second_import_after_scattered_writes_stores_little_more_than_the_changed_bytes() {
    let (server, _, group, cluster) = registered_replica_set(&[]).await;
    let source = tempfile::tempdir().unwrap();
    generate(source.path(), 6 << 20, 21);
    let first = import_dir(&server, &group, &cluster, source.path());
    let scanned = first["bytesScanned"].as_u64().unwrap();

    let mut changed = 0;
    for (i, (writes, size)) in [(2, 4 << 10), (2, 16 << 10), (4, 64 << 10)]
        .into_iter()
        .enumerate()
    {
        changed += rewind_devtools::scatter_overwrites(source.path(), writes, size, 100 + i as u64)
            .expect("the overwrites are written");
    }
    let second = import_dir(&server, &group, &cluster, source.path());
    let newly_stored = second["bytesNewlyStored"].as_u64().unwrap();
    let uploaded = second["bytesUploaded"].as_u64().unwrap();
    assert_eq!(second["bytesScanned"].as_u64().unwrap(), scanned);
    assert!(
        newly_stored <= 3 * changed,
        "{newly_stored} bytes newly stored for {changed} bytes changed"
    );
    assert!(
        uploaded <= 3 * changed && uploaded < scanned / 5,
        "{uploaded} bytes uploaded for {changed} bytes changed of {scanned}"
    );
}

#[tokio::test]
async fn a_flipped_byte_in_a_stored_chunk_is_caught_by_verify_and_breaks_the_restore() {
    if needs_local_blocks(
        "it flips a byte of a pack file (s3_faults corrupts an object in the bucket)",
    ) {
        return;
    }
    let imported = ImportedReplicaSet::start(1 << 20, 31, &[]).await;
    let packs = pack_objects(imported.server.data_dir());
    assert!(!packs.is_empty(), "the import stored packs");
    let pack = &packs[packs.len() / 2];
    let mut bytes = std::fs::read(pack).unwrap();
    let chunks = packed_chunks(&bytes);
    assert!(chunks.len() > 2, "a pack holds many chunks");
    let victim = &chunks[chunks.len() / 2];
    let victim_id = victim.id(&bytes);
    bytes[victim.payload.start + victim.payload.len() / 2] ^= 0x40;
    std::fs::write(pack, &bytes).unwrap();
    imported.assert_damage_is_caught(&victim_id).await;
}

/// Writes `files` random (incompressible) files of `each` bytes under `dir`.
pub fn random_files(dir: &std::path::Path, files: u32, each: u64, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..files {
        rewind_devtools::write_file(
            &dir.join(format!("collection-{i}-{seed}.wt")),
            each,
            false,
            &mut rng,
        )
        .unwrap();
    }
}

#[tokio::test]
async fn an_interrupted_import_resumes_without_sending_its_chunks_again() {
    if needs_local_blocks("it counts the chunks in the pack files of the data directory") {
        return;
    }
    let (server, client, group, cluster) = registered_replica_set(&[]).await;
    let source = tempfile::tempdir().unwrap();
    // Large enough that the import is still running when its first chunks land.
    random_files(source.path(), 16, 8 << 20, 41);
    let dir = source.path().to_str().unwrap();

    let mut child = rewind_client_command(&server)
        .args([
            "snapshot",
            "import",
            "--group",
            &group,
            "--cluster",
            &cluster,
            "--json",
        ])
        .args(["--from", dir])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // More chunks than one upload batch holds: at least one batch is stored and indexed.
    while packed_chunk_count(server.data_dir()) < 300 {
        assert!(
            Instant::now() < deadline,
            "the import stored nothing in 30 s"
        );
        pause(Duration::from_millis(20)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import is still running when it is killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stored_before = packed_chunk_count(server.data_dir());

    let rerun = import_dir(&server, &group, &cluster, source.path());
    let scanned = rerun["bytesScanned"].as_u64().unwrap();
    let uploaded = rerun["bytesUploaded"].as_u64().unwrap();
    assert_eq!(scanned, 128 << 20);
    assert!(
        uploaded < scanned,
        "the rerun uploads {uploaded} of {scanned} bytes though {stored_before} chunks were stored"
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
async fn two_concurrent_imports_of_overlapping_data_both_restore_byte_identical_trees() {
    let (server, client, group, cluster) = registered_replica_set(&[]).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), 3 << 20, 51);
    generate(b.path(), 3 << 20, 51);
    random_files(a.path(), 1, 300_000, 52);
    random_files(b.path(), 1, 300_000, 53);

    let spawn = |dir: &std::path::Path| {
        rewind_client_command(&server)
            .args([
                "snapshot",
                "import",
                "--group",
                &group,
                "--cluster",
                &cluster,
                "--json",
            ])
            .args(["--from", dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(a.path()), spawn(b.path()));
    let mut snapshots = Vec::new();
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        snapshots.push(summary["snapshotId"].as_str().unwrap().to_owned());
    }

    let jobs_path = restore_jobs_path(&group, &cluster);
    for (snapshot, source) in snapshots.iter().zip([&a, &b]) {
        let jobs = create_jobs(
            &client,
            &jobs_path,
            json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot}),
        )
        .await;
        let job = wait_for_job(&client, &jobs_path, job_id(&jobs[0])).await;
        assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
        let archive = download_archive(&job).await;
        let restored = tempfile::tempdir().unwrap();
        untar(&archive, restored.path());
        assert_restored_tree(source.path(), restored.path());
    }
}

#[tokio::test]
async fn a_chunk_uploaded_under_the_wrong_hash_is_refused_and_still_missing() {
    if needs_local_blocks("it reads the pack files in the data directory") {
        return;
    }
    let server = TestServer::start();
    let client = server.client();
    let group = &server.boot.group_id;
    let data = b"a chunk whose id is not its hash".repeat(100);
    let claimed = [0xabu8; 32];
    let mut frame = claimed.to_vec();
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(&data);
    send_raw(
        &client,
        Method::POST,
        &format!("{REWIND_API}/groups/{group}/chunks"),
        &frame,
        "application/octet-stream",
    )
    .await
    .assert_error(400, "CHUNK_HASH_MISMATCH", &[&hex::encode(claimed)]);

    let missing = post(
        &client,
        &format!("{REWIND_API}/groups/{group}/chunks/missing"),
        json!({"ids": [hex::encode(claimed)]}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::OK, "{}", missing.text);
    assert_eq!(missing.json()["missing"], json!([hex::encode(claimed)]));
    assert!(
        pack_objects(server.data_dir()).is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_expired_snapshot_is_swept_and_only_its_own_chunks_are_collected() {
    if needs_local_blocks("it lists the pack files in the data directory") {
        return;
    }
    let (server, client, group, cluster) =
        registered_replica_set(&["--sweep-interval-secs", "1", "--gc-delay-secs", "1"]).await;
    let source = tempfile::tempdir().unwrap();
    generate(source.path(), 2 << 20, 61);
    let kept = import_dir(&server, &group, &cluster, source.path());
    let kept_packs: BTreeSet<_> = pack_objects(server.data_dir()).into_iter().collect();

    random_files(source.path(), 1, 400_000, 62);
    let expiring = import_dir(&server, &group, &cluster, source.path());
    let expiring_id = expiring["snapshotId"].as_str().unwrap();
    let all: BTreeSet<_> = pack_objects(server.data_dir()).into_iter().collect();
    let own: Vec<_> = all.difference(&kept_packs).cloned().collect();
    assert!(!own.is_empty(), "the second snapshot has packs of its own");

    let snapshots = snapshots_path(&group, &cluster);
    let patched = call(
        &client,
        Method::PATCH,
        &format!("{snapshots}/{expiring_id}"),
        Some(json!({"expires": iso_from_now(2)})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = get(&client, &snapshots).await.json();
        let listed = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == expiring_id);
        let collected = own.iter().all(|p| !p.exists());
        if !listed && collected {
            assert_eq!(list["totalCount"], 1, "{list}");
            assert_eq!(list["results"][0]["id"], kept["snapshotId"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 20 s: listed {listed}, own packs deleted {collected}"
        );
        pause(Duration::from_millis(200)).await;
    }
    for path in &kept_packs {
        assert!(
            path.exists(),
            "a pack the kept snapshot uses was deleted: {path:?}"
        );
    }
}
