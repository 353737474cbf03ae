//! Checkpoints of sharded clusters with FCV 4.0 or earlier, end to end: recorded by the
//! server once every replica set's pushed oplog reaches past a boundary of the interval,
//! listed and read through the public API and `rewind checkpoint list`, `restorable` as the
//! stored snapshots and oplog allow, and the interval setting.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rewind_cli::client::ApiClient;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::oplog::{now_secs, push_ok, ts, write_entries};
use crate::support::*;

/// The replica sets of the fixture's sharded cluster, in member order.
const PARTS: [&str; 3] = ["ledger-shard-0", "ledger-shard-1", "ledger-config-0"];
const INTERVAL_SECS: u32 = 15 * 60;
const UNKNOWN_ID: &str = "5f0000000000000000000000";

fn checkpoints_path(group: &str, cluster: &str) -> String {
    format!("{API}/groups/{group}/clusters/{cluster}/checkpoints")
}

fn iso(secs: i64) -> String {
    rewind_api_types::iso_seconds::format_iso(secs)
}

/// Writes `entries` to a fresh file in `dir` and pushes them for `part`, with extra flags.
fn push_part(
    server: &TestServer,
    cluster: &str,
    dir: &Path,
    part: &str,
    entries: &[(u32, u32, &str)],
    extra: &[&str],
) {
    let file = dir.join(format!("{part}-{}.bson", entries[0].0));
    write_entries(&file, entries);
    let group = &server.boot.group_id;
    let mut flags = vec!["--part", part];
    flags.extend_from_slice(extra);
    push_ok(server, group, cluster, &file, &flags);
}

/// `rewind oplog window --group G` with `flags`.
fn oplog_window(server: &TestServer, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["oplog", "window", "--group", &server.boot.group_id];
    args.extend_from_slice(flags);
    rewind_as_client(server, &args)
}

