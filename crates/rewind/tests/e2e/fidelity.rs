//! What Cloud Manager clients read beyond the restore calls, shaped as the official Go
//! client's fixtures show it: organizations, the job fields a client reads, snapshot
//! schedules and retention, and restorable time ranges. Every call goes through a real
//! Digest client against the real binary.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// `GET /orgs` as `mongocli om orgs list` reads it, and `GET /orgs/{ORG-ID}`.
#[tokio::test]
async fn organizations_list_and_read_as_the_go_client_expects() {
    let server = TestServer::start();
    let client = server.client();
    let org = &server.boot.org_id;

    let listed = get(&client, &format!("{API}/orgs")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let listed = listed.json();
    assert_eq!(listed["totalCount"], 1, "{listed}");
    let self_href = listed["links"][0]["href"].as_str().unwrap();
    assert!(
        self_href.ends_with("/api/public/v1.0/orgs?pageNum=1&itemsPerPage=100"),
        "{self_href}"
    );
    let one = &listed["results"][0];
    assert_eq!(one["id"], org.as_str());
    assert_eq!(one["name"], "Rewind");
    assert_eq!(
        one["links"],
        json!([{"href": server.at(&format!("{API}/orgs/{org}")), "rel": "self"}])
    );
    let keys: Vec<&str> = one
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["id", "links", "name"],
        "the fixture's fields, in order"
    );

    let read = get(&client, &format!("{API}/orgs/{org}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.json(), *one);
    let enveloped = get(&client, &format!("{API}/orgs/{org}?envelope=true")).await;
    assert_eq!(enveloped.json(), json!({"content": one, "status": 200}));

    let filtered = get(&client, &format!("{API}/orgs?name=rew")).await.json();
    assert_eq!(
        filtered["totalCount"], 1,
        "a case-insensitive prefix matches"
    );
    let filtered = get(&client, &format!("{API}/orgs?name=other")).await.json();
    assert_eq!(filtered["results"], json!([]));
    assert_eq!(filtered["totalCount"], 0);
    let paged = get(&client, &format!("{API}/orgs?pageNum=2&itemsPerPage=1"))
        .await
        .json();
    assert_eq!(paged["results"], json!([]));
    assert_eq!(paged["links"][0]["rel"], "previous");
    let with_deleted = get(&client, &format!("{API}/orgs?includeDeletedOrgs=true")).await;
    assert_eq!(
        with_deleted.json()["totalCount"],
        1,
        "{}",
        with_deleted.text
    );
}

/// A malformed id, an unknown one and another organization's are told apart only by form:
/// keys cannot probe for other organizations. Any key of the organization may read it.
#[tokio::test]
async fn organizations_answer_errors_as_cloud_manager_documents_them() {
    let server = TestServer::start();
    let owner = server.client();
    let org = &server.boot.org_id;
    let group = &server.boot.group_id;

    get(&owner, &format!("{API}/orgs/not-an-id"))
        .await
        .assert_error(404, "INVALID_ORG_ID", &["not-an-id"]);
    let unknown = "5f0000000000000000000001";
    get(&owner, &format!("{API}/orgs/{unknown}"))
        .await
        .assert_error(404, "ORG_NOT_FOUND", &[unknown]);
    get(&owner, &format!("{API}/orgs?includeDeletedOrgs=maybe"))
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["includeDeletedOrgs"]);
    get(&owner, &format!("{API}/orgs?itemsPerPage=501"))
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["itemsPerPage"]);

    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&owner, org, &id).await;
    let reader = server.client_for(&public, &private);
    let seen = get(&reader, &format!("{API}/orgs")).await.json();
    assert_eq!(seen["results"][0]["id"], org.as_str(), "{seen}");
    let read = get(&reader, &format!("{API}/orgs/{org}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);

    let unauthenticated = reqwest::get(server.at(&format!("{API}/orgs")))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// The cluster rows of a project by replica set name (the sharded cluster itself by its name).
async fn cluster_ids(
    client: &rewind_cli::client::ApiClient,
    group: &str,
) -> BTreeMap<String, String> {
    let listed = get(client, &format!("{API}/groups/{group}/clusters"))
        .await
        .json();
    listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["replicaSetName"].as_str().or(c["clusterName"].as_str());
            (
                name.unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// As the Go client's sharded fixtures: the jobs of one batch share `batchId` and
/// `clusterName`, and each one's `clusterId` is the shard or config server its archive
/// holds, which its file name repeats. A replica set's job names the replica set.
#[tokio::test]
async fn jobs_carry_the_cluster_name_and_a_sharded_batch_names_each_part() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let imported = ImportedShardedCluster::import(&server, 60_000, 141).await;
    let ids = cluster_ids(&client, &group).await;
    let jobs_path = restore_jobs_path(&group, &imported.cluster);
    let body = json!({"delivery": {"methodName": "HTTP"}, "snapshotId": imported.snapshot});
    let jobs = create_jobs(&client, &jobs_path, body).await;
    let batch = jobs[0]["batchId"].as_str().expect("a batch id").to_owned();
    let mut parts = BTreeSet::new();
    for job in &jobs {
        assert_eq!(job["batchId"], batch.as_str(), "{job}");
        assert_eq!(job["clusterName"], "ledger", "{job}");
        let ready = wait_for_job(&client, &jobs_path, job_id(job)).await;
        assert_eq!(ready["clusterId"], job["clusterId"], "{ready}");
        let part = job["clusterId"].as_str().unwrap();
        let file = ready["delivery"]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let (name, _) = ids
            .iter()
            .find(|(_, id)| *id == part)
            .expect("a part's row");
        let expected_prefix = if name.ends_with("-config-0") {
            format!("config-ledger-{name}-{}-", imported.cluster)
        } else {
            format!("{name}-")
        };
        assert!(
            file.starts_with(&expected_prefix),
            "{part} is {name}, archive {file}"
        );
        parts.insert(name.clone());
    }
    assert_eq!(
        parts.into_iter().collect::<Vec<_>>(),
        ["ledger-config-0", "ledger-shard-0", "ledger-shard-1"]
    );
    let listed = get(&client, &format!("{jobs_path}?batchId={batch}"))
        .await
        .json();
    assert_eq!(listed["totalCount"], 3, "{listed}");
    assert!(listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["clusterName"] == "ledger"
            && ids.values().any(|id| j["clusterId"] == id.as_str())));

    let rs = register_replica_set(&client, &group, "orders").await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 40_000, 142);
    let snapshot = import_dir(&server, &group, &rs, dir.path())["snapshotId"].clone();
    let rs_jobs = restore_jobs_path(&group, &rs);
    let body = json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot});
    let job = &create_jobs(&client, &rs_jobs, body).await[0];
    assert_eq!(job["clusterId"], rs.as_str(), "{job}");
    assert_eq!(job["clusterName"], "orders", "{job}");
    assert!(job.get("batchId").is_none(), "{job}");
}

