//! Authentication across two `rewind serve` nodes of one deployment: nonces, replays,
//! deleted keys and access-list entries. Several nodes share a database server, so these
//! run only when `REWIND_TEST_DATABASE_URL` names a PostgreSQL server.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

/// How long after a deletion commits another node may still accept the key or entry: the
/// authentication cache's time-to-live (entries age from the start of their load).
const DELETION_BOUND: Duration = Duration::from_secs(2);
/// How often a test asks the other node whether it refuses yet.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Two nodes on one database and one data directory; `None` (after saying so) when the
/// tests run on the embedded store, which one process serves.
fn two_nodes() -> Option<(TestServer, TestServer)> {
    if !runs_on_postgres() {
        println!("skipped: several nodes need PostgreSQL ({DATABASE_URL_VAR} is unset)");
        return None;
    }
    let a = TestServer::start();
    let b = TestServer::start_node_of(&a, &[]);
    Some((a, b))
}

#[tokio::test]
async fn a_nonce_issued_by_one_node_is_accepted_by_the_other() {
    let Some((a, b)) = two_nodes() else { return };
    let path = format!("{API}/groups/{}", a.boot.group_id);
    let (at_a, at_b) = (a.signer(), b.signer());
    let nonce = at_a.nonce().await;
    let reply = at_b
        .send(
            Method::GET,
            &path,
            Some(&at_b.header("GET", &path, &nonce, 1)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // And the other way round, with the client carrying on with the nonce at its issuer.
    let reply = at_a
        .send(
            Method::GET,
            &path,
            Some(&at_a.header("GET", &path, &nonce, 2)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_replayed_header_is_refused_by_both_nodes_whichever_saw_it_first() {
    let Some((a, b)) = two_nodes() else { return };
    let path = format!("{API}/groups/{}", a.boot.group_id);
    let signers = [a.signer(), b.signer()];
    for (first, other) in [(0, 1), (1, 0)] {
        let signer = &signers[first];
        let captured = used_header(signer, &path).await;
        for replayer in [&signers[other], signer] {
            assert_replay_refused(replayer, &path, &captured).await;
        }
    }
}

/// An `Authorization` header for `GET path` that `signer`'s node has just accepted: what an
/// eavesdropper on that exchange would capture.
pub(crate) async fn used_header(signer: &Signer, path: &str) -> String {
    let nonce = signer.nonce().await;
    let captured = signer.header("GET", path, &nonce, 1);
    let reply = signer.send(Method::GET, path, Some(&captured)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    captured
}

/// `captured`, already used, sent again to `replayer`'s node is refused.
pub(crate) async fn assert_replay_refused(replayer: &Signer, path: &str, captured: &str) {
    let replay = replayer.send(Method::GET, path, Some(captured)).await;
    replay.assert_error(401, "USER_UNAUTHORIZED", &[]);
    // Not stale: the nonce is valid, its counter used.
    assert_challenge(replay.header("www-authenticate").unwrap(), false);
}

/// A key of the bootstrap organization, allowed from loopback (and from `more`), created
/// through `node`; returns `(id, public, private)`.
async fn loopback_key(node: &TestServer, more: &[&str]) -> (String, String, String) {
    let org = &node.boot.org_id;
    let client = node.client();
    let key = create_key(
        &client,
        &format!("{API}/orgs/{org}/apiKeys"),
        "ORG_READ_ONLY",
    )
    .await;
    let mut entries = vec![json!({"ipAddress": "127.0.0.1"})];
    entries.extend(more.iter().map(|ip| json!({"ipAddress": ip})));
    let reply = post(
        &client,
        &format!("{API}/orgs/{org}/apiKeys/{}/accessList", key.0),
        json!(entries),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    key
}

/// Sends `GET path` through `client` every [`POLL_EVERY`] until it answers `status`, and
/// asserts that no request sent more than [`DELETION_BOUND`] after `changed` got through.
/// A request authenticates after it is sent, so one sent past the bound was checked past
/// it too, however slow the machine.
async fn refused_within_the_bound(
    client: &rewind_cli::client::ApiClient,
    path: &str,
    changed: Instant,
    status: u16,
    code: &str,
    parameters: &[&str],
) {
    loop {
        let sent = Instant::now();
        let reply = get(client, path).await;
        if reply.status.as_u16() == status {
            reply.assert_error(status, code, parameters);
            return;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert!(
            sent < changed + DELETION_BOUND,
            "still accepted {:?} after the change",
            sent - changed
        );
        pause(POLL_EVERY).await;
    }
}

#[tokio::test]
async fn a_key_deleted_on_one_node_is_refused_by_the_other_within_the_bound() {
    let Some((a, b)) = two_nodes() else { return };
    let (id, public, private) = loopback_key(&a, &[]).await;
    let at_b = b.client_for(&public, &private);
    let path = format!("{API}/groups");
    // B has the key in its cache now.
    let reply = get(&at_b, &path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let deleted = delete(
        &a.client(),
        &format!("{API}/orgs/{}/apiKeys/{id}", a.boot.org_id),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let changed = Instant::now();
    refused_within_the_bound(&at_b, &path, changed, 401, "USER_UNAUTHORIZED", &[]).await;
    let at_a = a.client_for(&public, &private);
    get(&at_a, &path)
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
}

#[tokio::test]
async fn an_access_list_entry_removed_on_one_node_is_refused_by_the_other_within_the_bound() {
    let Some((a, b)) = two_nodes() else { return };
    let (id, public, private) = loopback_key(&a, &["192.0.2.7"]).await;
    let at_b = b.client_for(&public, &private);
    let path = format!("{API}/groups");
    let reply = get(&at_b, &path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let removed = delete(
        &a.client(),
        &format!(
            "{API}/orgs/{}/apiKeys/{id}/accessList/127.0.0.1",
            a.boot.org_id
        ),
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let changed = Instant::now();
    refused_within_the_bound(
        &at_b,
        &path,
        changed,
        403,
        "IP_ADDRESS_NOT_ON_ACCESS_LIST",
        &["127.0.0.1"],
    )
    .await;
}