async fn list(client: &ApiClient, path: &str) -> Value {
    let reply = get(client, path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

/// Polls the list until it holds a checkpoint (at most 30 s) and returns the list.
async fn wait_for_checkpoint(client: &ApiClient, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = list(client, path).await;
        if listed["totalCount"] != 0 {
            return listed;
        }
        assert!(Instant::now() < deadline, "no checkpoint was recorded");
        pause(Duration::from_millis(200)).await;
    }
}

/// A server log that shows each checkpoint pass.
const CHECKPOINTER_LOG: &str = "warn,rewind_server::jobs::checkpointer=debug";
/// The line each finished checkpoint pass logs at debug level.
const PASS_FINISHED: &str = "checkpoint pass finished";

/// Waits (at most 30 s) until a checkpoint pass that started after this call has finished:
/// two more finished passes than now, since the first may have begun before the caller's
/// last push. What the list shows afterwards is what a pass decided, not a race with it.
async fn wait_for_a_later_pass(server: &TestServer) {
    let finished = || server.server_log().matches(PASS_FINISHED).count();
    let before = finished();
    let deadline = Instant::now() + Duration::from_secs(30);
    while finished() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "no checkpoint pass finished in 30 s"
        );
        pause(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_checkpoint_is_recorded_once_every_replica_set_reaches_past_a_boundary() {
    let started = chrono::Utc::now().timestamp();
    let server = TestServer::start_logging(
        "127.0.0.1:0",
        &["--checkpoint-pass-secs", "1"],
        CHECKPOINTER_LOG,
    );
    let client = server.client();
    let group = server.boot.group_id.clone();
    // The newest boundary at least two minutes old, and a snapshot ten minutes before it:
    // the boundary before lies before every pushed entry, so only `boundary` is due.
    let boundary = (now_secs() - 120) / INTERVAL_SECS * INTERVAL_SECS;
    let snapshot_at = boundary - 600;
    let taken_at = format!("{snapshot_at}:1");
    let sharded = ImportedShardedCluster::import_with(
        &server,
        64 * 1024,
        11,
        json!({"featureCompatibilityVersion": "4.0"}),
        &["--taken-at", &taken_at],
    )
    .await;
    let cluster = sharded.cluster.clone();
    let path = checkpoints_path(&group, &cluster);
    let out = oplog_window(&server, &["--checkpoint-interval", "15"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each replica set's newest entry at or before the boundary differs: two seconds
    // before it, in its very second, ten seconds before it.
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (snapshot_at - 5, boundary + 30);
    let tokens = [(boundary - 3, 2), (boundary, 7), (boundary - 10, 1)];
    for (part, token) in PARTS.iter().zip(tokens).take(2) {
        let entries = [
            (before, 1, "start"),
            (boundary - 60, 1, "middle"),
            (token.0, token.1, "token"),
            (after, 1, "after"),
        ];
        push_part(&server, &cluster, dir.path(), part, &entries, &[]);
    }
    // The config server's oplog has a gap after the snapshot and stops before the boundary.
    let config = PARTS[2];
    push_part(
        &server,
        &cluster,
        dir.path(),
        config,
        &[(before, 1, "start")],
        &[],
    );
    let near = [(boundary - 60, 1, "middle"), (tokens[2].0, 1, "token")];
    push_part(&server, &cluster, dir.path(), config, &near, &[]);
    wait_for_a_later_pass(&server).await;
    assert_eq!(
        list(&client, &path).await,
        json!({
            "links": [{"href": server.at(&format!("{path}?pageNum=1&itemsPerPage=100")), "rel": "self"}],
            "results": [],
            "totalCount": 0
        }),
        "no checkpoint while the config server's oplog stops before the boundary"
    );

    let continues = format!("{}:1", tokens[2].0);
    let last = [(after, 1, "after")];
    push_part(
        &server,
        &cluster,
        dir.path(),
        config,
        &last,
        &["--after", &continues],
    );
    let listed = wait_for_checkpoint(&client, &path).await;
    assert_eq!(listed["totalCount"], 1, "{listed}");
    let found = listed["results"][0].clone();
    let id = found["id"].as_str().unwrap().to_owned();
    let recorded = found["started"].as_str().unwrap().to_owned();
    let recorded_secs = rewind_api_types::iso_seconds::parse_iso(&recorded).unwrap();
    assert!(
        (started..=chrono::Utc::now().timestamp()).contains(&recorded_secs),
        "{recorded}"
    );
    let one = format!("{path}/{id}");
    let part = |name: &str, shard: bool, token: (u32, u32)| {
        let mut p = json!({
            "replicaSetName": name,
            "tokenDiscovered": true,
            "tokenTimestamp": ts(token.0, token.1),
            "typeName": if shard { "REPLICA_SET" } else { "CONFIG_SERVER_REPLICA_SET" },
        });
        if shard {
            p["shardName"] = json!(name);
        }
        p
    };
    let expected = |restorable: bool| {
        json!({
            "clusterId": cluster,
            "completed": recorded,
            "groupId": group,
            "id": id,
            "links": [
                {"href": server.at(&one), "rel": "self"},
                {"href": server.at(&format!("{API}/groups/{group}/clusters/{cluster}")), "rel": "cluster"},
                {"href": server.at(&format!("{API}/groups/{group}")), "rel": "group"},
            ],
            "parts": [
                part(PARTS[0], true, tokens[0]),
                part(PARTS[1], true, tokens[1]),
                part(PARTS[2], false, tokens[2]),
            ],
            "restorable": restorable,
            "started": recorded,
            "timestamp": iso(i64::from(boundary)),
        })
    };
    assert_eq!(
        found,
        expected(false),
        "the config server's gap after the snapshot keeps it from being restorable"
    );
    let jobs = restore_jobs_path(&group, &cluster);
    let target = register_cluster(
        &client,
        &group,
        json!({"clusterName": "ledger-copy", "shards": 2, "featureCompatibilityVersion": "4.0"}),
    )
    .await;
    let automated = json!({
        "checkpointId": id,
        "delivery": {
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": group,
            "targetClusterId": target["members"][0]["id"],
        }
    });
    post(&client, &jobs, automated.clone()).await.assert_error(
        409,
        "NO_CHECKPOINT_FOR_PIT_RESTORE",
        &["checkpointId"],
    );

    // Filling the gap makes it restorable; nothing else changes.
    let filling = [
        (before, 1, "start"),
        (snapshot_at + 60, 1, "filling"),
        (boundary - 60, 1, "middle"),
    ];
    push_part(&server, &cluster, dir.path(), config, &filling, &[]);
    let reply = get(&client, &one).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json(), expected(true));
    let keys = [
        "clusterId",
        "completed",
        "groupId",
        "id",
        "links",
        "parts",
        "restorable",
        "started",
        "timestamp",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| reply.text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "fields in alphabetical order: {}",
        reply.text
    );
    let listed = list(&client, &path).await;
    assert_eq!(listed["results"], json!([expected(true)]));
    let enveloped = list(&client, &format!("{one}?envelope=true")).await;
    assert_eq!(enveloped, json!({"content": expected(true), "status": 200}));

    // The same checkpoint stays the only one: later passes record nothing again.
    wait_for_a_later_pass(&server).await;
    assert_eq!(list(&client, &path).await["totalCount"], 1);

    let checkpoint_list = |flags: &[&str]| {
        let mut args = vec![
            "checkpoint",
            "list",
            "--group",
            &group,
            "--cluster",
            &cluster,
        ];
        args.extend_from_slice(flags);
        let out = rewind_as_client(&server, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // A restore from the checkpoint is a batch cut at its second: one job per shard and
    // the config server, each restored to its token.
    let created = create_jobs(&client, &jobs, automated).await;
    assert_eq!(created.len(), 3);
    for (name, token) in PARTS.iter().zip(tokens) {
        let job = created
            .iter()
            .find(|j| j["timestamp"] == ts(token.0, token.1))
            .unwrap_or_else(|| panic!("a job restoring {name} to its token: {created:?}"));
        assert_eq!(job["pointInTime"], true);
        assert_eq!(job["snapshotId"], sharded.snapshot.as_str());
        assert_eq!(job["batchId"], created[0]["batchId"]);
    }
    let http = json!({"checkpointId": id, "delivery": {"methodName": "HTTP"}});
    post(&client, &jobs, http).await.assert_error(
        400,
        "INVALID_ATTRIBUTE",
        &["delivery.methodName"],
    );

    let printed: Value = serde_json::from_slice(&checkpoint_list(&["--json"])).unwrap();
    assert_eq!(printed["results"], json!([expected(true)]));
    let out = checkpoint_list(&[]);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("ID"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let timestamp = iso(i64::from(boundary));
    assert_eq!(rows, [[id.as_str(), timestamp.as_str(), "true"]], "{text}");

    get(&client, &format!("{path}/nope")).await.assert_error(
        404,
        "INVALID_CHECKPOINT_ID",
        &["nope"],
    );
    let body = get(&client, &format!("{path}/{UNKNOWN_ID}"))
        .await
        .assert_error(404, "CHECKPOINT_NOT_FOUND", &[UNKNOWN_ID]);
    assert_eq!(
        body["detail"],
        format!("No checkpoint with ID {UNKNOWN_ID} exists for cluster {cluster}.")
    );
    // Another cluster's path does not show it.
    let rs = register_replica_set(&client, &group, "rs0").await;
    get(&client, &format!("{}/{id}", checkpoints_path(&group, &rs)))
        .await
        .assert_error(404, "CHECKPOINT_NOT_FOUND", &[&id]);
    assert_eq!(
        list(&client, &checkpoints_path(&group, &rs)).await["results"],
        json!([])
    );
}

#[tokio::test]
async fn the_checkpoint_interval_is_a_backup_setting_of_15_30_or_60_minutes() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let settings = format!("{REWIND_API}/groups/{group}/backupSettings");
    let patch = |client, body| call(client, Method::PATCH, &settings, Some(body));

    assert_eq!(
        get(&client, &settings).await.json()["checkpointIntervalMinutes"],
        15
    );
    let reply = patch(&client, json!({"checkpointIntervalMinutes": 30})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({
            "checkpointIntervalMinutes": 30,
            "groupId": group,
            "links": [{"href": server.at(&settings), "rel": "self"}],
            "pointInTimeWindowHours": 24
        })
    );
    for bad in [
        json!(0),
        json!(-15),
        json!(20),
        json!(45),
        json!(120),
        json!(15.5),
    ] {
        patch(&client, json!({"checkpointIntervalMinutes": bad}))
            .await
            .assert_error(400, "INVALID_ATTRIBUTE", &["checkpointIntervalMinutes"]);
    }
    patch(&client, json!({"checkpointIntervalMinutes": "often"}))
        .await
        .assert_error(
            400,
            "INVALID_JSON_ATTRIBUTE",
            &["checkpointIntervalMinutes"],
        );
    // All or nothing: a valid window beside an invalid interval is not applied either.
    patch(
        &client,
        json!({"pointInTimeWindowHours": 2, "checkpointIntervalMinutes": 7}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["checkpointIntervalMinutes"]);
    let shown = get(&client, &settings).await.json();
    assert_eq!(shown["pointInTimeWindowHours"], 24);
    assert_eq!(shown["checkpointIntervalMinutes"], 30);
    // Setting one keeps the other.
    let reply = patch(&client, json!({"pointInTimeWindowHours": "2"})).await;
    assert_eq!(reply.json()["checkpointIntervalMinutes"], 30);

    let out = oplog_window(&server, &["--checkpoint-interval", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Point-in-time window: 2 hours\nCheckpoint interval: 60 minutes"
    );
    let out = oplog_window(&server, &["--checkpoint-interval", "10"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INVALID_ATTRIBUTE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let org = server.boot.org_id.clone();
    let (id, public, private) = create_key(
        &client,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&client, &org, &id).await;
    let reader = server.client_for(&public, &private);
    assert_eq!(
        get(&reader, &settings).await.json()["checkpointIntervalMinutes"],
        60
    );
    patch(&reader, json!({"checkpointIntervalMinutes": 15}))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
}