/// `lastHeartbeat` shows on the replica set an agent serves and on its sharded cluster,
/// and on nothing no agent has reported for.
#[tokio::test]
async fn clusters_show_the_last_heartbeat_of_their_agents() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let registered = register_cluster(
        &client,
        &group,
        json!({"clusterName": "orbit", "shards": 2}),
    )
    .await;
    let cluster = registered["members"][0]["id"].as_str().unwrap().to_owned();
    for member in registered["members"].as_array().unwrap() {
        assert!(member.get("lastHeartbeat").is_none(), "{member}");
    }
    let heartbeat = format!("{REWIND_API}/groups/{group}/clusters/{cluster}/agents/heartbeat");
    let hello =
        json!({"agentId": "h1", "members": ["h1:27018"], "replicaSetName": "orbit-shard-1"});
    let acked = post(&client, &heartbeat, hello).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    let at = acked.json()["lastHeartbeat"].as_str().unwrap().to_owned();
    let ids = cluster_ids(&client, &group).await;
    let read = |name: &str| {
        let path = format!("{API}/groups/{group}/clusters/{}", ids[name]);
        let client = &client;
        async move { get(client, &path).await.json() }
    };
    assert_eq!(read("orbit-shard-1").await["lastHeartbeat"], at.as_str());
    assert_eq!(read("orbit").await["lastHeartbeat"], at.as_str());
    assert!(read("orbit-shard-0").await.get("lastHeartbeat").is_none());
    assert!(read("orbit-config-0").await.get("lastHeartbeat").is_none());
}

