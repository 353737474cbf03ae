//! Slow and odd requests: stalled headers, over-long targets, undecodable ids, and bodies
//! sent by keys that may not use the endpoint.

use std::time::{Duration, Instant};

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
