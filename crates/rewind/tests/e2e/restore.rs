//! Restore jobs end to end: the seed's own curl example, sharded batches, a crash during
//! preparation, the client's download command, and the shape of the create response.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::foundation::raw_key_order;
use crate::support::*;

fn has_curl_and_tar() -> bool {
    ["curl", "tar", "sha1sum", "diff"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok())
}

/// Runs `curl` with `args`; returns the status code of the last response and its body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// `curl --digest` with the bootstrap key, as the Cloud Manager page shows it.
fn curl_digest(server: &TestServer, args: &[&str]) -> (u16, Value) {
    let user = format!("{}:{}", server.boot.public_key, server.boot.private_key);
    let mut all = vec![
        "--user",
        &user,
        "--digest",
        "--header",
        "Accept: application/json",
        "--header",
        "Content-Type: application/json",
    ];
    all.extend_from_slice(args);
    let (code, body) = curl(&all);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (code, value)
}

#[tokio::test]
async fn the_seed_curl_example_restores_a_snapshot_that_tar_extracts_to_the_source_tree() {
    if !has_curl_and_tar() {
        println!("note: curl, tar, sha1sum or diff is missing; skipping the seed curl example");
        return;
    }
    let imported = ImportedReplicaSet::start(2 << 20, 71, &[]).await;
    let server = &imported.server;
    let jobs_url = server.at(&imported.jobs_path());
    let body = format!(
        r#"
   {{
     "delivery" : {{
       "expirationHours" : "1",
       "maxDownloads" : "1",
       "methodName" : "HTTP"
     }},
     "snapshotId" : "{}"
   }}"#,
        imported.snapshot
    );
    let (code, created) = curl_digest(
        server,
        &[
            "--request",
            "POST",
            &format!("{jobs_url}?pretty=true"),
            "--data",
            &body,
        ],
    );
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["totalCount"], 1, "{created}");
    let job = &created["results"][0];
    assert_eq!(
        job["delivery"]["maxDownloads"], 1,
        "numbers answer as numbers"
    );
    assert_eq!(job["delivery"]["expirationHours"], 1);
    let job_url = format!("{jobs_url}/{}", job_id(job));

    let deadline = Instant::now() + JOB_READY_WITHIN;
    let job = loop {
        let (code, job) = curl_digest(server, &[&job_url]);
        assert_eq!(code, 200, "{job}");
        if job["delivery"]["statusName"] == "READY" {
            assert_eq!(job["statusName"], "FINISHED", "{job}");
            break job;
        }
        assert!(Instant::now() < deadline, "not ready: {job}");
        pause(Duration::from_millis(100)).await;
    };
    assert!(
        job.get("hashes").is_none(),
        "no hash before a download: {job}"
    );
    let url = job["delivery"]["url"].as_str().unwrap().to_owned();
    let file_name = url.rsplit('/').next().unwrap().to_owned();

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join(&file_name);
    let (code, _) = curl(&["--output", archive.to_str().unwrap(), &url]);
    assert_eq!(code, 200);
    let extracted = work.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    gnu_untar(&archive, &extracted);
    assert!(extracted.join("restoreInfo.txt").is_file());
    let diff = Command::new("diff")
        .args(["-r", "--exclude=restoreInfo.txt"])
        .arg(imported.source.path())
        .arg(&extracted)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "the restored tree differs: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let sha1sum = Command::new("sha1sum").arg(&archive).output().unwrap();
    let local_sha1 = String::from_utf8_lossy(&sha1sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // The download's completion is recorded as its last byte leaves; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let (_, job) = curl_digest(server, &[&job_url]);
        if job["delivery"]["statusName"] == "MAX_DOWNLOADS_EXCEEDED" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the download was not counted: {job}"
        );
        pause(Duration::from_millis(50)).await;
    };
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    assert_eq!(
        job["hashes"],
        json!([{"fileName": file_name, "hash": local_sha1, "typeName": "SHA1"}]),
        "{job}"
    );

    let (code, refused) = curl(&[&url]);
    assert_eq!(code, 410, "{refused}");
    assert!(refused.contains("\"MAX_DOWNLOADS_EXCEEDED\""), "{refused}");
}