/// `delivery.statusName` follows the job: `FAILED` once it is `BROKEN`, `INTERRUPTED` once
/// it is `KILLED`, where the link alone said `READY`.
#[tokio::test]
async fn the_delivery_status_follows_a_broken_or_cancelled_job() {
    let server = TestServer::start_with(&["--agent-timeout-secs", "2"]);
    let client = server.client();
    let group = server.boot.group_id.clone();
    let source = register_replica_set(&client, &group, "source").await;
    let target = register_replica_set(&client, &group, "target").await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 40_000, 143);
    let snapshot = import_dir(&server, &group, &source, dir.path())["snapshotId"].clone();
    let jobs_path = restore_jobs_path(&group, &source);
    let body = json!({
        "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": group, "targetClusterId": target},
        "snapshotId": snapshot
    });
    let cancelled = create_jobs(&client, &jobs_path, body.clone()).await[0].clone();
    let abandoned = create_jobs(&client, &jobs_path, body).await[0].clone();

    let cancel = format!(
        "{REWIND_API}/groups/{group}/clusters/{source}/restoreJobs/{}/cancel",
        job_id(&cancelled)
    );
    let killed = post(&client, &cancel, json!({})).await;
    assert_eq!(killed.status, StatusCode::OK, "{}", killed.text);
    let killed = killed.json();
    assert_eq!(killed["statusName"], "KILLED", "{killed}");
    assert_eq!(killed["delivery"]["statusName"], "INTERRUPTED", "{killed}");
    let read = get(&client, &format!("{jobs_path}/{}", job_id(&cancelled)))
        .await
        .json();
    assert_eq!(read["delivery"]["statusName"], "INTERRUPTED", "{read}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let broken = loop {
        let job = get(&client, &format!("{jobs_path}/{}", job_id(&abandoned)))
            .await
            .json();
        if job["statusName"] != "IN_PROGRESS" {
            break job;
        }
        assert_ne!(job["delivery"]["statusName"], "FAILED", "{job}");
        assert!(
            std::time::Instant::now() < deadline,
            "the job never broke: {job}"
        );
        pause(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(broken["statusName"], "BROKEN", "{broken}");
    assert_eq!(broken["delivery"]["statusName"], "FAILED", "{broken}");
}

/// A sharded cluster's snapshot carries `isPossiblyInconsistent`; a replica set's does not.
#[tokio::test]
async fn sharded_snapshots_say_whether_they_may_be_inconsistent() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let imported = ImportedShardedCluster::import(&server, 30_000, 144).await;
    let path = format!(
        "{}/{}",
        snapshots_path(&group, &imported.cluster),
        imported.snapshot
    );
    let sharded = get(&client, &path).await.json();
    assert_eq!(sharded["isPossiblyInconsistent"], false, "{sharded}");
    let listed = get(&client, &snapshots_path(&group, &imported.cluster))
        .await
        .json();
    assert_eq!(
        listed["results"][0]["isPossiblyInconsistent"], false,
        "{listed}"
    );

    let rs = register_replica_set(&client, &group, "plain").await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 20_000, 145);
    let snapshot = import_dir(&server, &group, &rs, dir.path())["snapshotId"].clone();
    let one = get(
        &client,
        &format!(
            "{}/{}",
            snapshots_path(&group, &rs),
            snapshot.as_str().unwrap()
        ),
    )
    .await
    .json();
    assert!(one.get("isPossiblyInconsistent").is_none(), "{one}");
    assert!(one.get("expires").is_none(), "no retention is set: {one}");
}

