//! Every rule of the restore-job create body, and the job paths and queries: status,
//! `errorCode` and `parameters` per case, against one real server per test.

use reqwest::{Method, StatusCode};
use rewind_cli::client::ApiClient;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// An id no entity has.
const UNKNOWN_ID: &str = "5b7e3fa2e4b0e5c3b29a0000";

/// A server with a replica set `rs0` (FCV 7.0) holding a complete, an incomplete and a
/// deleted snapshot, plus clusters to aim automated restores at.
struct Project {
    server: TestServer,
    client: ApiClient,
    group: String,
    rs0: String,
    rs1: String,
    low_fcv: String,
    sharded_40: String,
    sharded_40_copy: String,
    snapshot: String,
    incomplete: String,
    deleted: String,
}

impl Project {
    async fn start() -> Project {
        let server = TestServer::start();
        let client = server.client();
        let group = server.boot.group_id.clone();
        let rs0 = register_replica_set(&client, &group, "rs0").await;
        let rs1 = register_replica_set(&client, &group, "rs1").await;
        let low_fcv = register_cluster(
            &client,
            &group,
            json!({"clusterName": "low", "featureCompatibilityVersion": "4.0"}),
        )
        .await["members"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut sharded = Vec::new();
        for name in ["old", "old-copy"] {
            let registered = register_cluster(
                &client,
                &group,
                json!({"clusterName": name, "shards": 1, "featureCompatibilityVersion": "4.0"}),
            )
            .await;
            sharded.push(registered["members"][0]["id"].as_str().unwrap().to_owned());
        }
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 200_000, 301);
        let snapshot = import_dir(&server, &group, &rs0, dir.path())["snapshotId"]
            .as_str()
            .unwrap()
            .to_owned();
        let deleted = import_dir(&server, &group, &rs0, dir.path())["snapshotId"]
            .as_str()
            .unwrap()
            .to_owned();
        let gone = delete(
            &client,
            &format!("{}/{deleted}", snapshots_path(&group, &rs0)),
        )
        .await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
        let opened = post(
            &client,
            &format!("{REWIND_API}/groups/{group}/clusters/{rs0}/snapshots"),
            json!({"created": {"date": "2026-01-01T00:00:00Z", "increment": 1}, "mongodVersion": "7.0.0"}),
        )
        .await;
        assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
        let incomplete = opened.json()["id"].as_str().unwrap().to_owned();
        Project {
            server,
            client,
            group,
            rs0,
            rs1,
            low_fcv,
            sharded_40: sharded[0].clone(),
            sharded_40_copy: sharded[1].clone(),
            snapshot,
            incomplete,
            deleted,
        }
    }

    fn jobs(&self) -> String {
        restore_jobs_path(&self.group, &self.rs0)
    }

    fn automated(&self, target_group: &str, target_cluster: &str) -> Value {
        json!({
            "methodName": "AUTOMATED_RESTORE",
            "targetGroupId": target_group,
            "targetClusterId": target_cluster,
        })
    }
}

/// One expected refusal.
struct Case {
    rule: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
    parameters: Vec<String>,
}

