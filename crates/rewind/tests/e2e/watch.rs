//! `rewind restore watch` and `rewind restore start --wait` following real restores: an
//! automated restore slowed down in transit, whose delivered bytes must be seen growing,
//! one that breaks (a non-zero exit with the reason), and an HTTP job.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::agent::*;
use crate::fixtures::*;

/// Reads a watching child's JSON lines to its end; returns them with its exit status and
/// standard error.
fn watch_lines(mut child: Child) -> (Vec<Value>, std::process::ExitStatus, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let lines: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|line| {
            let line = line.unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
        })
        .collect();
    let out = child.wait_with_output().unwrap();
    (
        lines,
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn start_wait_shows_a_slow_automated_restore_growing_and_exits_zero_when_it_finishes() {
    let (imported, proxy) = proxied_replica_set(4 << 20, 581).await;
    proxy.slow.store(true, Ordering::SeqCst);
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let m = Member::new(target.root.path(), "solo:27017", 980);
    let _agent = target.agent(&server.url, "target", "solo", &[(&m, m.start_command())]);
    eventually_heartbeat(&server.client(), &target).await;
    let child = rewind_client_command(server)
        .args(["restore", "start", "--group", &imported.group])
        .args([
            "--cluster",
            &imported.cluster,
            "--snapshot",
            &imported.snapshot,
        ])
        .args(["--target-group", &target.group])
        .args(["--target-cluster", &target.cluster, "--wait", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rewind binary runs");
    let watching = tokio::task::spawn_blocking(move || watch_lines(child));
    let (lines, status, stderr) = watching.await.unwrap();
    assert!(status.success(), "watch failed: {stderr}");
    let last = lines.last().expect("at least one line");
    assert_eq!(last["statusName"], "FINISHED", "{last}");
    let expected = last["bytesExpected"].as_u64().expect("the archive's size");
    assert_eq!(last["bytesPrepared"].as_u64(), Some(expected));
    assert_eq!(last["members"][0]["memberName"], "solo:27017");
    assert_eq!(
        last["members"][0]["bytesDelivered"].as_u64(),
        Some(expected)
    );
    let delivered: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["bytesDelivered"].as_u64())
        .collect();
    assert!(
        delivered.windows(2).all(|w| w[0] <= w[1]),
        "delivered bytes never go back: {delivered:?}"
    );
    let partial: Vec<u64> = delivered
        .iter()
        .copied()
        .filter(|&d| d > 0 && d < expected)
        .collect();
    assert!(
        partial.len() >= 2,
        "the slow transfer is seen growing in steps: {delivered:?}"
    );
    assert!(
        lines.iter().any(|l| l["members"][0]["state"] == "APPLYING"),
        "the member's state is shown"
    );
    assert!(
        lines.iter().any(
            |l| l["bytesPerSecond"].as_u64().is_some_and(|s| s > 0) && l["etaSeconds"].is_u64()
        ),
        "speed and time left are shown while it runs"
    );
    for line in &lines {
        assert_eq!(line["jobId"], last["jobId"], "every line names the job");
    }
    assert_member_state(&m);
}

fn assert_member_state(m: &Member) {
    assert_eq!(
        std::fs::read_to_string(&m.state_file).unwrap().trim(),
        "started"
    );
}

#[tokio::test]
async fn watching_a_job_that_breaks_exits_non_zero_with_the_reason() {
    let imported = ImportedReplicaSet::start(300_000, 591, &[]).await;
    let server = &imported.server;
    let target = Target::register(server, "target", None).await;
    let m = Member::new(target.root.path(), "bad:27017", 990);
    let failing = "echo 'mongod exited: bad WiredTiger files' >&2; exit 3".to_owned();
    let _agent = target.agent(&server.url, "target", "bad", &[(&m, failing)]);
    eventually_heartbeat(&server.client(), &target).await;
    let jobs = create_automated(server, &imported.jobs_path(), &target, &imported.snapshot).await;
    let job = job_id(&jobs[0]).to_owned();
    let child = rewind_client_command(server)
        .args(["restore", "watch", &job, "--group", &imported.group])
        .args(["--cluster", &imported.cluster, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rewind binary runs");
    let (lines, status, stderr) = tokio::task::spawn_blocking(move || watch_lines(child))
        .await
        .unwrap();
    assert!(!status.success(), "a broken job is a failure");
    assert!(
        stderr.contains("BROKEN") && stderr.contains("bad WiredTiger files"),
        "{stderr}"
    );
    let last = lines.last().expect("at least one line");
    assert_eq!(last["statusName"], "BROKEN", "{last}");
    assert!(
        last["failureReason"]
            .as_str()
            .is_some_and(|r| r.contains("start command failed")),
        "{last}"
    );
    assert_eq!(last["members"][0]["state"], "FAILED", "{last}");
}

#[tokio::test]
async fn watching_an_http_job_ends_when_its_archive_is_prepared() {
    let imported = ImportedReplicaSet::start(1 << 20, 601, &[]).await;
    let jobs = imported.restore(serde_json::json!({})).await;
    let out = rewind_as_client(
        &imported.server,
        &[
            "restore",
            "watch",
            job_id(&jobs[0]),
            "--group",
            &imported.group,
            "--cluster",
            &imported.cluster,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("FINISHED"), "{stdout}");
    let prepared = last
        .split(" prepared ")
        .nth(1)
        .and_then(|r| r.split([';', ' ']).next())
        .unwrap_or_default();
    let (done, of) = prepared.split_once('/').unwrap_or_default();
    assert!(
        !done.is_empty() && done == of,
        "prepared to the end: {last}"
    );
}
