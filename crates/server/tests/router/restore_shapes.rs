//! Pins the JSON shapes of snapshots, checkpoints and restore jobs, modelled on Cloud
//! Manager's example responses and the Go client's fixtures: field names, nesting and order are compared byte
//! for byte, with ids, dates, tokens and the host redacted.

use axum::http::{Method, StatusCode};
use insta::internals::Content;
use insta::{assert_json_snapshot, dynamic_redaction, Settings};
use rewind_server::blocks::ChunkId;
use rewind_server::ids::{CheckpointId, ClusterId, GroupId};
use rewind_server::jobs::worker::RestoreWorker;
use rewind_server::model::{CheckpointPartRecord, CheckpointRecord, ClusterType, OplogTs};
use serde_json::{json, Value};

use crate::support::*;

const REWIND: &str = "/api/rewind/v1";

fn settings() -> Settings {
    let mut settings = Settings::clone_current();
    for field in [
        "id",
        "groupId",
        "clusterId",
        "snapshotId",
        "batchId",
        "targetGroupId",
        "targetClusterId",
    ] {
        settings.add_redaction(&format!(".**.{field}"), format!("[{field}]"));
    }
    // A job's `created` is the wall clock; a snapshot's is the BSON timestamp it was given.
    settings.add_redaction(
        ".**.created",
        dynamic_redaction(|value: Content, _| match value.as_str() {
            Some(_) => "[date]".into(),
            None => value,
        }),
    );
    settings.add_redaction(".**.expires", "[date]");
    settings.add_redaction(".**.hash", "[sha1]");
    let urls = || {
        dynamic_redaction(|value: Content, _| match value.as_str() {
            Some(href) => {
                assert!(href.starts_with(PUBLIC_URL), "URLs are absolute: {href}");
                redact_token(&redact_ids(&href.replacen(PUBLIC_URL, "{host}", 1))).into()
            }
            None => value,
        })
    };
    settings.add_redaction(".**.href", urls());
    settings.add_redaction(".**.url", urls());
    settings.add_redaction(
        ".**.fileName",
        dynamic_redaction(|value: Content, _| match value.as_str() {
            Some(name) => redact_ids(name).into(),
            None => value,
        }),
    );
    settings
}

/// Replaces the download token (the base64 segment after `/pull/{job}/`) with `[token]`.
fn redact_token(url: &str) -> String {
    let Some(at) = url.find("/pull/") else {
        return url.to_owned();
    };
    let mut parts: Vec<&str> = url[at + 6..].split('/').collect();
    if parts.len() >= 2 {
        parts[1] = "[token]";
    }
    format!("{}/pull/{}", &url[..at], parts.join("/"))
}

fn body(reply: &Reply) -> Value {
    let value: Value = reply.json();
    assert_eq!(
        serde_json::to_string(&value).unwrap(),
        reply.text(),
        "compact, keys in order"
    );
    value
}