/// Pushes one entry per second of `secs` (increment 1) as `replica_set`'s oplog.
async fn push_oplog(
    client: &rewind_cli::client::ApiClient,
    group: &str,
    cluster: &str,
    replica_set: &str,
    secs: std::ops::RangeInclusive<u32>,
) {
    let bytes: Vec<u8> = secs
        .flat_map(|s| rewind_devtools::oplog::oplog_entry(s, 1, "fidelity"))
        .collect();
    let path = format!("{REWIND_API}/groups/{group}/clusters/{cluster}/oplog/{replica_set}");
    let reply: Reply = client
        .send(
            reqwest::Method::POST,
            &path,
            Some(&bytes),
            "application/octet-stream",
        )
        .await
        .expect("the server answers")
        .into();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

fn bson(secs: u32, inc: u32) -> serde_json::Value {
    let date = chrono::DateTime::from_timestamp(i64::from(secs), 0).unwrap();
    json!({"date": date.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "increment": inc})
}

/// `POST …/restoreJobs/restorableTimeRanges` answers Ops Manager's bare array, ordered by
/// `start`, one element per stretch a snapshot plus gap-free oplog reaches; restores to
/// both ends of every range are accepted, and to the moments just outside refused.
#[tokio::test]
async fn restorable_time_ranges_are_exactly_what_a_point_in_time_restore_accepts() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let rs = register_replica_set(&client, &group, "timeline").await;
    let ranges_path = format!("{}/restorableTimeRanges", restore_jobs_path(&group, &rs));
    let none = post(&client, &ranges_path, json!({})).await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.text);
    assert_eq!(none.json(), json!([]));

    let t0 = chrono::Utc::now().timestamp() as u32 - 3600;
    push_oplog(&client, &group, &rs, "timeline", t0..=t0 + 100).await;
    push_oplog(&client, &group, &rs, "timeline", t0 + 200..=t0 + 300).await;
    let mut snapshots = Vec::new();
    for taken in [t0 + 10, t0 + 150, t0 + 250] {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 20_000, u64::from(taken));
        let dir = dir.path().to_str().unwrap().to_owned();
        let at = format!("{taken}:1");
        let summary = import(&server, &group, &rs, &["--from", &dir, "--taken-at", &at]);
        snapshots.push(summary["snapshotId"].as_str().unwrap().to_owned());
    }
    let reply = client
        .send(
            reqwest::Method::POST,
            &ranges_path,
            None,
            "application/json",
        )
        .await
        .unwrap();
    let ranges: Reply = reply.into();
    assert_eq!(ranges.status, StatusCode::OK, "{}", ranges.text);
    assert_eq!(
        ranges.json(),
        json!([
            {"end": bson(t0 + 100, 1), "snapshotId": snapshots[0], "start": bson(t0 + 10, 1)},
            {"end": bson(t0 + 300, 1), "snapshotId": snapshots[2], "start": bson(t0 + 250, 1)},
        ]),
        "the snapshot in the gap reaches nothing"
    );
    let enveloped = post(&client, &format!("{ranges_path}?envelope=true"), json!({})).await;
    assert_eq!(enveloped.json()["content"], ranges.json());

    let jobs_path = restore_jobs_path(&group, &rs);
    let restore_to = |secs: u32, inc: u32| {
        let body = json!({"delivery": {"methodName": "HTTP"}, "oplogTs": secs.to_string(), "oplogInc": inc});
        let (client, jobs_path) = (&client, &jobs_path);
        async move { post(client, jobs_path, body).await }
    };
    for (secs, inc, snapshot) in [
        (t0 + 10, 1, &snapshots[0]),
        (t0 + 100, 1, &snapshots[0]),
        (t0 + 250, 1, &snapshots[2]),
        (t0 + 300, 1, &snapshots[2]),
    ] {
        let accepted = restore_to(secs, inc).await;
        assert_eq!(
            accepted.status,
            StatusCode::OK,
            "{secs}:{inc}: {}",
            accepted.text
        );
        assert_eq!(
            accepted.json()["results"][0]["snapshotId"],
            snapshot.as_str()
        );
    }
    for (secs, inc) in [(t0 + 10, 0), (t0 + 100, 2), (t0 + 249, 1), (t0 + 300, 2)] {
        restore_to(secs, inc).await.assert_error(
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            &["oplogTs"],
        );
    }

    let (id, public, private) = create_key(
        &client,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&client, &server.boot.org_id, &id).await;
    let reader = server.client_for(&public, &private);
    post(&reader, &ranges_path, json!({}))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    post(
        &client,
        &format!("{API}/groups/{group}/clusters/nope/restoreJobs/restorableTimeRanges"),
        json!({}),
    )
    .await
    .assert_error(404, "INVALID_CLUSTER_ID", &["nope"]);

    let out = rewind_as_client(
        &server,
        &["restore", "ranges", "--group", &group, "--cluster", &rs],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("FROM"), "{table}");
    assert!(
        lines[1].contains(&format!("({}:1)", t0 + 10)) && lines[1].ends_with(snapshots[0].as_str()),
        "{table}"
    );
    assert!(lines[2].contains(&format!("({}:1)", t0 + 300)), "{table}");
    let out = rewind_as_client(
        &server,
        &[
            "restore",
            "ranges",
            "--group",
            &group,
            "--cluster",
            &rs,
            "--json",
        ],
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints the array");
    assert_eq!(printed, ranges.json());
}

