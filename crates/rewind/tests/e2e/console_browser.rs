//! The web console in a real browser: headless Chromium signs in (and is refused with a
//! wrong key), finds its way around, signs out, and finds no way to restore with a
//! read-only key, against the real binary. With `REWIND_CONSOLE_SCREENSHOTS` set, the pages
//! are pictured on the way.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::Browser;
use crate::console_http::{ConsoleClient, Source};
use crate::fixtures::*;
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
    let health: Value = serde_json::from_str(&body).expect("JSON in the page");
    assert_eq!(health["status"], "OK", "{body}");
    assert!(!browser.has("#signin").await, "no sign-in form on /health");

    let dir = tempfile::tempdir().unwrap();
    let png = std::fs::read(browser.save_png(dir.path(), "health").await).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
}

/// Fills in the sign-in form and sends it.
async fn submit_sign_in(browser: &Browser, server: &TestServer, public: &str, private: &str) {
    browser.goto(&server.at("/console/signin")).await.unwrap();
    browser.fill("input#publicKey", public).await;
    browser.fill("input#privateKey", private).await;
    browser.click("button#signin-submit").await;
}

/// Signs in, which must reach the projects page.
pub(crate) async fn sign_in(browser: &Browser, server: &TestServer, public: &str, private: &str) {
    submit_sign_in(browser, server, public, private).await;
    browser.wait_for_url("/console/projects").await;
    assert_eq!(browser.text("span#signed-in-as").await, public);
}

/// A new project key that may only read, usable from loopback: `(public, private)`.
async fn read_only_key(
    server: &TestServer,
    client: &rewind_cli::client::ApiClient,
    group: &str,
) -> (String, String) {
    let path = format!("{API}/groups/{group}/apiKeys");
    let (id, public, private) = create_key(client, &path, "GROUP_READ_ONLY").await;
    allow_loopback(client, &server.boot.org_id, &id).await;
    (public, private)
}

pub(crate) fn cluster_url(server: &TestServer, group: &str, cluster: &str) -> String {
    server.at(&format!("/console/projects/{group}/clusters/{cluster}"))
}

#[tokio::test]
async fn a_wrong_private_key_is_refused_and_the_right_one_reaches_the_projects() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (server, client, group, cluster) = registered_replica_set(&[]).await;
    let (public, private) = (&server.boot.public_key, &server.boot.private_key);
    let (reader, _) = read_only_key(&server, &client, &group).await;

    // `/` is the console, which sends a stranger to sign in.
    browser.goto(&server.at("/")).await.unwrap();
    browser.wait_for_url("/console/signin").await;
    let kind = browser.element("input#privateKey").await.attr("type").await;
    assert_eq!(kind.unwrap().as_deref(), Some("password"));
    browser.screenshot("signin").await;

    let last = if private.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &private[..private.len() - 1]);
    submit_sign_in(&browser, &server, public, &wrong).await;
    let error = browser.text("#signin-error").await;
    assert!(error.contains("USER_UNAUTHORIZED"), "{error}");
    assert!(!browser.has("span#signed-in-as").await, "not signed in");
    assert_eq!(
        browser.value("input#privateKey").await,
        "",
        "the private key typed is not given back"
    );
    assert!(!browser.source().await.unwrap().contains(&wrong));
    browser.screenshot("signin-refused").await;

    sign_in(&browser, &server, public, private).await;
    browser.screenshot("projects").await;
    let link = browser.element("table.clusters a.cluster-link").await;
    assert_eq!(link.text().await.unwrap(), "rs0");
    assert_eq!(
        link.attr("data-cluster-id").await.unwrap().as_deref(),
        Some(cluster.as_str())
    );

    browser.click("a#nav-keys").await;
    browser.wait_for_url("/console/keys").await;
    let keys = browser.text("table#keys").await;
    assert!(
        keys.contains(public.as_str()) && keys.contains(&reader),
        "{keys}"
    );
    assert!(browser.has("table#keys tr[data-key-id]").await);
    browser.screenshot("keys").await;

    browser.click("a#nav-projects").await;
    browser.click("a.cluster-link").await;
    browser.wait_for_url(&format!("/clusters/{cluster}")).await;
    assert!(browser.url_now().await.contains(&group));

    // Signing out ends the session: the console asks to sign in again. (The contract's
    // `button#signout` would repeat the form's id; the button is the form's submit.)
    browser.click("form#signout button[type=submit]").await;
    browser.wait_for_url("/console/signin").await;
    browser
        .goto(&cluster_url(&server, &group, &cluster))
        .await
        .unwrap();
    browser.wait_for_url("/console/signin").await;
}

#[tokio::test]
async fn a_read_only_key_finds_no_way_to_restore_and_a_forged_restore_is_refused() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let rs = ImportedReplicaSet::start(64 * 1024, 1641, &[]).await;
    let server = &rs.server;
    let (public, private) = read_only_key(server, &rs.client, &rs.group).await;

    sign_in(&browser, server, &public, &private).await;
    browser.click("a.cluster-link").await;
    browser
        .wait_for_url(&format!("/clusters/{}", rs.cluster))
        .await;
    browser.element("svg#timeline").await;
    assert!(
        browser
            .has(&format!(
                "table#snapshots tr[data-snapshot-id=\"{}\"]",
                rs.snapshot
            ))
            .await
    );
    assert!(
        !browser.has("a#restore-link").await,
        "no restore link for a read-only key"
    );
    let restore_url = browser
        .element("svg#timeline")
        .await
        .attr("data-restore-url")
        .await;
    assert_eq!(
        restore_url.unwrap(),
        None,
        "no restore from the timeline either"
    );
    browser
        .goto(&format!(
            "{}/restore?method=snapshot",
            cluster_url(server, &rs.group, &rs.cluster)
        ))
        .await
        .unwrap();
    browser.element("body").await;
    assert!(
        !browser.has("form#restore-form").await,
        "no wizard for a read-only key"
    );

    // A restore posted by hand, with the session's own token, is refused all the same.
    let mut console = ConsoleClient::new(server);
    console.sign_in(&public, &private).await;
    let token = console.csrf().await;
    let reply = console
        .post(
            &format!(
                "/console/projects/{}/clusters/{}/restore",
                rs.group, rs.cluster
            ),
            &[
                ("method", "snapshot"),
                ("snapshotId", rs.snapshot.as_str()),
                ("delivery", "download"),
                ("csrf", token.as_str()),
            ],
            Source::Console,
        )
        .await;
    assert!(
        matches!(
            reply.status,
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
        ),
        "{}",
        reply.text
    );
    assert_eq!(restore_count(&rs).await, 0, "no restore was started");
}

/// How many restore jobs the cluster has, as the API tells.
pub(crate) async fn restore_count(rs: &ImportedReplicaSet) -> u64 {
    let page = get(&rs.client, &rs.jobs_path()).await.json();
    page["totalCount"].as_u64().expect("totalCount")
}
