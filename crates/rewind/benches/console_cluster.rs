//! How long the console's cluster page takes for a cluster with a large history, against the
//! real server.
//!
//! Builds a deployment with `rewind init` (embedded SQLite, or the PostgreSQL database
//! `REWIND_BENCH_DATABASE_URL` names, which must be empty), then writes into its metadata
//! store, through the server library's `MetaStore` as imports and pushes leave it:
//! one replica set with `BENCH_SNAPSHOTS` (default 10,000) complete snapshots spread evenly
//! over the last year, and a year of stored oplog, one pushed slice per day, each day
//! continuing the day before except on some days, which start an hour late after a gap. The
//! project's point-in-time window is the longest allowed (30 days). Slice objects are not
//! written: the page reads only their records.
//!
//! Then serves the deployment with the real binary (`--role api`, so retention leaves the
//! year of oplog alone), signs in to the console over HTTP and times, one request at a time
//! on one keep-alive connection, `BENCH_ROUNDS` (default 50) GETs after 5 of warm-up each:
//! the cluster page as first opened, zoomed out to the whole year, and its second page of
//! snapshots; and, as the baseline, the API's `GET …/snapshots?itemsPerPage=100`. Prints the
//! median, p95 and max of each as a Markdown table.
//!
//! Run with `bench/console.sh` or `cargo bench -p rewind --bench console_cluster`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::{env_or, init, start_node, Bootstrap};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use rewind_cli::client::{ApiClient, Credentials};
use rewind_server::ids::{ClusterId, GroupId, OplogSliceId, SnapshotId};
use rewind_server::meta::oplog::OplogCommit;
use rewind_server::meta::MetaStore;
use rewind_server::model::{
    BackupSettingsRecord, ClusterRecord, ClusterType, OplogRange, OplogSliceRecord, OplogStream,
    OplogTs, SnapshotPartRecord, SnapshotRecord,
};
use rewind_server::oplog::coverage;
use rewind_server::storage::StorageConfig;

const DAY_SECS: u32 = 86_400;
const YEAR_DAYS: u32 = 365;
/// Requests sent before the timed ones, so caches and connections are warm.
const WARMUP_REQUESTS: usize = 5;
/// The replica set's name, as its agent would report it.
const REPLICA_SET: &str = "rs-bench";

/// Whether day `day`'s oplog starts after a gap: about one day in four, spread unevenly.
fn gap_before(day: u32) -> bool {
    day > 0 && (day * 7919) % 11 < 3
}

fn ts(secs: u32) -> OplogTs {
    OplogTs { secs, inc: 1 }
}

