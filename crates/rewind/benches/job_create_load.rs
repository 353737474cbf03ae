//! Restore-job creation throughput and latency against the real server.
//!
//! Starts the release `rewind` binary on loopback over a fresh data directory (embedded
//! SQLite store), registers a replica set and imports a tiny snapshot with the real CLI
//! (`BENCH_SNAPSHOT_KIB`, default 64, in four files; creation cost does not depend on it,
//! but the server's restore worker prepares every created job by reading its archive).
//! Then, with the same load as the auth bench (`BENCH_CONNECTIONS` keep-alive connections,
//! default 32, for `BENCH_SECS` seconds, default 10, after a 1 s warm-up), drives as
//! baselines `GET /health` and the Digest-signed `GET …/clusters`, and finally the Digest-
//! signed `POST …/clusters/{C}/restoreJobs` for the snapshot with HTTP delivery. Any answer
//! but `200` counts as an error. Prints creations/s with p50/p99/max latency next to the
//! baselines and their ratios, and checks with one `GET` that every created job is listed.
//!
//! The creation load runs twice: open-loop at the target rate of 2,000/s, with each
//! request's latency counted from the moment it was due (the latency figure), then back to
//! back (the most the server sustains: the throughput figure). A back-to-back load's
//! latency is set by its concurrency (32 requests always in flight at 2,000/s wait 16 ms on
//! average whatever the server does), so it cannot say what a client sees at a given rate.
//!
//! Run with `cargo bench -p rewind --bench job_create_load`.

mod common;

use anyhow::{ensure, Context, Result};
use common::{import_snapshot, print_table, start_server, write_data_dir, Load, Signing, Target};
use hyper::StatusCode;
use rewind_cli::client::{ApiClient, Credentials};

/// Creations per second the embedded store should sustain.
const TARGET_PER_SEC: f64 = 2000.0;
/// The latency every creation but the slowest 1 % should stay under.
const TARGET_P99_MS: f64 = 20.0;

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let load = Load::from_env();
    let snapshot_kib: usize = common::env_or("BENCH_SNAPSHOT_KIB", 64);
    let data_dir = tempfile::tempdir()?;
    let (server, boot) = start_server(data_dir.path())?;
    let runtime = common::runtime()?;
    let client = ApiClient::new(Credentials {
        server: server.url(),
        public_key: boot.public_key.clone(),
        private_key: boot.private_key.clone(),
    })?;
    let group = boot.group_id.clone();

    let registered: serde_json::Value = runtime.block_on(client.post_json(
        &format!("/api/rewind/v1/groups/{group}/clusters"),
        &serde_json::json!({"clusterName": "rs0"}),
    ))?;
    let cluster = registered["members"][0]["id"]
        .as_str()
        .context("registration without members[0].id")?
        .to_owned();
    let source = tempfile::tempdir()?;
    write_data_dir(source.path(), snapshot_kib)?;
    let snapshot = import_snapshot(&server.url(), &boot, &cluster, source.path())?;

    let signing = Signing::new(&boot);
    let clusters = format!("/api/public/v1.0/groups/{group}/clusters");
    let jobs = format!("{clusters}/{cluster}/restoreJobs");
    println!(
        "{}; snapshot of {snapshot_kib} KiB in 4 files",
        load.describe()
    );
    // Baselines first: the restore worker keeps preparing created jobs after their load.
    let health =
        runtime.block_on(load.run(server.addr, &Target::get("/health", None, StatusCode::OK)))?;
    let listed = runtime.block_on(load.run(
        server.addr,
        &Target::get(clusters, Some(signing.clone()), StatusCode::OK),
    ))?;
    let body = serde_json::json!({
        "delivery": {"methodName": "HTTP", "maxDownloads": 1, "expirationHours": 1},
        "snapshotId": snapshot,
    });
    let create = Target::post_json(&jobs, &body, signing);
    // Latency at the target rate first: open-loop, so queueing shows (see
    // `common::run_load`), and before the back-to-back load leaves the worker a backlog.
    let paced = runtime.block_on(load.run_paced(server.addr, &create, TARGET_PER_SEC))?;
    let created = runtime.block_on(load.run(server.addr, &create))?;

    let page: serde_json::Value =
        runtime.block_on(client.get_json(&format!("{jobs}?itemsPerPage=1")))?;
    let total = page["totalCount"]
        .as_u64()
        .context("job list without totalCount")?;

    print_table(&[
        ("GET /health (no auth)", &health),
        ("GET /groups/{G}/clusters (Digest)", &listed),
        (
            "POST /groups/{G}/clusters/{C}/restoreJobs (Digest), open-loop at 2,000/s",
            &paced,
        ),
        (
            "POST /groups/{G}/clusters/{C}/restoreJobs (Digest), back to back",
            &created,
        ),
    ]);
    println!(
        "creations / clusters list: {:.2}; creations / health: {:.2}",
        created.requests_per_sec / listed.requests_per_sec,
        created.requests_per_sec / health.requests_per_sec
    );
    println!(
        "jobs created (warm-up included): {}; listed afterwards (totalCount): {total}",
        created.ok_total + paced.ok_total
    );
    // Throughput is the back-to-back load's; latency is measured at the target rate.
    let met = created.requests_per_sec >= TARGET_PER_SEC
        && paced.requests_per_sec >= 0.98 * TARGET_PER_SEC
        && paced.p99_ms < TARGET_P99_MS;
    println!(
        "target (>= {TARGET_PER_SEC:.0} creations/s, p99 < {TARGET_P99_MS:.0} ms): {}",
        if met { "met" } else { "MISSED" }
    );
    drop(server);
    let created_total = created.ok_total + paced.ok_total;
    ensure!(
        total >= created_total,
        "only {total} jobs listed after {created_total} creations"
    );
    for figures in [&health, &listed, &created, &paced] {
        figures.ensure_no_errors()?;
    }
    Ok(())
}
