//! The oplog store end to end: `rewind oplog push|status|window` and the oplog endpoints,
//! with the refusals that must store nothing, gaps, roles, bad input and retention.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rewind_cli::client::ApiClient;
use rewind_devtools::oplog::{oplog_entry, write_oplog, OplogSpec};
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// A server with one registered replica set `rs0`: the server, a client holding the
/// bootstrap key, the project and cluster ids (see the fixture), and a directory for files
/// to push.
async fn replica_set_with_files(
    flags: &[&str],
) -> (TestServer, ApiClient, String, String, tempfile::TempDir) {
    let (server, client, group, cluster) = registered_replica_set(flags).await;
    (server, client, group, cluster, tempfile::tempdir().unwrap())
}

pub fn now_secs() -> u32 {
    chrono::Utc::now().timestamp() as u32
}

/// Writes entries `(seconds, increment, note)` to `path`, in the order given.
pub fn write_entries(path: &Path, entries: &[(u32, u32, &str)]) {
    let bytes: Vec<u8> = entries
        .iter()
        .flat_map(|(secs, inc, note)| oplog_entry(*secs, *inc, note))
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// Entries `(secs, 1..=count)` with `note`.
fn run_of(secs: u32, count: u32, note: &str) -> Vec<(u32, u32, String)> {
    (1..=count)
        .map(|inc| (secs, inc, note.to_owned()))
        .collect()
}

fn write_run(path: &Path, entries: &[(u32, u32, String)]) {
    let borrowed: Vec<(u32, u32, &str)> = entries
        .iter()
        .map(|(s, i, n)| (*s, *i, n.as_str()))
        .collect();
    write_entries(path, &borrowed);
}

pub fn oplog_path(group: &str, cluster: &str) -> String {
    format!("{REWIND_API}/groups/{group}/clusters/{cluster}/oplog")
}

/// `rewind oplog push` of `file` with extra flags.
pub fn push_file(
    server: &TestServer,
    group: &str,
    cluster: &str,
    file: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec!["oplog", "push", "--group", group, "--cluster", cluster];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    rewind_as_client(server, &args)
}

/// `push_file --json`, which must succeed; returns the report.
pub fn push_ok(
    server: &TestServer,
    group: &str,
    cluster: &str,
    file: &Path,
    extra: &[&str],
) -> Value {
    let mut flags = vec!["--json"];
    flags.extend_from_slice(extra);
    let out = push_file(server, group, cluster, file, &flags);
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("push --json prints a report")
}

/// `push_file`, which must fail; returns its standard error.
fn push_refused(
    server: &TestServer,
    group: &str,
    cluster: &str,
    file: &Path,
    extra: &[&str],
) -> String {
    let out = push_file(server, group, cluster, file, extra);
    assert!(!out.status.success(), "the push should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn status_of(client: &ApiClient, group: &str, cluster: &str, replica_set: &str) -> Value {
    let reply = get(
        client,
        &format!("{}/{replica_set}", oplog_path(group, cluster)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

/// Every slice object under the server's block store.
fn slice_objects(server: &TestServer) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.data_dir().join("blocks/oplog"), &mut out);
    out.sort();
    out
}

async fn push_raw(client: &ApiClient, path: &str, body: &[u8]) -> Reply {
    send_raw(client, Method::POST, path, body, "application/octet-stream").await
}

pub fn ts(secs: u32, inc: u32) -> Value {
    json!({
        "date": chrono::DateTime::from_timestamp(i64::from(secs), 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "increment": inc
    })
}

#[tokio::test]
async fn a_pushed_file_is_stored_shown_by_status_and_a_repush_stores_nothing_new() {
    if needs_local_blocks("it counts the slice files in the data directory") {
        return;
    }
    let (server, client, group, cluster, dir) = replica_set_with_files(&[]).await;
    let file = dir.path().join("oplog.bson");
    let end = now_secs();
    let spec = OplogSpec {
        entries: 30_000,
        span_secs: 3_600,
        end_secs: end,
        seed: 7,
    };
    let written = write_oplog(&file, spec).unwrap();

    let report = push_ok(&server, &group, &cluster, &file, &[]);
    assert_eq!(report["entriesPushed"], 30_000);
    assert_eq!(report["entriesStored"], 30_000);
    assert_eq!(report["entriesAlreadyStored"], 0);
    assert_eq!(report["bytesPushed"], written.bytes);
    assert_eq!(report["gapOpened"], false);
    let objects = slice_objects(&server);
    assert!(!objects.is_empty());

    let status = status_of(&client, &group, &cluster, "rs0").await;
    assert_eq!(status["entryCount"], 30_000);
    assert_eq!(status["dataSizeBytes"], written.bytes);
    assert_eq!(
        status["firstTimestamp"],
        ts(written.first.0, written.first.1)
    );
    assert_eq!(status["lastTimestamp"], ts(written.last.0, written.last.1));
    assert_eq!(status["gaps"], json!([]));
    assert_eq!(status["replicaSetName"], "rs0");
    assert_eq!(status["clusterId"], cluster);
    assert!(status["storageSizeBytes"].as_u64().unwrap() < written.bytes / 2);
    assert_eq!(
        status["links"][0]["href"],
        server.at(&format!("{}/rs0", oplog_path(&group, &cluster)))
    );
    assert_eq!(report["coverage"], status);

    let again = push_ok(&server, &group, &cluster, &file, &[]);
    assert_eq!(again["entriesStored"], 0);
    assert_eq!(again["entriesAlreadyStored"], 30_000);
    assert_eq!(again["slicesWritten"], 0);
    assert_eq!(slice_objects(&server), objects, "a re-push writes nothing");
    assert_eq!(status_of(&client, &group, &cluster, "rs0").await, status);

    let out = rewind_as_client(
        &server,
        &["oplog", "status", "--group", &group, "--cluster", &cluster],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("rs0: "), "{text}");
    assert!(text.contains("30000 entries"), "{text}");
    let out = rewind_as_client(
        &server,
        &[
            "oplog",
            "status",
            "--group",
            &group,
            "--cluster",
            &cluster,
            "--json",
        ],
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["totalCount"], 1);
    assert_eq!(listed["results"][0], status);
}

#[tokio::test]
async fn out_of_order_and_duplicated_entries_are_refused_with_nothing_stored() {
    if needs_local_blocks("it counts the slice files in the data directory") {
        return;
    }
    let (server, client, group, cluster, dir) = replica_set_with_files(&[]).await;
    let t = now_secs() - 600;

    let disordered = dir.path().join("disordered.bson");
    write_entries(&disordered, &[(t, 1, "a"), (t, 2, "b"), (t - 5, 1, "late")]);
    let err = push_refused(&server, &group, &cluster, &disordered, &[]);
    assert!(err.contains("entry 2"), "{err}");
    assert!(err.contains("strictly increasing"), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");

    let duplicated = dir.path().join("duplicated.bson");
    write_entries(&duplicated, &[(t, 1, "a"), (t, 1, "a")]);
    let err = push_refused(&server, &group, &cluster, &duplicated, &[]);
    assert!(err.contains("entry 1"), "{err}");

    // The endpoint refuses the same bodies on its own.
    let path = format!("{}/rs0", oplog_path(&group, &cluster));
    let body = std::fs::read(&disordered).unwrap();
    push_raw(&client, &path, &body).await.assert_error(
        400,
        "OPLOG_ENTRIES_OUT_OF_ORDER",
        &[&format!("{}:1", t - 5)],
    );
    let body = std::fs::read(&duplicated).unwrap();
    push_raw(&client, &path, &body).await.assert_error(
        400,
        "OPLOG_ENTRIES_OUT_OF_ORDER",
        &[&format!("{t}:1")],
    );

    let status = status_of(&client, &group, &cluster, "rs0").await;
    assert_eq!(status["entryCount"], 0);
    assert!(status.get("firstTimestamp").is_none());
    assert!(slice_objects(&server).is_empty());
}

#[tokio::test]
async fn entries_overlapping_the_stored_oplog_with_other_content_are_refused() {
    if needs_local_blocks("it counts the slice files in the data directory") {
        return;
    }
    let (server, client, group, cluster, dir) = replica_set_with_files(&[]).await;
    let t = now_secs() - 600;
    let first = dir.path().join("first.bson");
    write_run(&first, &run_of(t, 10, "original"));
    push_ok(&server, &group, &cluster, &first, &[]);
    let stored = status_of(&client, &group, &cluster, "rs0").await;
    let objects = slice_objects(&server);

    // Entries 5..=10 again, the 7th altered, then new ones: nothing of it may be stored.
    let mut overlapping = run_of(t, 10, "original").split_off(4);
    overlapping[2].2 = "altered".into();
    overlapping.extend(run_of(t + 1, 5, "new"));
    let file = dir.path().join("overlapping.bson");
    write_run(&file, &overlapping);
    let err = push_refused(&server, &group, &cluster, &file, &[]);
    assert!(err.contains("OPLOG_ENTRY_CONFLICT"), "{err}");
    assert!(err.contains(&format!("{t}:7")), "{err}");
    let path = format!("{}/rs0", oplog_path(&group, &cluster));
    push_raw(&client, &path, &std::fs::read(&file).unwrap())
        .await
        .assert_error(409, "OPLOG_ENTRY_CONFLICT", &[&format!("{t}:7")]);

    // Skipping a stored entry is a conflict too: both sides claim to be complete.
    let mut skipping = run_of(t, 10, "original");
    skipping.remove(3);
    let file = dir.path().join("skipping.bson");
    write_run(&file, &skipping);
    push_raw(&client, &path, &std::fs::read(&file).unwrap())
        .await
        .assert_error(409, "OPLOG_ENTRY_CONFLICT", &[&format!("{t}:4")]);

    assert_eq!(status_of(&client, &group, &cluster, "rs0").await, stored);
    assert_eq!(slice_objects(&server), objects);

    // The same overlap, unaltered, continues the stored oplog without a gap.
    let mut continuing = run_of(t, 10, "original").split_off(4);
    continuing.extend(run_of(t + 1, 5, "new"));
    write_run(&file, &continuing);
    let report = push_ok(&server, &group, &cluster, &file, &[]);
    assert_eq!(report["entriesAlreadyStored"], 6);
    assert_eq!(report["entriesStored"], 5);
    assert_eq!(report["gapOpened"], false);
    assert_eq!(report["coverage"]["entryCount"], 15);
}

#[tokio::test]
async fn a_file_after_the_stored_end_records_a_gap_unless_it_continues_from_it() {
    let (server, client, group, cluster, dir) = replica_set_with_files(&[]).await;
    let t = now_secs() - 3_600;
    let file = |name: &str, secs: u32| {
        let path = dir.path().join(name);
        write_run(&path, &run_of(secs, 5, name));
        path
    };
    let (a, b, c) = (file("a", t), file("b", t + 600), file("c", t + 1_200));
    push_ok(&server, &group, &cluster, &a, &[]);

    let out = push_file(&server, &group, &cluster, &b, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a gap is recorded"), "{text}");
    let status = status_of(&client, &group, &cluster, "rs0").await;
    assert_eq!(
        status["gaps"],
        json!([{"end": ts(t + 600, 1), "start": ts(t, 5)}])
    );
    assert_eq!(
        status["ranges"],
        json!([
            {"first": ts(t, 1), "last": ts(t, 5)},
            {"first": ts(t + 600, 1), "last": ts(t + 600, 5)}
        ])
    );

    // Continuing from an entry that is not stored is refused...
    let err = push_refused(
        &server,
        &group,
        &cluster,
        &c,
        &["--after", &format!("{}:1", t + 900)],
    );
    assert!(err.contains("OPLOG_CONTINUITY_MISMATCH"), "{err}");
    // ...from the stored end, it joins without a new gap.
    let report = push_ok(
        &server,
        &group,
        &cluster,
        &c,
        &["--after", &format!("{}:5", t + 600)],
    );
    assert_eq!(report["gapOpened"], false);
    assert_eq!(report["coverage"]["gaps"].as_array().unwrap().len(), 1);
    assert_eq!(report["coverage"]["lastTimestamp"], ts(t + 1_200, 5));

    let path = format!("{}/rs0", oplog_path(&group, &cluster));
    let body = std::fs::read(&c).unwrap();
    push_raw(&client, &format!("{path}?afterTs={}", t + 600), &body)
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["afterTs"]);
    push_raw(
        &client,
        &format!("{path}?afterTs={}&afterInc=3", t + 1_200),
        &body,
    )
    .await
    .assert_error(400, "INVALID_QUERY_PARAMETER", &["afterTs"]);
}

#[tokio::test]
async fn the_point_in_time_window_is_a_project_setting_used_by_restores() {
    let (server, client, group, cluster, _) = replica_set_with_files(&[]).await;
    let settings = format!("{REWIND_API}/groups/{group}/backupSettings");
    let patch = |body: Value| call(&client, Method::PATCH, &settings, Some(body));

    let shown = get(&client, &settings).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(
        shown.json(),
        json!({
            "checkpointIntervalMinutes": 15,
            "groupId": group,
            "links": [{"href": server.at(&settings), "rel": "self"}],
            "pointInTimeWindowHours": 24
        })
    );
    let out = rewind_as_client(
        &server,
        &["oplog", "window", "--group", &group, "--hours", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Point-in-time window: 1 hours\nCheckpoint interval: 15 minutes"
    );
    assert_eq!(
        get(&client, &settings).await.json()["pointInTimeWindowHours"],
        1
    );

    // Restores follow the project's window.
    let jobs = restore_jobs_path(&group, &cluster);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let pit =
        |millis: i64| json!({"delivery": {"methodName": "HTTP"}, "pointInTimeUTCMillis": millis});
    post(&client, &jobs, pit(now_ms - 2 * 3_600_000))
        .await
        .assert_error(400, "INVALID_ATTRIBUTE", &["pointInTimeUTCMillis"]);
    let reply = patch(json!({"pointInTimeWindowHours": "48"})).await;
    assert_eq!(reply.json()["pointInTimeWindowHours"], 48);
    post(&client, &jobs, pit(now_ms - 30 * 3_600_000))
        .await
        .assert_error(
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            &["pointInTimeUTCMillis"],
        );

    patch(json!({"pointInTimeWindowHours": 0}))
        .await
        .assert_error(
            400,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            &["pointInTimeWindowHours"],
        );
    patch(json!({"pointInTimeWindowHours": 721}))
        .await
        .assert_error(400, "INVALID_ATTRIBUTE", &["pointInTimeWindowHours"]);
    patch(json!({"pointInTimeWindowHours": "many"}))
        .await
        .assert_error(400, "INVALID_JSON_ATTRIBUTE", &["pointInTimeWindowHours"]);
    patch(json!({"retentionDays": 3})).await.assert_error(
        400,
        "INVALID_ATTRIBUTE",
        &["retentionDays"],
    );
    assert_eq!(
        get(&client, &settings).await.json()["pointInTimeWindowHours"],
        48
    );
}

#[tokio::test]
async fn a_read_only_key_reads_the_oplog_but_cannot_push_or_change_the_window() {
    let server = TestServer::start();
    let owner = server.client();
    let org = server.boot.org_id.clone();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&owner, &group, "rs0").await;
    let keys = format!("{API}/groups/{group}/apiKeys");
    let body = oplog_entry(now_secs() - 60, 1, "x");
    let path = format!("{}/rs0", oplog_path(&group, &cluster));
    let settings = format!("{REWIND_API}/groups/{group}/backupSettings");

    let (id, public, private) = create_key(&owner, &keys, "GROUP_READ_ONLY").await;
    allow_loopback(&owner, &org, &id).await;
    let reader = server.client_for(&public, &private);
    assert_eq!(
        get(&reader, &oplog_path(&group, &cluster)).await.status,
        StatusCode::OK
    );
    assert_eq!(get(&reader, &settings).await.status, StatusCode::OK);
    push_raw(&reader, &path, &body)
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    call(
        &reader,
        Method::PATCH,
        &settings,
        Some(json!({"pointInTimeWindowHours": 2})),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);

    let (id, public, private) = create_key(&owner, &keys, "GROUP_BACKUP_ADMIN").await;
    allow_loopback(&owner, &org, &id).await;
    let admin = server.client_for(&public, &private);
    let reply = push_raw(&admin, &path, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["entriesStored"], 1);
}

#[tokio::test]
async fn bad_pushes_are_answered_with_the_api_error_format() {
    let (server, client, group, cluster, _) = replica_set_with_files(&[]).await;
    let path = format!("{}/rs0", oplog_path(&group, &cluster));
    let t = now_secs() - 60;
    let good = oplog_entry(t, 1, "ok");

    let mut truncated = good.clone();
    truncated.pop();
    push_raw(&client, &path, &truncated)
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["body"]);
    let mut damaged = good.clone();
    damaged[4] = 0x77;
    push_raw(&client, &path, &damaged)
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["body"]);
    let without_ts = bson::rawdoc! { "op": "n", "o": { "msg": "x" } }.into_bytes();
    push_raw(&client, &path, &without_ts)
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["ts"]);
    let numeric_ts = bson::rawdoc! { "op": "n", "ts": 5_i64 }.into_bytes();
    push_raw(&client, &path, &numeric_ts)
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["ts"]);
    let without_op = bson::rawdoc! { "ts": bson::Timestamp { time: t, increment: 1 } }.into_bytes();
    push_raw(&client, &path, &[good.clone(), without_op].concat())
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["op"]);
    push_raw(&client, &path, &[0xff, 0xff, 0xff, 0x7f, 0])
        .await
        .assert_error(400, "INVALID_OPLOG_ENTRY", &["body"]);
    send_raw(&client, Method::POST, &path, &good, "application/json")
        .await
        .assert_error(415, "UNSUPPORTED_MEDIA_TYPE", &["Content-Type"]);
    let too_large = vec![0u8; 32 * 1024 * 1024 + 1];
    push_raw(&client, &path, &too_large)
        .await
        .assert_error(413, "REQUEST_TOO_LARGE", &[]);

    push_raw(
        &client,
        &format!("{}/rs9", oplog_path(&group, &cluster)),
        &good,
    )
    .await
    .assert_error(404, "REPLICA_SET_NOT_FOUND", &["rs9"]);
    push_raw(
        &client,
        &format!("{REWIND_API}/groups/{group}/clusters/nope/oplog/rs0"),
        &good,
    )
    .await
    .assert_error(404, "INVALID_CLUSTER_ID", &["nope"]);
    let status = status_of(&client, &group, &cluster, "rs0").await;
    assert_eq!(
        status["entryCount"], 0,
        "nothing of a refused push is stored"
    );

    let empty = push_raw(&client, &path, &[]).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.json()["entriesReceived"], 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.bson");
    std::fs::write(&file, [good, truncated].concat()).unwrap();
    let err = push_refused(&server, &group, &cluster, &file, &[]);
    assert!(err.contains("entry 1 (at byte"), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");
}

#[tokio::test]
async fn a_sharded_cluster_keeps_one_oplog_per_replica_set() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let registered =
        register_cluster(&client, &group, json!({"clusterName": "sh", "shards": 2})).await;
    let cluster = registered["members"][0]["id"].as_str().unwrap().to_owned();
    let shard = registered["members"][1]["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shard1.bson");
    write_run(&file, &run_of(now_secs() - 60, 3, "shard one"));

    let err = push_refused(&server, &group, &cluster, &file, &[]);
    assert!(err.contains("several replica sets"), "{err}");
    assert!(err.contains("sh-shard-1"), "{err}");
    push_ok(&server, &group, &cluster, &file, &["--part", "sh-shard-1"]);

    let listed = get(&client, &oplog_path(&group, &cluster)).await.json();
    let names: Vec<&str> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["replicaSetName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sh-shard-0", "sh-shard-1", "sh-config-0"]);
    let counts: Vec<u64> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["entryCount"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 3, 0]);
    get(
        &client,
        &format!("{}/sh-shard-1", oplog_path(&group, &shard)),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["clusterId"]);
}