enum Body {
    Json(Value),
    Raw(&'static str),
}

fn case(
    rule: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    parameters: &[&str],
) -> Case {
    Case {
        rule,
        body: Body::Json(body),
        status,
        code,
        parameters: parameters.iter().map(|p| p.to_string()).collect(),
    }
}

/// What a reply differs in from the expected error, if anything.
fn mismatch(reply: &Reply, status: u16, code: &str, parameters: &[String]) -> Option<String> {
    let body: Value = serde_json::from_str(&reply.text).ok()?;
    let given: Vec<String> = body["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p.as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let ok = reply.status.as_u16() == status
        && body["errorCode"] == code
        && body["error"] == status
        && body["detail"].as_str().is_some_and(|d| !d.is_empty())
        && given == parameters;
    (!ok).then(|| {
        format!(
            "expected {status} {code} {parameters:?}, got {}",
            reply.text
        )
    })
}

/// Sends every case to `path` and fails once, listing each case that was answered wrongly.
async fn check_all(client: &ApiClient, path: &str, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let reply = match &c.body {
            Body::Json(v) => post(client, path, v.clone()).await,
            Body::Raw(text) => {
                send_raw(
                    client,
                    Method::POST,
                    path,
                    text.as_bytes(),
                    "application/json",
                )
                .await
            }
        };
        let problem = match serde_json::from_str::<Value>(&reply.text) {
            Err(_) => Some(format!("not a JSON error: {} {}", reply.status, reply.text)),
            Ok(_) => mismatch(&reply, c.status, c.code, &c.parameters),
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}", c.rule));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn iso_from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test]
async fn create_restore_job_refuses_malformed_bodies_with_the_contract_codes() {
    let p = Project::start().await;
    let s = p.snapshot.as_str();
    let http = |extra: Value| {
        let mut d = json!({"methodName": "HTTP"});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        json!({"delivery": d, "snapshotId": s})
    };
    let automated = p.automated(&p.group, &p.rs1);
    let with = |base: &Value, k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = vec![
        Case {
            rule: "a body that is not JSON is INVALID_JSON",
            body: Body::Raw("{\"delivery\": "),
            status: 400,
            code: "INVALID_JSON",
            parameters: vec![],
        },
        case(
            "an array body is INVALID_JSON",
            json!([{"snapshotId": s}]),
            400,
            "INVALID_JSON",
            &[],
        ),
        case(
            "a missing delivery is MISSING_ATTRIBUTE",
            json!({"snapshotId": s}),
            400,
            "MISSING_ATTRIBUTE",
            &["delivery"],
        ),
        case(
            "a missing delivery.methodName is MISSING_ATTRIBUTE",
            json!({"delivery": {"maxDownloads": 1}, "snapshotId": s}),
            400,
            "MISSING_ATTRIBUTE",
            &["delivery.methodName"],
        ),
        case(
            "SCP delivery is UNSUPPORTED_DELIVERY_METHOD",
            json!({"delivery": {"methodName": "SCP"}, "snapshotId": s}),
            400,
            "UNSUPPORTED_DELIVERY_METHOD",
            &["delivery.methodName"],
        ),
        case(
            "an unknown delivery method is INVALID_ENUM_VALUE",
            json!({"delivery": {"methodName": "FTP"}, "snapshotId": s}),
            400,
            "INVALID_ENUM_VALUE",
            &["delivery.methodName", "FTP"],
        ),
        case(
            "no restore target is MISSING_ATTRIBUTE snapshotId",
            json!({"delivery": {"methodName": "HTTP"}}),
            400,
            "MISSING_ATTRIBUTE",
            &["snapshotId"],
        ),
        case(
            "two restore targets are INVALID_ATTRIBUTE naming both",
            with(
                &http(json!({})),
                "pointInTimeUTCMillis",
                json!(1_700_000_000_000i64),
            ),
            400,
            "INVALID_ATTRIBUTE",
            &["snapshotId", "pointInTimeUTCMillis"],
        ),
        case(
            "oplogTs without oplogInc is INVALID_ATTRIBUTE",
            json!({"delivery": automated, "oplogTs": "1536610288"}),
            400,
            "INVALID_ATTRIBUTE",
            &["oplogTs", "oplogInc"],
        ),
        case(
            "expires with expirationHours is INVALID_ATTRIBUTE",
            http(json!({"expires": iso_from_now(3600), "expirationHours": 2})),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.expires", "delivery.expirationHours"],
        ),
        case(
            "maxDownloads 0 is ATTRIBUTE_NEGATIVE_OR_ZERO",
            http(json!({"maxDownloads": 0})),
            400,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            &["delivery.maxDownloads"],
        ),
        case(
            "maxDownloads -1 is ATTRIBUTE_NEGATIVE_OR_ZERO",
            http(json!({"maxDownloads": -1})),
            400,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            &["delivery.maxDownloads"],
        ),
        case(
            "expirationHours 0 is ATTRIBUTE_NEGATIVE_OR_ZERO",
            http(json!({"expirationHours": 0})),
            400,
            "ATTRIBUTE_NEGATIVE_OR_ZERO",
            &["delivery.expirationHours"],
        ),
        case(
            "a non-numeric maxDownloads is INVALID_JSON_ATTRIBUTE",
            http(json!({"maxDownloads": "abc"})),
            400,
            "INVALID_JSON_ATTRIBUTE",
            &["delivery.maxDownloads"],
        ),
        case(
            "a fractional maxDownloads is INVALID_ATTRIBUTE",
            http(json!({"maxDownloads": 1.5})),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.maxDownloads"],
        ),
        case(
            "expires in the past is INVALID_ATTRIBUTE",
            http(json!({"expires": iso_from_now(-3600)})),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.expires"],
        ),
        case(
            "an unparseable expires is INVALID_JSON_ATTRIBUTE",
            http(json!({"expires": "next tuesday"})),
            400,
            "INVALID_JSON_ATTRIBUTE",
            &["delivery.expires"],
        ),
        case(
            "an unknown top-level field is INVALID_ATTRIBUTE",
            with(&http(json!({})), "colour", json!("red")),
            400,
            "INVALID_ATTRIBUTE",
            &["colour"],
        ),
        case(
            "an unknown delivery field is INVALID_ATTRIBUTE with its dotted name",
            http(json!({"colour": "red"})),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.colour"],
        ),
        case(
            "AUTOMATED_RESTORE without targetGroupId is MISSING_ATTRIBUTE",
            json!({"delivery": {"methodName": "AUTOMATED_RESTORE", "targetClusterId": p.rs1}, "snapshotId": s}),
            400,
            "MISSING_ATTRIBUTE",
            &["delivery.targetGroupId"],
        ),
        case(
            "AUTOMATED_RESTORE without a target cluster is MISSING_ATTRIBUTE",
            json!({"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": p.group}, "snapshotId": s}),
            400,
            "MISSING_ATTRIBUTE",
            &["delivery.targetClusterId"],
        ),
        case(
            "AUTOMATED_RESTORE with maxDownloads is INVALID_ATTRIBUTE",
            json!({"delivery": with(&automated, "maxDownloads", json!(1)), "snapshotId": s}),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.maxDownloads"],
        ),
        case(
            "HTTP with targetGroupId is INVALID_ATTRIBUTE",
            http(json!({"targetGroupId": p.group})),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.targetGroupId"],
        ),
        case(
            "a malformed snapshot id in the body is INVALID_ATTRIBUTE",
            json!({"delivery": {"methodName": "HTTP"}, "snapshotId": "not-an-id"}),
            400,
            "INVALID_ATTRIBUTE",
            &["snapshotId"],
        ),
    ];
    check_all(&p.client, &p.jobs(), cases).await;
}

#[tokio::test]
async fn create_restore_job_refuses_snapshots_and_targets_that_cannot_be_restored() {
    let p = Project::start().await;
    let s = p.snapshot.as_str();
    let to = |group: &str, cluster: &str| json!({"delivery": p.automated(group, cluster), "snapshotId": s});
    let http_of =
        |snapshot: &str| json!({"delivery": {"methodName": "HTTP"}, "snapshotId": snapshot});
    let cases = vec![
        case(
            "an unknown snapshot is SNAPSHOT_NOT_FOUND",
            http_of(UNKNOWN_ID),
            404,
            "SNAPSHOT_NOT_FOUND",
            &[UNKNOWN_ID],
        ),
        case(
            "an incomplete snapshot cannot be restored",
            http_of(&p.incomplete),
            409,
            "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
            &[&p.incomplete],
        ),
        case(
            "a deleted snapshot cannot be restored",
            http_of(&p.deleted),
            409,
            "CANNOT_START_RESTORE_JOB_FOR_DELETED_SNAPSHOT",
            &[&p.deleted],
        ),
        case(
            "a missing target project is GROUP_NOT_FOUND",
            to(UNKNOWN_ID, &p.rs1),
            404,
            "GROUP_NOT_FOUND",
            &[UNKNOWN_ID],
        ),
        case(
            "a missing target cluster is CLUSTER_NOT_FOUND",
            to(&p.group, UNKNOWN_ID),
            404,
            "CLUSTER_NOT_FOUND",
            &[UNKNOWN_ID, &p.group],
        ),
        case(
            "a target of another topology is INVALID_ATTRIBUTE",
            to(&p.group, &p.sharded_40),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.targetClusterId"],
        ),
        case(
            "a target with a lower FCV is INVALID_ATTRIBUTE",
            to(&p.group, &p.low_fcv),
            400,
            "INVALID_ATTRIBUTE",
            &["delivery.targetClusterId"],
        ),
    ];
    check_all(&p.client, &p.jobs(), cases).await;
}

#[tokio::test]
async fn create_restore_job_validates_points_in_time_and_checkpoints_before_refusing_them() {
    let p = Project::start().await;
    let automated = p.automated(&p.group, &p.rs1);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let pit = |millis: i64| json!({"delivery": automated, "pointInTimeUTCMillis": millis});
    let cases = vec![
        case(
            "a point in time in the future is INVALID_ATTRIBUTE",
            pit(now_ms + 3_600_000),
            400,
            "INVALID_ATTRIBUTE",
            &["pointInTimeUTCMillis"],
        ),
        case(
            "a point in time older than 24 hours is INVALID_ATTRIBUTE",
            pit(now_ms - 25 * 3_600_000),
            400,
            "INVALID_ATTRIBUTE",
            &["pointInTimeUTCMillis"],
        ),
        case(
            "a point in time within the window has no oplog to reach it",
            pit(now_ms - 3_600_000),
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            &["pointInTimeUTCMillis"],
        ),
        case(
            "a checkpoint of a replica set is INVALID_ATTRIBUTE",
            json!({"delivery": automated, "checkpointId": UNKNOWN_ID}),
            400,
            "INVALID_ATTRIBUTE",
            &["checkpointId"],
        ),
    ];
    check_all(&p.client, &p.jobs(), cases).await;

    let sharded_jobs = restore_jobs_path(&p.group, &p.sharded_40);
    let cases = vec![case(
        "the Go client's checkPointId on a sharded FCV 4.0 cluster names an unknown checkpoint",
        json!({"delivery": p.automated(&p.group, &p.sharded_40_copy), "checkPointId": UNKNOWN_ID}),
        404,
        "CHECKPOINT_NOT_FOUND",
        &[UNKNOWN_ID],
    )];
    check_all(&p.client, &sharded_jobs, cases).await;
}

#[tokio::test]
async fn create_restore_job_needs_backup_rights_on_the_source_and_the_target_project() {
    let p = Project::start().await;
    let org = &p.server.boot.org_id;
    let group_keys = format!("{API}/groups/{}/apiKeys", p.group);
    let (id, public, private) = create_key(&p.client, &group_keys, "GROUP_READ_ONLY").await;
    allow_loopback(&p.client, org, &id).await;
    let reader = p.server.client_for(&public, &private);
    let body = json!({"delivery": {"methodName": "HTTP"}, "snapshotId": p.snapshot});
    check_all(
        &reader,
        &p.jobs(),
        vec![case(
            "a read-only key cannot create a job",
            body,
            401,
            "USER_UNAUTHORIZED",
            &[],
        )],
    )
    .await;

    let other = post(
        &p.client,
        &format!("{API}/groups"),
        json!({"name": "Elsewhere"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
    let other_group = other.json()["id"].as_str().unwrap().to_owned();
    let other_cluster = register_replica_set(&p.client, &other_group, "rs-elsewhere").await;
    let (id, public, private) = create_key(&p.client, &group_keys, "GROUP_BACKUP_ADMIN").await;
    allow_loopback(&p.client, org, &id).await;
    let admin = p.server.client_for(&public, &private);
    let body =
        json!({"delivery": p.automated(&other_group, &other_cluster), "snapshotId": p.snapshot});
    check_all(
        &admin,
        &p.jobs(),
        vec![case(
            "a backup admin of the source with no role on the target project is NOT_IN_GROUP",
            body,
            401,
            "NOT_IN_GROUP",
            &[&other_group],
        )],
    )
    .await;
}

#[tokio::test]
async fn create_restore_job_accepts_numeric_strings_and_answers_the_defaults() {
    let p = Project::start().await;
    let jobs = create_jobs(
        &p.client,
        &p.jobs(),
        json!({"delivery": {"methodName": "HTTP", "maxDownloads": "2", "expirationHours": "3"}, "snapshotId": p.snapshot}),
    )
    .await;
    let delivery = &jobs[0]["delivery"];
    assert_eq!(
        delivery["maxDownloads"], 2,
        "numeric strings are read as numbers: {delivery}"
    );
    assert_eq!(
        delivery["expirationHours"], 3,
        "numeric strings are read as numbers: {delivery}"
    );

    let jobs = create_jobs(
        &p.client,
        &p.jobs(),
        json!({"delivery": {"methodName": "HTTP"}, "snapshotId": p.snapshot}),
    )
    .await;
    let delivery = &jobs[0]["delivery"];
    assert_eq!(
        delivery["maxDownloads"], 2147483647,
        "omitted maxDownloads is unlimited: {delivery}"
    );
    assert_eq!(
        delivery["expirationHours"], 48,
        "omitted expiry is 48 hours: {delivery}"
    );
    assert!(delivery.get("expires").is_none(), "{delivery}");
}

#[tokio::test]
async fn restore_job_paths_and_queries_refuse_bad_ids() {
    let p = Project::start().await;
    let jobs = p.jobs();
    get(&p.client, &format!("{jobs}/not-a-job-id"))
        .await
        .assert_error(404, "INVALID_JOB_ID", &["not-a-job-id"]);
    get(&p.client, &format!("{jobs}/{UNKNOWN_ID}"))
        .await
        .assert_error(404, "RESTORE_JOB_NOT_FOUND", &[UNKNOWN_ID, &p.rs0]);
    get(&p.client, &format!("{jobs}?batchId=zzz"))
        .await
        .assert_error(400, "INVALID_QUERY_PARAMETER", &["batchId"]);
}