#[tokio::test]
async fn a_sharded_cluster_restores_as_one_job_per_replica_set_in_one_batch() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let ImportedShardedCluster {
        cluster,
        snapshot,
        dirs,
    } = ImportedShardedCluster::import(&server, 600_000, 80).await;
    let snapshot = snapshot.as_str();

    let jobs_path = restore_jobs_path(&group, &cluster);
    let body = json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot});
    let jobs = create_jobs(&client, &jobs_path, body.clone()).await;
    assert_eq!(
        jobs.len(),
        3,
        "one job per shard and one for the config server"
    );
    let batch = jobs[0]["batchId"].as_str().expect("a batch id").to_owned();
    for job in &jobs {
        assert_eq!(job["batchId"], batch.as_str());
        assert_eq!(
            job["clusterName"], "ledger",
            "jobs name the sharded cluster"
        );
    }
    let other = create_jobs(&client, &jobs_path, body).await;
    assert_ne!(
        other[0]["batchId"],
        batch.as_str(),
        "a second restore is another batch"
    );

    let listed = get(&client, &format!("{jobs_path}?batchId={batch}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let listed = listed.json();
    assert_eq!(listed["totalCount"], 3, "{listed}");
    let ids = |jobs: &[Value]| {
        jobs.iter()
            .map(|j| job_id(j).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(listed["results"].as_array().unwrap()), ids(&jobs));
    assert_eq!(get(&client, &jobs_path).await.json()["totalCount"], 6);

    for job in &jobs {
        let job = wait_for_job(&client, &jobs_path, job_id(job)).await;
        assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
        let url = job["delivery"]["url"].as_str().unwrap();
        let file = url.rsplit('/').next().unwrap();
        let part = if file.starts_with(&format!("config-ledger-ledger-config-0-{cluster}-")) {
            2
        } else if file.starts_with("ledger-shard-0-") {
            0
        } else if file.starts_with("ledger-shard-1-") {
            1
        } else {
            panic!("an archive named after no replica set: {file}");
        };
        assert!(
            file.ends_with(&format!("-{}.tar.gz", job_id(&job))),
            "{file}"
        );
        let restored = tempfile::tempdir().unwrap();
        untar(&download_archive(&job).await, restored.path());
        assert_restored_tree(dirs[part].path(), restored.path());
    }
}

#[tokio::test]
async fn a_server_killed_while_preparing_jobs_finishes_them_all_after_a_restart() {
    let mut imported = ImportedReplicaSet::start(32 << 20, 91, &[]).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let jobs = imported.restore(json!({"maxDownloads": 1})).await;
        ids.push(job_id(&jobs[0]).to_owned());
    }
    // The kill must land while preparation is under way, or this proves nothing.
    let listed = get(
        &imported.client,
        &format!("{}?itemsPerPage=100", imported.jobs_path()),
    )
    .await;
    let unfinished = listed.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| is_being_prepared(job))
        .count();
    assert!(
        unfinished > 0,
        "all 10 jobs were prepared before the kill; the archive is too small to catch the worker mid-way"
    );
    imported.server.restart();
    imported.client = imported.server.client();
    let jobs_path = imported.jobs_path();
    // A job the killed process had claimed is held by its lease (60 s) before another
    // worker may take it over.
    let bound = Duration::from_secs(60) + JOB_READY_WITHIN;
    for id in &ids {
        let job = wait_for_job_within(&imported.client, &jobs_path, id, bound).await;
        assert_eq!(job["statusName"], "FINISHED", "{job}");
        assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
    }
}

/// Concurrent creations are written together (group commit) and prepared in batches: every
/// request still gets its own job, each listed once and each prepared with its own archive.
#[tokio::test]
async fn concurrent_creations_each_get_their_own_prepared_job() {
    let imported = ImportedReplicaSet::start(256 << 10, 57, &[]).await;
    let created = futures::future::join_all(
        (0..40).map(|_| imported.restore(json!({"maxDownloads": 1, "expirationHours": 2}))),
    )
    .await;
    let ids: BTreeSet<String> = created
        .iter()
        .flatten()
        .map(|job| job_id(job).to_owned())
        .collect();
    assert_eq!(ids.len(), 40, "40 requests, 40 distinct jobs");
    let page: Value = imported
        .client
        .get_json(&format!("{}?itemsPerPage=100", imported.jobs_path()))
        .await
        .unwrap();
    assert_eq!(page["totalCount"], 40, "{page}");
    let mut hashes = BTreeSet::new();
    for id in &ids {
        let job = wait_for_job(&imported.client, &imported.jobs_path(), id).await;
        assert_eq!(job["statusName"], "FINISHED", "{job}");
        assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
        assert!(job["delivery"]["expires"].is_string(), "{job}");
        let url = job["delivery"]["url"].as_str().unwrap();
        let archive = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        // The download is recorded once the server has sent the last byte, which can be a
        // moment after the client has read it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let downloaded = loop {
            let job = wait_for_job(&imported.client, &imported.jobs_path(), id).await;
            if job.get("hashes").is_some() || Instant::now() > deadline {
                break job;
            }
            pause(Duration::from_millis(20)).await;
        };
        assert_eq!(
            downloaded["hashes"][0]["hash"].as_str(),
            Some(sha1_hex(&archive).as_str()),
            "the worker's SHA-1 is the delivered archive's: {downloaded}"
        );
        hashes.insert(sha1_hex(&archive));
    }
    // Each archive names its own job in restoreInfo.txt, so no two are the same bytes.
    assert_eq!(hashes.len(), 40);
}