/// Registers a replica set and returns its id.
async fn replica_set(app: &App, name: &str) -> String {
    let group = &app.boot.group_id;
    let reply = app
        .post(
            &format!("{REWIND}/groups/{group}/clusters"),
            &json!({"clusterName": name}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["members"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Imports one small file as a complete snapshot taken at the seed's example time.
async fn snapshot(app: &App, cluster: &str) -> String {
    snapshot_of(app, cluster, &["rs0"]).await
}

/// As `snapshot`, with the file committed as each of `parts` (the replica sets).
async fn snapshot_of(app: &App, cluster: &str, parts: &[&str]) -> String {
    let group = &app.boot.group_id;
    let base = format!("{REWIND}/groups/{group}/clusters/{cluster}/snapshots");
    let created = app
        .post(
            &base,
            &json!({"created": {"date": "2018-09-15T15:53:00Z", "increment": 1}, "mongodVersion": "4.2.8"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let data = b"collection pages".to_vec();
    let chunk = ChunkId::of(&data);
    let mut frame = chunk.as_bytes().to_vec();
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(&data);
    let uploaded = app
        .send_bytes(
            Method::POST,
            &format!("{REWIND}/groups/{group}/chunks"),
            "application/octet-stream",
            frame,
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.text());
    let manifest = json!({"files": [{
        "chunks": [[chunk.to_hex(), data.len()]], "mode": 384, "mtime": 1_537_026_780,
        "path": "collection-0-1.wt", "size": data.len()
    }]});
    for name in parts {
        let committed = app
            .call(
                Method::PUT,
                &format!("{base}/{id}/parts/{name}"),
                Some(&manifest),
            )
            .await;
        assert_eq!(committed.status, StatusCode::OK, "{}", committed.text());
    }
    id
}

#[tokio::test]
async fn snapshot_shapes() {
    let app = App::new().await;
    let cluster = replica_set(&app, "rs0").await;
    let id = snapshot(&app, &cluster).await;
    let group = &app.boot.group_id;
    let one = app
        .get(&format!(
            "{API}/groups/{group}/clusters/{cluster}/snapshots/{id}"
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    settings().bind(|| assert_json_snapshot!("snapshot", body(&one)));
    let list = app
        .get(&format!(
            "{API}/groups/{group}/clusters/{cluster}/snapshots"
        ))
        .await;
    settings().bind(|| assert_json_snapshot!("snapshot_list", body(&list)));
}

#[tokio::test]
async fn restore_job_shapes_follow_the_seed_examples() {
    let app = App::new().await;
    let cluster = replica_set(&app, "rs0").await;
    let target = replica_set(&app, "rs1").await;
    let snapshot = snapshot(&app, &cluster).await;
    let group = app.boot.group_id.clone();
    let jobs = format!("{API}/groups/{group}/clusters/{cluster}/restoreJobs");
    let seed_body = json!({
        "delivery": {"expirationHours": "1", "maxDownloads": "1", "methodName": "HTTP"},
        "snapshotId": snapshot
    });
    let created = app.post(&format!("{jobs}?pretty=false"), &seed_body).await;
    assert_eq!(
        created.status,
        StatusCode::OK,
        "create answers 200 with a list"
    );
    settings().bind(|| assert_json_snapshot!("restore_job_created", body(&created)));

    let worker = RestoreWorker::new(
        app.services.clone(),
        "test-worker".into(),
        rewind_server::jobs::DEFAULT_LEASE,
    );
    assert!(
        worker.run_once().await.unwrap(),
        "the worker prepares the job"
    );
    let id = created.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ready = app.get(&format!("{jobs}/{id}")).await;
    settings().bind(|| assert_json_snapshot!("restore_job_ready", body(&ready)));

    let automated = app
        .post(
            &jobs,
            &json!({
                "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": group, "targetClusterId": target},
                "snapshotId": snapshot
            }),
        )
        .await;
    assert_eq!(automated.status, StatusCode::OK, "{}", automated.text());
    settings().bind(|| assert_json_snapshot!("restore_job_automated", body(&automated)));
}

#[tokio::test]
async fn checkpoint_shapes_follow_the_go_client_fixture() {
    let app = App::new().await;
    let group = app.boot.group_id.clone();
    let registered = app
        .post(
            &format!("{REWIND}/groups/{group}/clusters"),
            &json!({"clusterName": "Cluster0", "shards": 2, "featureCompatibilityVersion": "4.0"}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let cluster = registered.json()["members"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The times and tokens of the Go client's fixture, stored as the checkpointer would.
    let part = |name: &str, shard: bool, inc| CheckpointPartRecord {
        replica_set_name: name.into(),
        shard_name: shard.then(|| name.to_owned()),
        type_name: if shard {
            ClusterType::ReplicaSet
        } else {
            ClusterType::ConfigServerReplicaSet
        },
        token: OplogTs {
            secs: 1_518_132_025,
            inc,
        },
    };
    let record = CheckpointRecord {
        id: CheckpointId::generate(),
        group_id: GroupId::parse(&group).unwrap(),
        cluster_id: ClusterId::parse(&cluster).unwrap(),
        timestamp: 1_518_131_977,
        recorded: 1_518_132_025,
        parts: vec![
            part("Cluster0-shard-0", true, 1),
            part("Cluster0-shard-1", true, 1),
            part("Cluster0-config-0", false, 2),
        ],
    };
    assert!(app.services.meta.insert_checkpoint(&record).await.unwrap());
    let list_path = format!("{API}/groups/{group}/clusters/{cluster}/checkpoints");
    let list = app.get(&list_path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    settings().bind(|| assert_json_snapshot!("checkpoint_list", body(&list)));
    let one = app.get(&format!("{list_path}/{}", record.id)).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text());
    assert_eq!(body(&one), list.json()["results"][0]);
}

/// The Go client's sharded fixtures: one job per shard and config server, sharing `batchId`
/// and `clusterName`, each naming its part in `clusterId`; the snapshot says
/// `isPossiblyInconsistent`.
#[tokio::test]
async fn sharded_shapes_follow_the_go_client_fixtures() {
    let app = App::new().await;
    let group = app.boot.group_id.clone();
    let registered = app
        .post(
            &format!("{REWIND}/groups/{group}/clusters"),
            &json!({"clusterName": "Cluster0", "shards": 1}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let cluster = registered.json()["members"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let snapshot = snapshot_of(&app, &cluster, &["Cluster0-shard-0", "Cluster0-config-0"]).await;
    let one = app
        .get(&format!(
            "{API}/groups/{group}/clusters/{cluster}/snapshots/{snapshot}"
        ))
        .await;
    settings().bind(|| assert_json_snapshot!("sharded_snapshot", body(&one)));
    let jobs = format!("{API}/groups/{group}/clusters/{cluster}/restoreJobs");
    let created = app
        .post(
            &jobs,
            &json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    settings().bind(|| assert_json_snapshot!("sharded_restore_jobs_created", body(&created)));
}

#[tokio::test]
async fn restore_progress_shapes_show_bytes_per_job_and_member() {
    let app = App::new().await;
    let cluster = replica_set(&app, "rs0").await;
    let target = replica_set(&app, "rs1").await;
    let snapshot = snapshot(&app, &cluster).await;
    let group = app.boot.group_id.clone();
    let jobs = format!("{API}/groups/{group}/clusters/{cluster}/restoreJobs");
    let http = app
        .post(
            &jobs,
            &json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot}),
        )
        .await;
    let automated = app
        .post(
            &jobs,
            &json!({
                "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": group, "targetClusterId": target},
                "snapshotId": snapshot
            }),
        )
        .await;
    assert_eq!(automated.status, StatusCode::OK, "{}", automated.text());
    let id_of = |reply: &Reply| {
        reply.json()["results"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (http, automated) = (id_of(&http), id_of(&automated));
    let progress =
        |job: &str| format!("{REWIND}/groups/{group}/clusters/{cluster}/restoreJobs/{job}/members");
    let waiting = app.get(&progress(&automated)).await;
    assert_eq!(waiting.status, StatusCode::OK, "{}", waiting.text());
    let worker = RestoreWorker::new(
        app.services.clone(),
        "test-worker".into(),
        rewind_server::jobs::DEFAULT_LEASE,
    );
    assert!(
        worker.run_once().await.unwrap(),
        "the worker prepares both jobs"
    );
    let agents = format!("{REWIND}/groups/{group}/clusters/{target}/agents");
    let hello = json!({"agentId": "host0", "members": ["node0:27017"], "replicaSetName": "rs1"});
    let mut work = hello.clone();
    work["waitSecs"] = 0.into();
    let tasks = app.post(&format!("{agents}/work"), &work).await;
    assert_eq!(tasks.status, StatusCode::OK, "{}", tasks.text());
    assert_eq!(
        tasks.json()["tasks"][0]["action"],
        "APPLY",
        "{}",
        tasks.text()
    );
    let report = json!({
        "agentId": "host0", "jobId": automated, "memberName": "node0:27017",
        "progressBytes": 1000, "state": "APPLYING"
    });
    let reported = app.post(&format!("{agents}/reports"), &report).await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.text());
    let mut settings = settings();
    settings.add_redaction(".**.updated", "[date]");
    settings.add_redaction(".jobId", "[jobId]");
    // The archive's size moves with the compressed ids in its restoreInfo.txt; a zero
    // (nothing prepared yet) stays.
    for field in ["bytesExpected", "bytesPrepared"] {
        settings.add_redaction(
            &format!(".**.{field}"),
            dynamic_redaction(move |value: Content, _| match value.as_u64() {
                Some(0) => value,
                Some(_) => Content::from("[bytes]"),
                None => panic!("{field} is a number: {value:?}"),
            }),
        );
    }
    let prepared = app.get(&progress(&http)).await;
    let applying = app.get(&progress(&automated)).await;
    for reply in [&prepared, &applying] {
        let shown = reply.json();
        assert_eq!(shown["bytesPrepared"], shown["bytesExpected"], "{shown}");
        assert!(shown["bytesExpected"].as_u64().is_some_and(|b| b > 0));
    }
    settings.bind(|| {
        assert_json_snapshot!("restore_progress_waiting", body(&waiting));
        assert_json_snapshot!("restore_progress_http", body(&prepared));
        assert_json_snapshot!("restore_progress_automated", body(&applying));
    });
}

/// The Go client's `SnapshotSchedule` fixture, PATCHed as the client sends it (empty ids)
/// and read back.
#[tokio::test]
async fn snapshot_schedule_shape_follows_the_go_client_fixture() {
    let app = App::new().await;
    let cluster = replica_set(&app, "rs0").await;
    let group = &app.boot.group_id;
    let path = format!("{API}/groups/{group}/backupConfigs/{cluster}/snapshotSchedule");
    let fixture = json!({
        "clusterId": "", "groupId": "", "dailySnapshotRetentionDays": 7,
        "monthlySnapshotRetentionMonths": 13, "pointInTimeWindowHours": 24,
        "snapshotIntervalHours": 6, "snapshotRetentionDays": 2, "weeklySnapshotRetentionWeeks": 4
    });
    let patched = app.call(Method::PATCH, &path, Some(&fixture)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    settings().bind(|| assert_json_snapshot!("snapshot_schedule", body(&patched)));
    assert_eq!(body(&app.get(&path).await), patched.json());
}
