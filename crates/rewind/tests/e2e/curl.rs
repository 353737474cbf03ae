//! The script path: `curl --digest`, as the bootstrap message tells users to run it.

use std::process::Command;

use crate::support::*;

fn has_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

/// Runs curl with the key and returns its output: every response's headers, then the body.
fn curl(server: &TestServer, args: &[&str]) -> String {
    let user = format!("{}:{}", server.boot.public_key, server.boot.private_key);
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--include",
            "--digest",
            "--user",
        ])
        .arg(&user)
        .args(["--header", "Accept: application/json"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status lines of every response curl printed, in order.
fn status_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::trim_end)
        .collect()
}

#[test]
fn curl_digest_lists_clusters_and_registers_one() {
    if !has_curl() {
        println!("note: curl is not installed; skipping the curl script test");
        return;
    }
    let server = TestServer::start();
    let group = &server.boot.group_id;

    let out = curl(
        &server,
        &[
            "--header",
            "Content-Type: application/json",
            "--data",
            r#"{"clusterName": "from-curl", "shards": 1}"#,
            &server.at(&format!("{REWIND_API}/groups/{group}/clusters")),
        ],
    );
    assert_eq!(
        status_lines(&out),
        ["HTTP/1.1 401 Unauthorized", "HTTP/1.1 201 Created"],
        "{out}"
    );
    assert!(out.contains(r#""clusterName":"from-curl""#), "{out}");

    let out = curl(
        &server,
        &[&server.at(&format!("{API}/groups/{group}/clusters?pretty=true"))],
    );
    assert_eq!(
        status_lines(&out),
        ["HTTP/1.1 401 Unauthorized", "HTTP/1.1 200 OK"],
        "{out}"
    );
    assert!(out.contains("\"totalCount\": 3"), "{out}");
}
