//! The web console in a real browser: headless Chromium signs in, restores, watches and
//! cancels as an operator would, against the real binary.

use std::time::Duration;

use crate::browser::Browser;
use crate::support::*;

#[tokio::test]
async fn a_browser_reads_a_page_the_server_serves_and_pictures_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start();
    browser.goto(&server.at("/health")).await.unwrap();
    browser
        .wait_for_text("body", Duration::from_secs(5), |t| t.contains("OK"))
        .await;
    let body = browser.text("body").await;
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON in the page");
    assert_eq!(health["status"], "OK", "{body}");
    assert!(!browser.has("#signin").await, "no sign-in form on /health");

    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(browser.save_png(dir.path(), "health").await).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
}
