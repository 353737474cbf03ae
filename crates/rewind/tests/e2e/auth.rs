//! Digest authentication, roles and access lists, seen from a client on a real socket.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_request_without_credentials_gets_the_exact_challenge() {
    let server = TestServer::start();
    let signer = server.signer();
    let reply = signer
        .send(Method::GET, &format!("{API}/groups"), None)
        .await;
    reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    assert_eq!(
        reply.json()["detail"],
        "You are not authorized for this resource."
    );
    assert_challenge(reply.header(WWW_AUTHENTICATE.as_str()).unwrap(), false);
    let other = signer
        .send(Method::GET, &format!("{API}/groups"), None)
        .await;
    assert_ne!(
        nonce_of(reply.header("www-authenticate").unwrap()),
        nonce_of(other.header("www-authenticate").unwrap()),
        "every challenge has a fresh nonce"
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_a_new_challenge() {
    let server = TestServer::start();
    let wrong_secret = server.client_for(
        &server.boot.public_key,
        "00000000-0000-0000-0000-000000000000",
    );
    let reply = get(&wrong_secret, &format!("{API}/groups")).await;
    reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    assert_challenge(reply.header("www-authenticate").unwrap(), false);

    let unknown_user = server.client_for("zzzzzzzz", &server.boot.private_key);
    get(&unknown_user, &format!("{API}/groups"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);

    let signer = server.signer();
    let path = format!("{API}/groups");
    for garbage in [
        "Basic Zm9vOmJhcg==",
        "Digest",
        "Digest username=",
        r#"Digest username="a", realm="MMS Public API", nonce="xyz", uri="/api/public/v1.0/groups", response="00""#,
    ] {
        let reply = signer.send(Method::GET, &path, Some(garbage)).await;
        reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    }
}

#[tokio::test]
async fn the_bootstrap_key_works_with_a_hand_computed_header() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let path = format!("{API}/groups");
    let header = signer.next_header("GET", &path, &nonce);
    let reply = signer.send(Method::GET, &path, Some(&header)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Quoted qop, no algorithm, commas without spaces: what other clients send.
    let variant = signer
        .next_header("GET", &path, &nonce)
        .replace(", ", ",")
        .replace("algorithm=MD5,", "")
        .replace("qop=auth", "qop=\"auth\"");
    let reply = signer.send(Method::GET, &path, Some(&variant)).await;
    assert_eq!(reply.status, StatusCode::OK, "{variant}: {}", reply.text);
}

#[tokio::test]
async fn an_unauthenticated_post_is_refused_before_its_body_is_read() {
    let server = TestServer::start();
    // Declare a huge body of the wrong type and send only its first bytes: a server that
    // read or checked the body first would wait for the rest, or answer 413/415/400.
    let head = format!(
        "POST {REWIND_API}/groups/{}/clusters HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.boot.group_id,
        64 * 1024 * 1024
    );
    let answer = raw_exchange(server.port(), &head, &[0xff; 4096]).await;
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    assert!(answer
        .to_ascii_lowercase()
        .contains("www-authenticate: digest realm="));
    assert!(answer.contains("USER_UNAUTHORIZED"));
}

#[tokio::test]
async fn an_unauthenticated_post_with_a_large_garbage_body_gets_401() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    // Sent whole, as Digest clients send the body with their probe: the client must read
    // the challenge, not a connection reset, however often it tries.
    for _ in 0..20 {
        let response = http
            .post(server.at(&format!("{API}/groups")))
            .header("content-type", "text/plain")
            .body(vec![b'x'; 512 * 1024])
            .send()
            .await
            .expect("the challenge, not a reset connection");
        let reply = into_reply(response).await;
        reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
        assert_challenge(reply.header("www-authenticate").unwrap(), false);
    }
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let path = format!("{API}/groups/{}", server.boot.group_id);
    let first = signer.header("GET", &path, &nonce, 1);
    let reply = signer.send(Method::GET, &path, Some(&first)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let replay = signer.send(Method::GET, &path, Some(&first)).await;
    replay.assert_error(401, "USER_UNAUTHORIZED", &[]);
    assert_challenge(replay.header("www-authenticate").unwrap(), false);

    // The same counter with a new client nonce is still a replay.
    let same_nc = signer.header("GET", &path, &nonce, 1);
    signer
        .send(Method::GET, &path, Some(&same_nc))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
}

#[tokio::test]
async fn a_replayed_header_is_refused_after_the_server_restarts() {
    let mut server = TestServer::start();
    let path = format!("{API}/groups/{}", server.boot.group_id);
    for restart in [TestServer::restart_gracefully, TestServer::restart] {
        let signer = server.signer();
        let nonce = signer.nonce().await;
        let captured = signer.header("GET", &path, &nonce, 1);
        let reply = signer.send(Method::GET, &path, Some(&captured)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

        restart(&mut server);
        let signer = server.signer();
        let replay = signer.send(Method::GET, &path, Some(&captured)).await;
        replay.assert_error(401, "USER_UNAUTHORIZED", &[]);
        let later = signer.header("GET", &path, &nonce, 2);
        let continued = signer.send(Method::GET, &path, Some(&later)).await;
        if runs_on_postgres() {
            // The ledger is in the database and outlives the process: the used counter is
            // a replay, a new one an honest client's next request.
            assert_challenge(replay.header("www-authenticate").unwrap(), false);
            assert_eq!(continued.status, StatusCode::OK, "{}", continued.text);
        } else {
            // Stale: the ledger died with the process, so none of its nonces is accepted;
            // an honest client holding one just signs again with a fresh one.
            assert_challenge(replay.header("www-authenticate").unwrap(), true);
            continued.assert_error(401, "USER_UNAUTHORIZED", &[]);
        }
        let fresh = signer.nonce().await;
        let signed_again = signer.header("GET", &path, &fresh, 1);
        let reply = signer.send(Method::GET, &path, Some(&signed_again)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

#[tokio::test]
async fn a_nonce_may_be_reused_with_a_strictly_increasing_count() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let path = format!("{API}/groups");
    for nc in [1, 2, 5, 6] {
        let header = signer.header("GET", &path, &nonce, nc);
        let reply = signer.send(Method::GET, &path, Some(&header)).await;
        assert_eq!(reply.status, StatusCode::OK, "nc={nc}: {}", reply.text);
    }
    let lower = signer.header("GET", &path, &nonce, 3);
    let reply = signer.send(Method::GET, &path, Some(&lower)).await;
    if runs_on_postgres() {
        // Nodes share the ledger and may see one nonce's requests out of order: it refuses
        // a counter already used, and 3 never was.
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    } else {
        reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    }
    for used in [1, 5] {
        let again = signer.header("GET", &path, &nonce, used);
        signer
            .send(Method::GET, &path, Some(&again))
            .await
            .assert_error(401, "USER_UNAUTHORIZED", &[]);
    }
}

#[tokio::test]
async fn an_expired_nonce_gets_a_stale_challenge() {
    let server = TestServer::start_with(&["--nonce-lifetime-secs", "1"]);
    let signer = server.signer();
    let nonce = signer.nonce().await;
    pause(Duration::from_millis(2100)).await;
    let path = format!("{API}/groups");
    let header = signer.next_header("GET", &path, &nonce);
    let reply = signer.send(Method::GET, &path, Some(&header)).await;
    reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    let challenge = reply.header("www-authenticate").unwrap();
    assert_challenge(challenge, true);

    // The client answers the fresh nonce and gets through.
    let fresh = nonce_of(challenge);
    let header = signer.next_header("GET", &path, &fresh);
    let reply = signer.send(Method::GET, &path, Some(&header)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_forged_nonce_is_refused_without_stale() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    // Flip the last hex digit of the signature.
    let mut forged = nonce.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let path = format!("{API}/groups");
    let header = signer.next_header("GET", &path, &forged);
    let reply = signer.send(Method::GET, &path, Some(&header)).await;
    reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    assert_challenge(reply.header("www-authenticate").unwrap(), false);
}

#[tokio::test]
async fn a_uri_that_is_not_the_request_target_is_refused() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let path = format!("{API}/groups");
    // Signed correctly, but for a different target than the one requested.
    let without_query = signer.next_header("GET", &path, &nonce);
    signer
        .send(
            Method::GET,
            &format!("{path}?pretty=true"),
            Some(&without_query),
        )
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    let other_path = signer.next_header(
        "GET",
        &format!("{API}/groups/{}", server.boot.group_id),
        &nonce,
    );
    signer
        .send(Method::GET, &path, Some(&other_path))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    // Signed for the right target but sent with another method.
    let for_get = signer.next_header("GET", &path, &nonce);
    signer
        .send_json(Method::POST, &path, Some(&for_get), &json!({"name": "x"}))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    // The query is part of the target.
    let with_query = signer.next_header("GET", &format!("{path}?pretty=true"), &nonce);
    let ok = signer
        .send(
            Method::GET,
            &format!("{path}?pretty=true"),
            Some(&with_query),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn a_read_only_key_is_refused_where_it_may_not_write() {
    let server = TestServer::start();
    let owner = server.client();
    let org = &server.boot.org_id;
    let group = &server.boot.group_id;
    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/orgs/{org}/apiKeys"),
        "ORG_READ_ONLY",
    )
    .await;
    allow_loopback(&owner, org, &id).await;
    let reader = server.client_for(&public, &private);

    assert_eq!(
        get(&reader, &format!("{API}/groups")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&reader, &format!("{API}/groups/{group}/clusters"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&reader, &format!("{API}/orgs/{org}/apiKeys"))
            .await
            .status,
        StatusCode::OK
    );
    post(&reader, &format!("{API}/groups"), json!({"name": "Mine"}))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
    post(
        &reader,
        &format!("{REWIND_API}/groups/{group}/clusters"),
        json!({"clusterName": "rs"}),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);
    post(
        &reader,
        &format!("{API}/orgs/{org}/apiKeys"),
        json!({"desc": "escalate", "roles": ["ORG_OWNER"]}),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);
    post(
        &reader,
        &format!("{API}/orgs/{org}/apiKeys/{id}/accessList"),
        json!([{"cidrBlock": "0.0.0.0/0"}]),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);
    delete(&reader, &format!("{API}/orgs/{org}/apiKeys/{id}"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);
}

#[tokio::test]
async fn project_keys_act_on_their_project_only_and_as_their_role_allows() {
    let server = TestServer::start();
    let owner = server.client();
    let org = &server.boot.org_id;
    let group = &server.boot.group_id;
    let other = post(&owner, &format!("{API}/groups"), json!({"name": "Other"}))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_keys = format!("{API}/groups/{group}/apiKeys");

    let (id, public, private) = create_key(&owner, &group_keys, "GROUP_READ_ONLY").await;
    let created = get(&owner, &format!("{API}/orgs/{org}/apiKeys/{id}"))
        .await
        .json();
    assert_eq!(
        created["roles"],
        json!([{"groupId": group, "roleName": "GROUP_READ_ONLY"}])
    );
    allow_loopback(&owner, org, &id).await;
    let reader = server.client_for(&public, &private);
    assert_eq!(
        get(&reader, &format!("{API}/groups/{group}/clusters"))
            .await
            .status,
        StatusCode::OK
    );
    post(
        &reader,
        &format!("{REWIND_API}/groups/{group}/clusters"),
        json!({"clusterName": "rs"}),
    )
    .await
    .assert_error(401, "USER_UNAUTHORIZED", &[]);
    get(&reader, &format!("{API}/groups/{other}/clusters"))
        .await
        .assert_error(401, "NOT_IN_GROUP", &[&other]);
    let listed = get(&reader, &format!("{API}/groups")).await.json();
    assert_eq!(listed["totalCount"], 1, "only its own project is listed");
    assert_eq!(listed["results"][0]["id"], *group);
    get(&reader, &format!("{API}/orgs/{org}/apiKeys"))
        .await
        .assert_error(401, "USER_UNAUTHORIZED", &[]);

    let (id, public, private) = create_key(&owner, &group_keys, "GROUP_BACKUP_ADMIN").await;
    allow_loopback(&owner, org, &id).await;
    let admin = server.client_for(&public, &private);
    register_cluster(&admin, group, json!({"clusterName": "rs"})).await;
    post(
        &admin,
        &format!("{REWIND_API}/groups/{other}/clusters"),
        json!({"clusterName": "rs"}),
    )
    .await
    .assert_error(401, "NOT_IN_GROUP", &[&other]);
}

#[tokio::test]
async fn a_request_from_an_address_off_the_access_list_is_forbidden() {
    let server = TestServer::start();
    let elsewhere = server.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let reply = get(&elsewhere, &format!("{API}/groups")).await;
    reply.assert_error(403, "IP_ADDRESS_NOT_ON_ACCESS_LIST", &["127.0.0.2"]);

    // Allowing the address lets the same key through from there.
    let owner = server.client();
    let org = &server.boot.org_id;
    let keys = get(&owner, &format!("{API}/orgs/{org}/apiKeys"))
        .await
        .json();
    let id = keys["results"][0]["id"].as_str().unwrap();
    let added = post(
        &owner,
        &format!("{API}/orgs/{org}/apiKeys/{id}/accessList"),
        json!([{"cidrBlock": "127.0.0.0/30"}]),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(
        get(&elsewhere, &format!("{API}/groups")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_with_an_empty_access_list_is_forbidden() {
    let server = TestServer::start();
    let owner = server.client();
    let (_, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{}/apiKeys", server.boot.group_id),
        "GROUP_OWNER",
    )
    .await;
    let fresh = server.client_for(&public, &private);
    get(&fresh, &format!("{API}/groups")).await.assert_error(
        403,
        "IP_ADDRESS_NOT_ON_ACCESS_LIST",
        &["127.0.0.1"],
    );
}

#[tokio::test]
async fn an_empty_access_list_is_allowed_when_the_requirement_is_off() {
    let server = TestServer::start_with(&["--require-access-list", "false"]);
    let owner = server.client();
    let (_, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{}/apiKeys", server.boot.group_id),
        "GROUP_OWNER",
    )
    .await;
    let fresh = server.client_for(&public, &private);
    let reply = get(&fresh, &format!("{API}/groups")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // A non-empty list is still enforced.
    let elsewhere = server.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    get(&elsewhere, &format!("{API}/groups"))
        .await
        .assert_error(403, "IP_ADDRESS_NOT_ON_ACCESS_LIST", &["127.0.0.2"]);
}
