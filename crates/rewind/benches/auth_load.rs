//! Authenticated API throughput against the real server.
//!
//! Starts the release `rewind` binary on loopback over a fresh data directory, then drives
//! `GET /health` (no authentication) and `GET /api/public/v1.0/groups/{G}/clusters` (Digest)
//! with the same load: `BENCH_CONNECTIONS` keep-alive connections (default 32), each sending
//! one request at a time for `BENCH_SECS` seconds (default 10). Each authenticated connection
//! gets its nonce from one challenge and then reuses it with an increasing `nc`, as a real
//! keep-alive Digest client does. Prints requests/s and p50/p99 latency for both, and their
//! ratio; then, when `wrk` is installed, wrk's figure for `/health` as a sanity check.
//!
//! Run with `cargo bench -p rewind --bench auth_load`.

mod common;

use std::process::Command;

use anyhow::Result;
use common::{print_table, start_server, Load, Signing, Target};
use hyper::StatusCode;
use rewind_cli::client::{ApiClient, Credentials};

/// wrk's requests/s for `url`, when wrk is installed.
fn wrk_requests_per_sec(url: &str, connections: usize, secs: u64) -> Option<String> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
    };
    Some(format!(
        "wrk -t2 -c{connections} -d{secs}s /health: {} requests/s, p50 {}, p99 {}",
        find("Requests/sec:")?,
        find("50%").unwrap_or_default(),
        find("99%").unwrap_or_default()
    ))
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let load = Load::from_env();
    let data_dir = tempfile::tempdir()?;
    let (server, boot) = start_server(data_dir.path())?;
    let runtime = common::runtime()?;
    let clusters = format!("/api/public/v1.0/groups/{}/clusters", boot.group_id);

    runtime.block_on(async {
        // One registered replica set, so the list has a row to render.
        let client = ApiClient::new(Credentials {
            server: server.url(),
            public_key: boot.public_key.clone(),
            private_key: boot.private_key.clone(),
        })?;
        let _: serde_json::Value = client
            .post_json(
                &format!("/api/rewind/v1/groups/{}/clusters", boot.group_id),
                &serde_json::json!({"clusterName": "bench"}),
            )
            .await?;
        anyhow::Ok(())
    })?;

    let signing = Signing::new(&boot);
    println!("{}", load.describe());
    let health =
        runtime.block_on(load.run(server.addr, &Target::get("/health", None, StatusCode::OK)))?;
    let authed = runtime.block_on(load.run(
        server.addr,
        &Target::get(clusters, Some(signing.clone()), StatusCode::OK),
    ))?;
    // The same Digest verification, answered before any storage access: a malformed project
    // id is refused by the handler after authentication. Separates auth from storage cost.
    let auth_only = runtime.block_on(load.run(
        server.addr,
        &Target::get(
            "/api/public/v1.0/groups/not-an-id/clusters",
            Some(signing),
            StatusCode::NOT_FOUND,
        ),
    ))?;
    let rows = [
        ("GET /health (no auth)", &health),
        ("GET /groups/{G}/clusters (Digest)", &authed),
        (
            "GET /groups/not-an-id/clusters (Digest, 404 before storage)",
            &auth_only,
        ),
    ];
    print_table(&rows);
    for (_, figures) in rows {
        figures.ensure_no_errors()?;
    }
    println!(
        "authenticated / health throughput: {:.2}",
        authed.requests_per_sec / health.requests_per_sec
    );
    match wrk_requests_per_sec(
        &format!("{}/health", server.url()),
        load.connections,
        load.secs,
    ) {
        Some(line) => println!("{line}"),
        None => println!("wrk is not installed; skipped the wrk comparison"),
    }
    drop(server);
    Ok(())
}
