//! Pins the answer to a malformed id in a path: `404` with the id's own `INVALID_*_ID` code,
//! for text that is not an id, for an over-long id, and for a segment that does not even
//! percent-decode to UTF-8, at every position of the routes below.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// A well-formed id that names nothing.
const SOME_ID: &str = "5f0000000000000000000000";

/// Malformed segments, each with the text its answer echoes.
fn malformed_segments() -> Vec<(String, String)> {
    let over_long = "5f".repeat(150);
    vec![
        ("not-an-id".to_owned(), "not-an-id".to_owned()),
        (over_long.clone(), over_long),
        // Undecodable bytes are echoed as sent, still percent-encoded.
        ("%ff%fe".to_owned(), "%ff%fe".to_owned()),
    ]
}

/// A route with one id replaced by `{}`: the method and the path for a given segment.
struct IdRoute {
    method: Method,
    template: String,
}

impl IdRoute {
    fn uri(&self, segment: &str) -> String {
        self.template.replacen("{}", segment, 1)
    }
}

fn route(method: Method, template: String) -> IdRoute {
    IdRoute { method, template }
}

/// Every id kind with its code, its noun, and routes that take it (in every position).
fn id_routes(app: &App) -> Vec<(&'static str, &'static str, Vec<IdRoute>)> {
    let (org, group, id) = (&app.boot.org_id, &app.boot.group_id, SOME_ID);
    let cluster = format!("{API}/groups/{group}/clusters/{id}");
    let rewind_cluster = format!("{REWIND_API}/groups/{group}/clusters/{id}");
    vec![
        (
            "INVALID_ORG_ID",
            "organization",
            vec![
                route(Method::GET, format!("{API}/orgs/{{}}/apiKeys")),
                route(Method::POST, format!("{API}/orgs/{{}}/apiKeys")),
                route(Method::GET, format!("{API}/orgs/{{}}/apiKeys/{id}")),
                route(
                    Method::DELETE,
                    format!("{API}/orgs/{{}}/apiKeys/{id}/accessList/10.0.0.0%2F8"),
                ),
            ],
        ),
        (
            "INVALID_API_KEY_ID",
            "API key",
            vec![
                route(Method::GET, format!("{API}/orgs/{org}/apiKeys/{{}}")),
                route(Method::DELETE, format!("{API}/orgs/{org}/apiKeys/{{}}")),
                route(
                    Method::POST,
                    format!("{API}/orgs/{org}/apiKeys/{{}}/accessList"),
                ),
                route(
                    Method::DELETE,
                    format!("{API}/orgs/{org}/apiKeys/{{}}/accessList/10.0.0.0%2F8"),
                ),
            ],
        ),
        (
            "INVALID_GROUP_ID",
            "group",
            vec![
                route(Method::GET, format!("{API}/groups/{{}}")),
                route(Method::GET, format!("{API}/groups/{{}}/clusters")),
                route(Method::POST, format!("{API}/groups/{{}}/apiKeys")),
                route(
                    Method::GET,
                    format!("{API}/groups/{{}}/clusters/{id}/restoreJobs/{id}"),
                ),
                route(Method::POST, format!("{REWIND_API}/groups/{{}}/chunks")),
                route(
                    Method::POST,
                    format!("{REWIND_API}/groups/{{}}/clusters/{id}/oplog/rs0"),
                ),
                route(
                    Method::PATCH,
                    format!("{REWIND_API}/groups/{{}}/backupSettings"),
                ),
            ],
        ),
        (
            "INVALID_CLUSTER_ID",
            "cluster",
            vec![
                route(Method::GET, format!("{API}/groups/{group}/clusters/{{}}")),
                route(
                    Method::GET,
                    format!("{API}/groups/{group}/clusters/{{}}/snapshots/{id}"),
                ),
                route(
                    Method::POST,
                    format!("{API}/groups/{group}/clusters/{{}}/restoreJobs"),
                ),
                route(
                    Method::POST,
                    format!("{REWIND_API}/groups/{group}/clusters/{{}}/agents/heartbeat"),
                ),
                route(
                    Method::GET,
                    format!("{REWIND_API}/groups/{group}/clusters/{{}}/oplog/rs0"),
                ),
            ],
        ),
        (
            "INVALID_SNAPSHOT_ID",
            "snapshot",
            vec![
                route(Method::GET, format!("{cluster}/snapshots/{{}}")),
                route(Method::PATCH, format!("{cluster}/snapshots/{{}}")),
                route(Method::DELETE, format!("{cluster}/snapshots/{{}}")),
                route(
                    Method::PUT,
                    format!("{rewind_cluster}/snapshots/{{}}/parts/rs0"),
                ),
                route(
                    Method::POST,
                    format!("{rewind_cluster}/snapshots/{{}}/verify"),
                ),
            ],
        ),
        (
            "INVALID_CHECKPOINT_ID",
            "checkpoint",
            vec![route(Method::GET, format!("{cluster}/checkpoints/{{}}"))],
        ),
        (
            "INVALID_JOB_ID",
            "restore job",
            vec![
                route(Method::GET, format!("{cluster}/restoreJobs/{{}}")),
                route(
                    Method::POST,
                    format!("{rewind_cluster}/restoreJobs/{{}}/cancel"),
                ),
                route(
                    Method::GET,
                    format!("{rewind_cluster}/restoreJobs/{{}}/members"),
                ),
            ],
        ),
    ]
}