/// Writes the cluster, its snapshots and its oplog; returns the cluster's id.
async fn seed(
    meta: &dyn MetaStore,
    group: GroupId,
    now: u32,
    snapshot_count: u32,
) -> Result<ClusterId> {
    let cluster = ClusterRecord {
        id: ClusterId::generate(),
        group_id: group,
        cluster_name: "production".to_owned(),
        type_name: ClusterType::ReplicaSet,
        replica_set_name: Some(REPLICA_SET.to_owned()),
        shard_name: None,
        parent_id: None,
        fcv: "7.0".to_owned(),
        last_heartbeat: None,
        created: i64::from(now - YEAR_DAYS * DAY_SECS),
    };
    meta.insert_clusters(std::slice::from_ref(&cluster)).await?;
    meta.update_backup_settings(
        group,
        &BackupSettingsRecord {
            pit_window_hours: Some(30 * 24),
            ..BackupSettingsRecord::default()
        },
    )
    .await?;
    let year_start = now - YEAR_DAYS * DAY_SECS;

    let stream = OplogStream {
        cluster: cluster.id,
        replica_set: REPLICA_SET.to_owned(),
    };
    let mut ranges: Vec<OplogRange> = Vec::new();
    for day in 0..YEAR_DAYS {
        let day_start = year_start + day * DAY_SECS;
        let first = if gap_before(day) {
            day_start + 3600
        } else {
            day_start
        };
        let last = (day_start + DAY_SECS - 1).min(now);
        let entries = u64::from(last - first + 1);
        let slice = OplogSliceRecord {
            id: OplogSliceId::generate(),
            first: ts(first),
            last: ts(last),
            entry_count: entries,
            raw_bytes: entries * 300,
            stored_bytes: entries * 60,
            recorded: i64::from(last),
        };
        // A day that continues the one before states its last entry (`after`), which joins
        // the push to that day's range, as the agent's pushes do.
        let span = OplogRange {
            first: if gap_before(day) || day == 0 {
                slice.first
            } else {
                ts(day_start - 1)
            },
            last: slice.last,
        };
        let after = coverage::merge(&ranges, span);
        let commit = OplogCommit {
            expected_ranges: ranges.clone(),
            slices: vec![slice.clone()],
            retired: vec![],
            ranges: after.clone(),
        };
        meta.record_pending_slices(&stream, &[slice.id], i64::from(last))
            .await?;
        ensure!(
            meta.commit_oplog_push(&stream, &commit, i64::from(last))
                .await?,
            "the push of day {day} was refused"
        );
        ranges = after;
    }

    // Snapshots are independent rows: insert them a few at a time.
    let every = f64::from(YEAR_DAYS * DAY_SECS) / f64::from(snapshot_count);
    futures::stream::iter(0..snapshot_count)
        .map(|i| {
            let created = ts(year_start + (f64::from(i) * every) as u32 + 60);
            let snapshot = SnapshotRecord {
                id: SnapshotId::generate(),
                group_id: group,
                cluster_id: cluster.id,
                created,
                last_oplog_applied: Some(created),
                complete: true,
                expires: None,
                do_not_delete: i % 97 == 0,
                deleted_at: None,
                mongod_version: "7.0.14".to_owned(),
                storage_engine: "wiredTiger".to_owned(),
                recorded: i64::from(created.secs),
                parts: vec![SnapshotPartRecord {
                    committed: true,
                    manifest_name: Some(format!("manifest-{i}")),
                    file_count: 40,
                    file_size_bytes: 12_000_000_000 + u64::from(i) * 1_000_000,
                    data_size_bytes: 10_000_000_000,
                    storage_size_bytes: 900_000_000,
                    ..SnapshotPartRecord::uncommitted(
                        cluster.id,
                        REPLICA_SET.to_owned(),
                        ClusterType::ReplicaSet,
                    )
                }],
            };
            async move { meta.insert_snapshot(&snapshot).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(cluster.id)
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// Signs in to the console with the bootstrap key; returns the session's `Cookie` header.
async fn sign_in(http: &reqwest::Client, base: &str, boot: &Bootstrap) -> Result<String> {
    let form = http.get(format!("{base}/console/signin")).send().await?;
    let token = set_cookie_value(&form, "rewind_signin").context("no sign-in cookie")?;
    let encoded = reqwest::Url::parse_with_params(
        "http://form/",
        [
            ("publicKey", boot.public_key.as_str()),
            ("privateKey", boot.private_key.as_str()),
            ("csrf", token.as_str()),
        ],
    )?;
    let signed_in = http
        .post(format!("{base}/console/signin"))
        .header(COOKIE, format!("rewind_signin={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded.query().unwrap_or_default().to_owned())
        .send()
        .await?;
    if !signed_in.status().is_redirection() || signed_in.headers().get(LOCATION).is_none() {
        bail!(
            "sign-in refused ({}): {}",
            signed_in.status(),
            signed_in.text().await?
        );
    }
    let session = set_cookie_value(&signed_in, "rewind_session").context("no session cookie")?;
    Ok(format!("rewind_session={session}"))
}

/// Latencies of `rounds` sequential requests, after the warm-up; and the last body's size.
struct Timings {
    millis: Vec<f64>,
    body_bytes: usize,
}

impl Timings {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} KiB |",
            self.quantile(0.5),
            self.quantile(0.95),
            self.quantile(1.0),
            self.millis.len(),
            self.body_bytes / 1024
        )
    }
}

/// Times `rounds` sequential GETs of a console page, checking each is the page.
async fn time_page(
    http: &reqwest::Client,
    url: &str,
    session: &str,
    rounds: usize,
) -> Result<Timings> {
    let mut millis = Vec::with_capacity(rounds);
    let mut body_bytes = 0;
    for i in 0..WARMUP_REQUESTS + rounds {
        let started = Instant::now();
        let response = http.get(url).header(COOKIE, session).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        ensure!(status == StatusCode::OK, "{status} for {url}");
        ensure!(
            body.windows(13).any(|w| w == b"id=\"timeline\""),
            "{url} answered without the timeline"
        );
        body_bytes = body.len();
        if i >= WARMUP_REQUESTS {
            millis.push(as_millis(elapsed));
        }
    }
    Ok(Timings { millis, body_bytes })
}

/// Times `rounds` sequential Digest-signed API GETs.
async fn time_api(client: &ApiClient, path: &str, rounds: usize) -> Result<Timings> {
    let mut millis = Vec::with_capacity(rounds);
    let mut body_bytes = 0;
    for i in 0..WARMUP_REQUESTS + rounds {
        let started = Instant::now();
        let response = client.send(Method::GET, path, None, "").await?;
        let elapsed = started.elapsed();
        ensure!(
            response.status == StatusCode::OK,
            "{} for {path}",
            response.status
        );
        body_bytes = response.body.len();
        if i >= WARMUP_REQUESTS {
            millis.push(as_millis(elapsed));
        }
    }
    Ok(Timings { millis, body_bytes })
}

fn as_millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let snapshot_count: u32 = env_or("BENCH_SNAPSHOTS", 10_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 50);
    let database_url = std::env::var("REWIND_BENCH_DATABASE_URL").ok();
    let database_url = database_url.as_deref();
    let data_dir = tempfile::tempdir()?;
    let boot = init(data_dir.path(), database_url)?;
    let group = GroupId::parse(&boot.group_id).context("bootstrap group id")?;
    let now = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    let runtime = common::runtime()?;

    let seeding = Instant::now();
    let cluster = runtime.block_on(async {
        let storage = StorageConfig::with_database(data_dir.path(), database_url)?
            .open()
            .await?;
        seed(storage.meta.as_ref(), group, now, snapshot_count).await
    })?;
    println!(
        "seeded {snapshot_count} snapshots and {YEAR_DAYS} days of oplog in {:.1} s ({})",
        seeding.elapsed().as_secs_f64(),
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "embedded SQLite"
        }
    );

    let server = start_node(data_dir.path(), database_url, &["--role", "api"])?;
    let base = server.url();
    let page = format!("{base}/console/projects/{group}/clusters/{cluster}");
    let year_start = now - YEAR_DAYS * DAY_SECS;
    let rows = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let session = sign_in(&http, &base, &boot).await?;
        let api = ApiClient::new(Credentials {
            server: base.clone(),
            public_key: boot.public_key.clone(),
            private_key: boot.private_key.clone(),
        })?;
        let listing = format!(
            "/api/public/v1.0/groups/{group}/clusters/{cluster}/snapshots?itemsPerPage=100"
        );
        anyhow::Ok(vec![
            (
                "console: cluster page (default view)",
                time_page(&http, &page, &session, rounds).await?,
            ),
            (
                "console: cluster page, the whole year",
                time_page(
                    &http,
                    &format!("{page}?from={year_start}&to={now}"),
                    &session,
                    rounds,
                )
                .await?,
            ),
            (
                "console: cluster page, snapshots page 2",
                time_page(&http, &format!("{page}?page=2"), &session, rounds).await?,
            ),
            (
                "API: GET …/snapshots?itemsPerPage=100 (baseline)",
                time_api(&api, &listing, rounds).await?,
            ),
        ])
    })?;
    println!(
        "{rounds} sequential requests each after {WARMUP_REQUESTS} of warm-up, one connection, {} CPUs shared by server and client",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| request | median | p95 | max | requests | body |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, timings) in &rows {
        println!("{}", timings.row(name));
    }
    drop(server);
    Ok(())
}
