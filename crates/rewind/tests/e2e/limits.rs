//! Slow and odd requests: stalled headers, over-long targets, undecodable ids, and bodies
//! sent by keys that may not use the endpoint.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn a_connection_that_stalls_in_its_headers_is_closed_after_the_header_timeout() {
    let server = TestServer::start_with(&["--header-timeout-secs", "1"]);
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    stalled
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        .await
        .unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    // Closed is closed: an end of stream or a reset.
    let _closed = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut answer))
        .await
        .expect("the server closes the stalled connection within 10 s");
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}, the timeout being 1 s"
    );
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "no answer but a timeout, if any: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // A request sent in full is served as before.
    let health = reqwest::get(server.at("/health")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_correctly_signed_request_with_an_over_long_target_answers_414() {
    let server = TestServer::start();
    let signer = server.signer();
    let nonce = signer.nonce().await;
    let long = format!("{API}/groups?q={}", "x".repeat(4000));
    let header = signer.header("GET", &long, &nonce, 1);
    let reply = signer.send(Method::GET, &long, Some(&header)).await;
    let length = long.len().to_string();
    reply.assert_error(414, "REQUEST_URI_TOO_LONG", &[&length]);
    assert!(
        reply.header("www-authenticate").is_none(),
        "not an authentication problem"
    );

    // Unsigned, too: the length is judged before the credentials.
    signer.send(Method::GET, &long, None).await.assert_error(
        414,
        "REQUEST_URI_TOO_LONG",
        &[&length],
    );
    // At the limit the request goes on to authentication as usual.
    let at_limit = format!("{API}/groups?q=");
    let at_limit = format!("{at_limit}{}", "x".repeat(3072 - at_limit.len()));
    let header = signer.header("GET", &at_limit, &nonce, 2);
    let reply = signer.send(Method::GET, &at_limit, Some(&header)).await;
    assert_ne!(reply.status, StatusCode::URI_TOO_LONG, "{}", reply.text);
}

#[tokio::test]
async fn a_key_without_the_role_is_refused_before_its_body_is_parsed() {
    let server = TestServer::start();
    let owner = server.client();
    let group = server.boot.group_id.clone();
    let (id, public, private) = create_key(
        &owner,
        &format!("{API}/groups/{group}/apiKeys"),
        "GROUP_READ_ONLY",
    )
    .await;
    allow_loopback(&owner, &server.boot.org_id, &id).await;
    let reader = server.client_for(&public, &private);
    let cluster = "5f0000000000000000000001";
    let jobs = format!("{API}/groups/{group}/clusters/{cluster}/restoreJobs");
    for body in [&b"{not json"[..], b"[]", b"{\"unknownField\": 1}"] {
        let reply = send_raw(&reader, Method::POST, &jobs, body, "application/json").await;
        reply.assert_error(401, "USER_UNAUTHORIZED", &[]);
    }
    // The owner, sending the same broken body, is told what is wrong with it.
    let reply = send_raw(
        &owner,
        Method::POST,
        &jobs,
        b"{not json",
        "application/json",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
}