#[tokio::test]
async fn retention_drops_the_oplog_that_left_the_window() {
    if needs_local_blocks("it counts the slice files in the data directory") {
        return;
    }
    let (server, client, group, cluster, dir) =
        replica_set_with_files(&["--sweep-interval-secs", "1", "--gc-delay-secs", "0"]).await;
    let now = now_secs();
    let old = dir.path().join("old.bson");
    write_run(&old, &run_of(now - 5 * 3_600, 20, "old"));
    let recent = dir.path().join("recent.bson");
    write_run(&recent, &run_of(now - 600, 20, "recent"));
    push_ok(&server, &group, &cluster, &old, &[]);
    push_ok(&server, &group, &cluster, &recent, &[]);
    assert_eq!(
        status_of(&client, &group, &cluster, "rs0").await["ranges"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the default window of 24 hours keeps both"
    );

    let out = rewind_as_client(
        &server,
        &["oplog", "window", "--group", &group, "--hours", "1"],
    );
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status_of(&client, &group, &cluster, "rs0").await;
        if status["entryCount"] == 20 && slice_objects(&server).len() == 1 {
            assert_eq!(status["firstTimestamp"], ts(now - 600, 1));
            assert_eq!(status["gaps"], json!([]));
            break;
        }
        assert!(Instant::now() < deadline, "retention did not run: {status}");
        pause(Duration::from_millis(200)).await;
    }
}