/// A sharded cluster's ranges say how many shards it has and that its config server is a
/// replica set of its own; only what every shard and the config server reach is listed.
#[tokio::test]
async fn sharded_ranges_carry_the_shard_count_and_config_server_type() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let t0 = chrono::Utc::now().timestamp() as u32 - 1800;
    let taken = format!("{}:1", t0 + 5);
    let imported = ImportedShardedCluster::import_with(
        &server,
        20_000,
        146,
        json!({}),
        &["--taken-at", &taken],
    )
    .await;
    let cluster = &imported.cluster;
    push_oplog(&client, &group, cluster, "ledger-shard-0", t0..=t0 + 60).await;
    push_oplog(&client, &group, cluster, "ledger-shard-1", t0..=t0 + 40).await;
    push_oplog(&client, &group, cluster, "ledger-config-0", t0..=t0 + 90).await;
    let ranges_path = format!(
        "{}/restorableTimeRanges",
        restore_jobs_path(&group, cluster)
    );
    let ranges = post(&client, &ranges_path, json!({})).await;
    assert_eq!(ranges.status, StatusCode::OK, "{}", ranges.text);
    assert_eq!(
        ranges.json(),
        json!([{
            "configServerType": "Dedicated",
            "end": bson(t0 + 40, 1),
            "shardCount": 2,
            "snapshotId": imported.snapshot,
            "start": bson(t0 + 5, 1),
        }]),
        "the shortest replica set's oplog bounds the range"
    );
    let ids = cluster_ids(&client, &group).await;
    let shard = &ids["ledger-shard-0"];
    post(
        &client,
        &format!("{}/restorableTimeRanges", restore_jobs_path(&group, shard)),
        json!({}),
    )
    .await
    .assert_error(400, "INVALID_ATTRIBUTE", &["clusterId"]);
}