#[tokio::test]
async fn the_download_command_verifies_the_sha1_and_extracts_the_source_tree() {
    let imported = ImportedReplicaSet::start(2 << 20, 101, &[]).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let id = job_id(&jobs[0]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = rewind_as_client(
        &imported.server,
        &[
            "restore",
            "download",
            id,
            "--group",
            &imported.group,
            "--cluster",
            &imported.cluster,
            "--out",
            out_dir.path().to_str().unwrap(),
            "--extract",
        ],
    );
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("verified"), "{stdout}");
    let job = imported.ready_job(&jobs[0]).await;
    let file = job["delivery"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let archive = out_dir.path().join(&file);
    let bytes = std::fs::read(&archive).expect("the archive is kept");
    assert_eq!(job["hashes"][0]["hash"], sha1_hex(&bytes));
    let extracted = out_dir.path().join(file.trim_end_matches(".tar.gz"));
    assert_restored_tree(imported.source.path(), Path::new(&extracted));
}

#[tokio::test]
async fn the_create_response_is_a_list_page_of_jobs_with_alphabetical_fields() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let source_cluster = register_replica_set(&client, &group, "orders").await;
    let target_cluster = register_replica_set(&client, &group, "orders-copy").await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 300_000, 111);
    let summary = import_dir(&server, &group, &source_cluster, dir.path());
    let snapshot = summary["snapshotId"].as_str().unwrap();
    let jobs_path = restore_jobs_path(&group, &source_cluster);

    let reply = post(
        &client,
        &jobs_path,
        json!({"delivery": {"methodName": "HTTP", "maxDownloads": 2}, "snapshotId": snapshot}),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "creation answers 200: {}",
        reply.text
    );
    assert_eq!(
        raw_key_order(&reply.text),
        ["links", "results", "totalCount"]
    );
    let results_at = reply.text.find("\"results\":[").unwrap() + "\"results\":[".len();
    let keys = raw_key_order(&reply.text[results_at..]);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "job fields in alphabetical order");
    for field in [
        "clusterId",
        "created",
        "delivery",
        "encryptionEnabled",
        "groupId",
        "id",
        "links",
        "pointInTime",
        "snapshotId",
        "statusName",
        "timestamp",
    ] {
        assert!(
            keys.iter().any(|k| k == field),
            "{field} missing from {keys:?}"
        );
    }
    let job = &reply.json()["results"][0];
    assert_eq!(job["statusName"], "IN_PROGRESS");
    assert_eq!(job["delivery"]["statusName"], "NOT_STARTED");
    assert_eq!(job["delivery"]["methodName"], "HTTP");
    assert_eq!(job["delivery"]["maxDownloads"], 2);
    assert_eq!(job["delivery"]["expirationHours"], 48);
    assert_eq!(job["pointInTime"], false);
    assert!(
        job.get("batchId").is_none(),
        "a replica-set job has no batch"
    );
    let fetched = get(&client, &format!("{jobs_path}/{}", job_id(job))).await;
    let keys = raw_key_order(&fetched.text);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "job fields in alphabetical order on GET");

    let automated = post(
        &client,
        &jobs_path,
        json!({
            "delivery": {
                "methodName": "AUTOMATED_RESTORE",
                "targetClusterId": target_cluster,
                "targetGroupId": group,
            },
            "snapshotId": snapshot,
        }),
    )
    .await;
    assert_eq!(automated.status, StatusCode::OK, "{}", automated.text);
    let delivery = &automated.json()["results"][0]["delivery"];
    assert_eq!(
        delivery["methodName"], "HTTP",
        "automated jobs answer HTTP: {delivery}"
    );
    assert_eq!(delivery["targetGroupId"], group);
    assert_eq!(delivery["targetClusterId"], target_cluster);
    assert!(delivery.get("url").is_none(), "{delivery}");
    assert!(delivery.get("maxDownloads").is_none(), "{delivery}");
}