#[tokio::test]
async fn every_malformed_path_id_is_404_with_its_own_code() {
    let app = App::new().await;
    for (code, noun, routes) in id_routes(&app) {
        for route in routes {
            for (segment, echoed) in malformed_segments() {
                let uri = route.uri(&segment);
                let reply = app.call(route.method.clone(), &uri, None).await;
                let expected = json!({
                    "detail": format!("An invalid {noun} ID {echoed} was specified."),
                    "error": 404,
                    "errorCode": code,
                    "parameters": [echoed],
                    "reason": "Not Found",
                });
                assert_eq!(
                    reply.status,
                    StatusCode::NOT_FOUND,
                    "{} {uri}",
                    route.method
                );
                assert_eq!(reply.json(), expected, "{} {uri}", route.method);
            }
        }
    }
}

#[tokio::test]
async fn an_undecodable_segment_is_answered_before_a_malformed_id_to_its_left() {
    let app = App::new().await;
    let uri = format!("{API}/groups/not-an-id/clusters/%A0");
    let reply = app.get(&uri).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["errorCode"], "INVALID_CLUSTER_ID");
    assert_eq!(reply.json()["parameters"], json!(["%A0"]));
}

#[tokio::test]
async fn undecodable_segments_that_are_not_ids_are_resource_not_found() {
    let app = App::new().await;
    let (org, group, id) = (&app.boot.org_id, &app.boot.group_id, SOME_ID);
    for (method, uri) in [
        (
            Method::GET,
            format!("{REWIND_API}/groups/{group}/clusters/{id}/oplog/%ff%fe"),
        ),
        (
            Method::DELETE,
            format!("{API}/orgs/{org}/apiKeys/{id}/accessList/%ff%fe"),
        ),
        (
            Method::PUT,
            format!("{REWIND_API}/groups/{group}/clusters/{id}/snapshots/{id}/parts/%ff%fe"),
        ),
    ] {
        let reply = app.call(method.clone(), &uri, None).await;
        let expected = json!({
            "detail": format!("Cannot find resource {uri}."),
            "error": 404,
            "errorCode": "RESOURCE_NOT_FOUND",
            "parameters": [uri],
            "reason": "Not Found",
        });
        assert_eq!(reply.json(), expected, "{method} {uri}");
    }
}

#[tokio::test]
async fn a_download_with_a_malformed_job_id_is_resource_not_found() {
    let app = App::new().await;
    for (segment, _) in malformed_segments() {
        let uri = format!("/backup/restore/v2/pull/{segment}/token/file.tar.gz");
        let req = axum::http::Request::get(&uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let reply = app.send(req).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        let body: Value = reply.json();
        assert_eq!(body["errorCode"], "RESOURCE_NOT_FOUND", "{uri}");
    }
}