/// The Go client's `SnapshotSchedule` round trip: its fixture's values PATCHed (with the
/// empty ids the client sends) come back as the fixture shows them; the point-in-time
/// window and the checkpoint interval are the project's one record, shared with
/// `backupSettings`; every field is validated with Cloud Manager's error codes, all or none.
#[tokio::test]
async fn the_snapshot_schedule_reads_and_changes_as_the_go_client_expects() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let rs = register_replica_set(&client, &group, "sched").await;
    let sharded =
        register_cluster(&client, &group, json!({"clusterName": "wide", "shards": 1})).await;
    let sharded = sharded["members"][0]["id"].as_str().unwrap().to_owned();
    let path = |c: &str| format!("{API}/groups/{group}/backupConfigs/{c}/snapshotSchedule");
    let fresh = get(&client, &path(&rs)).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(
        fresh.json(),
        json!({
            "clusterId": rs, "groupId": group,
            "links": [{"href": server.at(&path(&rs)), "rel": "self"}],
            "pointInTimeWindowHours": 24
        }),
        "nothing set: no retention, so imported snapshots never expire on their own"
    );
    assert_eq!(
        get(&client, &path(&sharded)).await.json()["clusterCheckpointIntervalMin"],
        15
    );

    let fixture = json!({
        "clusterId": "", "groupId": "",
        "dailySnapshotRetentionDays": 7, "monthlySnapshotRetentionMonths": 13,
        "pointInTimeWindowHours": 48, "snapshotIntervalHours": 6,
        "snapshotRetentionDays": 2, "weeklySnapshotRetentionWeeks": 4,
        "referenceHourOfDay": 3, "referenceMinuteOfHour": 30, "referenceTimeZoneOffset": "-0530"
    });
    let patched = call(&client, reqwest::Method::PATCH, &path(&rs), Some(fixture)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let expected = json!({
        "clusterId": rs, "dailySnapshotRetentionDays": 7, "groupId": group,
        "links": [{"href": server.at(&path(&rs)), "rel": "self"}],
        "monthlySnapshotRetentionMonths": 13, "pointInTimeWindowHours": 48,
        "referenceHourOfDay": 3, "referenceMinuteOfHour": 30, "referenceTimeZoneOffset": "-0530",
        "snapshotIntervalHours": 6, "snapshotRetentionDays": 2, "weeklySnapshotRetentionWeeks": 4
    });
    assert_eq!(patched.json(), expected);
    assert_eq!(get(&client, &path(&rs)).await.json(), expected);
    let settings = format!("{REWIND_API}/groups/{group}/backupSettings");
    assert_eq!(
        get(&client, &settings).await.json()["pointInTimeWindowHours"],
        48,
        "one record"
    );
    let changed = call(
        &client,
        reqwest::Method::PATCH,
        &settings,
        Some(json!({"checkpointIntervalMinutes": 30})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        get(&client, &path(&sharded)).await.json()["clusterCheckpointIntervalMin"],
        30
    );
    let sharded_patch = call(
        &client,
        reqwest::Method::PATCH,
        &path(&sharded),
        Some(json!({"clusterCheckpointIntervalMin": 60})),
    )
    .await;
    assert_eq!(
        sharded_patch.json()["clusterCheckpointIntervalMin"],
        60,
        "{}",
        sharded_patch.text
    );

    let refused = [
        (
            json!({"snapshotIntervalHours": 7}),
            400,
            "INVALID_SNAPSHOT_INTERVAL",
            "snapshotIntervalHours",
        ),
        (
            json!({"snapshotRetentionDays": 6}),
            400,
            "INVALID_SNAPSHOT_RETENTION_PERIOD",
            "snapshotRetentionDays",
        ),
        (
            json!({"dailySnapshotRetentionDays": 0}),
            400,
            "INVALID_DAILY_SNAPSHOT_RETENTION_PERIOD",
            "dailySnapshotRetentionDays",
        ),
        (
            json!({"weeklySnapshotRetentionWeeks": 53}),
            400,
            "INVALID_WEEKLY_SNAPSHOT_RETENTION_PERIOD",
            "weeklySnapshotRetentionWeeks",
        ),
        (
            json!({"monthlySnapshotRetentionMonths": 37}),
            400,
            "INVALID_MONTHLY_SNAPSHOT_RETENTION_PERIOD",
            "monthlySnapshotRetentionMonths",
        ),
        (
            json!({"referenceHourOfDay": 24}),
            400,
            "INVALID_REFERENCE_HOUR_OF_DAY",
            "referenceHourOfDay",
        ),
        (
            json!({"referenceMinuteOfHour": -1}),
            400,
            "INVALID_REFERENCE_MINUTE_OF_HOUR",
            "referenceMinuteOfHour",
        ),
        (
            json!({"referenceTimeZoneOffset": "UTC"}),
            400,
            "INVALID_REFERENCE_TIMEZONE_OFFSET",
            "referenceTimeZoneOffset",
        ),
        (
            json!({"clusterCheckpointIntervalMin": 30}),
            400,
            "CANNOT_SET_CLUSTER_CHECKPOINT_INTERVAL_FOR_REPLICA_SET",
            "clusterCheckpointIntervalMin",
        ),
        (
            json!({"pointInTimeWindowHours": 0}),
            400,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            "pointInTimeWindowHours",
        ),
        (
            json!({"snapshotRetentionDays": "two"}),
            400,
            "INVALID_JSON_ATTRIBUTE",
            "snapshotRetentionDays",
        ),
        (
            json!({"snapshotRetentionDays": 1.5}),
            400,
            "INVALID_ATTRIBUTE",
            "snapshotRetentionDays",
        ),
        (
            json!({"referenceTimeZoneOffset": 0}),
            400,
            "INVALID_JSON_ATTRIBUTE",
            "referenceTimeZoneOffset",
        ),
        (
            json!({"retention": 3}),
            400,
            "INVALID_ATTRIBUTE",
            "retention",
        ),
        (
            json!({"clusterId": sharded}),
            400,
            "INVALID_ATTRIBUTE",
            "clusterId",
        ),
    ];
    for (body, status, code, field) in refused {
        let mut body = body;
        body["dailySnapshotRetentionDays"] = body
            .get("dailySnapshotRetentionDays")
            .cloned()
            .unwrap_or(json!(30));
        call(&client, reqwest::Method::PATCH, &path(&rs), Some(body))
            .await
            .assert_error(status, code, &[field]);
    }
    let other_group = "5f0000000000000000000009";
    call(
        &client,
        reqwest::Method::PATCH,
        &path(&rs),
        Some(json!({"groupId": other_group})),
    )
    .await
    .assert_error(400, "GROUP_MISMATCH", &[other_group]);
    assert_eq!(
        get(&client, &path(&rs)).await.json(),
        expected,
        "refused changes change nothing"
    );
    call(
        &client,
        reqwest::Method::PATCH,
        &path(&rs),
        Some(json!("nope")),
    )
    .await
    .assert_error(400, "INVALID_JSON", &[]);
    get(
        &client,
        &format!("{API}/groups/{group}/backupConfigs/{other_group}/snapshotSchedule"),
    )
    .await
    .assert_error(404, "CLUSTER_NOT_FOUND", &[other_group, &group]);

    let (id, public, private) = create_key(
        &client,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&client, &server.boot.org_id, &id).await;
    let reader = server.client_for(&public, &private);
    assert_eq!(
        get(&reader, &path(&rs)).await.json(),
        expected,
        "any role reads it"
    );
    call(
        &reader,
        reqwest::Method::PATCH,
        &path(&rs),
        Some(json!({"snapshotRetentionDays": 1})),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);
}

/// The retention gives imported snapshots their `expires`: the first of its month is kept
/// `monthlySnapshotRetentionMonths`, a later one of the same day `snapshotRetentionDays`;
/// the sweeper deletes an expired snapshot and keeps one marked `doNotDelete`.
#[tokio::test]
async fn retention_gives_imported_snapshots_their_expiry_and_the_sweeper_deletes_expired_ones() {
    let server = TestServer::start_with(&["--sweep-interval-secs", "1"]);
    let client = server.client();
    let group = server.boot.group_id.clone();
    let rs = register_replica_set(&client, &group, "kept").await;
    let schedule = format!("{API}/groups/{group}/backupConfigs/{rs}/snapshotSchedule");
    let set = call(
        &client,
        reqwest::Method::PATCH,
        &schedule,
        Some(json!({"snapshotRetentionDays": 1})),
    )
    .await;
    assert_eq!(
        set.json()["monthlySnapshotRetentionMonths"],
        13,
        "the others take Cloud Manager's defaults"
    );
    let now = chrono::Utc::now().timestamp();
    // Both taken on one UTC day (yesterday's first hours): taken an hour apart just after
    // midnight, they would fall on two days and each be its day's first.
    let yesterday = now - now.rem_euclid(86_400) - 86_400;
    let mut taken = Vec::new();
    for (i, hour) in [1, 2].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 10_000, 150 + i as u64);
        let at = format!("{}:1", yesterday + hour * 3600);
        let dir = dir.path().to_str().unwrap().to_owned();
        let summary = import(&server, &group, &rs, &["--from", &dir, "--taken-at", &at]);
        taken.push(summary["snapshotId"].as_str().unwrap().to_owned());
    }
    let expires = |snapshot: &Value| {
        let text = snapshot["expires"]
            .as_str()
            .unwrap_or_else(|| panic!("no expiry: {snapshot}"));
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp()
    };
    let snapshot_path = |id: &str| format!("{}/{id}", snapshots_path(&group, &rs));
    let first = get(&client, &snapshot_path(&taken[0])).await.json();
    let second = get(&client, &snapshot_path(&taken[1])).await.json();
    let day = 86_400;
    assert!(
        expires(&first) - now > 360 * day,
        "the month's first is kept 13 months: {first}"
    );
    let kept = expires(&second) - now;
    assert!(
        (day - 60..=day + 60).contains(&kept),
        "a later one of its day is kept 1 day: {second}"
    );

    let soon = rewind_api_types::iso_seconds::format_iso(chrono::Utc::now().timestamp() + 2);
    for id in &taken {
        let patched = call(
            &client,
            reqwest::Method::PATCH,
            &snapshot_path(id),
            Some(json!({"expires": soon})),
        )
        .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    }
    let protected = call(
        &client,
        reqwest::Method::PATCH,
        &snapshot_path(&taken[1]),
        Some(json!({"doNotDelete": true})),
    )
    .await;
    assert_eq!(protected.json()["doNotDelete"], true, "{}", protected.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(&client, &snapshot_path(&taken[0])).await.status == StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired snapshot was never deleted"
        );
        pause(std::time::Duration::from_millis(200)).await;
    }
    get(&client, &snapshot_path(&taken[0])).await.assert_error(
        404,
        "SNAPSHOT_NOT_FOUND",
        &[&taken[0], &rs],
    );
    assert_eq!(
        get(&client, &snapshot_path(&taken[1])).await.status,
        StatusCode::OK,
        "doNotDelete wins"
    );
}
