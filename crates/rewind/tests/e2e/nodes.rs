//! Several `rewind serve` nodes on one deployment's data, each taking a part of the work
//! (`--role api|worker|all`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::fixtures::*;
use crate::support::*;

/// How long a job stays unprepared with no worker running before the test believes nobody
/// is preparing it: several of the worker's one-second polls.
const UNPREPARED_FOR: Duration = Duration::from_secs(4);

#[tokio::test]
async fn a_restore_created_on_an_api_node_is_prepared_only_once_a_worker_node_runs() {
    let api = TestServer::start_with(&["--role", "api"]);
    let imported = ImportedReplicaSet::start_on(api, 1 << 20, 301).await;
    let jobs = imported.restore(json!({"maxDownloads": 1})).await;
    let path = format!("{}/{}", imported.jobs_path(), job_id(&jobs[0]));

    pause(UNPREPARED_FOR).await;
    let waiting = get(&imported.client, &path).await;
    assert_eq!(waiting.status, StatusCode::OK, "{}", waiting.text);
    assert!(
        is_being_prepared(&waiting.json()),
        "an api node prepares nothing: {}",
        waiting.text
    );

    let _worker = TestServer::start_node_of(&imported.server, &["--role", "worker"]);
    let job = imported.ready_job(&jobs[0]).await;
    assert_eq!(job["delivery"]["statusName"], "READY", "{job}");
    let restored = tempfile::tempdir().unwrap();
    untar(&download_archive(&job).await, restored.path());
    assert_restored_tree(imported.source.path(), restored.path());
}

#[tokio::test]
async fn a_worker_node_serves_health_and_metrics_and_nothing_else() {
    let api = TestServer::start_with(&["--role", "api"]);
    let worker = TestServer::start_node_of(&api, &["--role", "worker"]);
    let http = reqwest::Client::new();
    for path in ["/health", "/metrics"] {
        let reply = into_reply(http.get(worker.at(path)).send().await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let groups = format!("{API}/groups/{}", api.boot.group_id);
    // Unauthenticated: a worker node checks no keys, it has no API to reach.
    let refused = into_reply(http.get(worker.at(&groups)).send().await.unwrap()).await;
    refused.assert_error(404, "RESOURCE_NOT_FOUND", &[groups.as_str()]);
    assert!(refused.json()["detail"]
        .as_str()
        .is_some_and(|detail| detail.contains("worker")));
    let served = get(&api.client(), &groups).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
}
