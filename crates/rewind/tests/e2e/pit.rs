//! Restores to a moment between snapshots, end to end: point-in-time and oplog-timestamp
//! restores of a replica set and of a sharded cluster, their `oplog.bson` read back with
//! MongoDB's own Python BSON implementation, and the refusals with the restorable stretches.

use std::path::Path;

use rewind_cli::client::ApiClient;
use rewind_devtools::oplog::oplog_entry;
use serde_json::{json, Value};

use crate::fixtures::*;
use crate::support::*;

/// One generated oplog entry: its ts and its bytes.
#[derive(Clone)]
pub(crate) struct Entry {
    secs: u32,
    inc: u32,
    note: String,
    bytes: Vec<u8>,
}

/// Entries at every second of `secs`, increments `1..=per_second`, each carrying a note
/// of about `note_bytes` bytes (so a few thousand of them fill several oplog slices).
fn entries(secs: std::ops::Range<u32>, per_second: u32, note_bytes: usize) -> Vec<Entry> {
    secs.flat_map(|s| (1..=per_second).map(move |i| (s, i)))
        .map(|(secs, inc)| {
            let mut note = format!("{secs}-{inc}-");
            note.extend(std::iter::repeat_n(
                'x',
                note_bytes.saturating_sub(note.len()),
            ));
            Entry {
                secs,
                inc,
                bytes: oplog_entry(secs, inc, &note),
                note,
            }
        })
        .collect()
}

/// Imports `dir` as a snapshot taken at `taken` (`SECONDS:INCREMENT`); returns the summary.
fn import_dir_taken_at(
    server: &TestServer,
    group: &str,
    cluster: &str,
    dir: &Path,
    taken: &str,
) -> Value {
    let dir = dir.to_str().unwrap();
    import(
        server,
        group,
        cluster,
        &["--from", dir, "--taken-at", taken],
    )
}

fn now_secs() -> u32 {
    chrono::Utc::now().timestamp() as u32
}

/// Pushes `entries` for `replica_set` with `rewind oplog push` and `flags` (without
/// `--after`, a new range unless they overlap a stored one).
fn push_with(
    server: &TestServer,
    group: &str,
    cluster: &str,
    replica_set: &str,
    entries: &[Entry],
    flags: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oplog.bson");
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.bytes.clone()).collect();
    std::fs::write(&file, bytes).unwrap();
    let mut args = vec![
        "oplog",
        "push",
        "--group",
        group,
        "--cluster",
        cluster,
        "--part",
        replica_set,
    ];
    args.extend_from_slice(flags);
    args.push(file.to_str().unwrap());
    let out = rewind_as_client(server, &args);
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn push(server: &TestServer, group: &str, cluster: &str, replica_set: &str, entries: &[Entry]) {
    push_with(server, group, cluster, replica_set, entries, &[]);
}

/// The entries a restore from a snapshot at `after` to `upto` (inclusive) replays.
pub(crate) fn between(entries: &[Entry], after: (u32, u32), upto: (u32, u32)) -> Vec<Entry> {
    entries
        .iter()
        .filter(|e| (e.secs, e.inc) > after && (e.secs, e.inc) <= upto)
        .cloned()
        .collect()
}

pub(crate) fn bson_ts(secs: u32, inc: u32) -> Value {
    json!({
        "date": chrono::DateTime::from_timestamp(i64::from(secs), 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "increment": inc
    })
}

fn iso(secs: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(secs), 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates a restore with `target` (the body's restore-target fields), downloads each
/// job's archive and extracts it with GNU tar; returns the jobs, directories and archives.
async fn restore_to(
    client: &ApiClient,
    jobs: &str,
    target: Value,
) -> Vec<(Value, tempfile::TempDir, Vec<u8>)> {
    let mut body = json!({"delivery": {"methodName": "HTTP", "maxDownloads": 3}});
    for (k, v) in target.as_object().unwrap() {
        body[k] = v.clone();
    }
    let mut out = Vec::new();
    for job in create_jobs(client, jobs, body).await {
        let job = wait_for_job(client, jobs, job_id(&job)).await;
        assert_eq!(job["statusName"], "FINISHED", "{job}");
        let archive = download_archive(&job).await;
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &archive).unwrap();
        let dir = tempfile::tempdir().unwrap();
        gnu_untar(file.path(), dir.path());
        out.push((job, dir, archive));
    }
    out
}

/// Checks a restored directory: the data files of `source`, and an `oplog.bson` holding
/// exactly `expected`, byte for byte and as pymongo reads it.
pub(crate) fn assert_restored_with_oplog(source: &Path, restored: &Path, expected: &[Entry]) {
    let oplog = restored.join("oplog.bson");
    let bytes = std::fs::read(&oplog).expect("the archive holds oplog.bson");
    let want: Vec<u8> = expected.iter().flat_map(|e| e.bytes.clone()).collect();
    assert!(
        bytes == want,
        "oplog.bson: {} bytes, expected {} bytes of {} entries",
        bytes.len(),
        want.len(),
        expected.len()
    );
    let decoded = decode_oplog_with_pymongo(&oplog);
    let wanted: Vec<(u32, u32, String, String, String)> = expected
        .iter()
        .map(|e| {
            (
                e.secs,
                e.inc,
                "i".to_owned(),
                "test.notes".to_owned(),
                e.note.clone(),
            )
        })
        .collect();
    assert!(decoded == wanted, "pymongo reads other entries");
    std::fs::remove_file(&oplog).unwrap();
    assert_restored_tree(source, restored);
}

/// A replica set `rs0` with a snapshot taken at `(base + 100, 2)` and an hour of oplog
/// around it, three 1 KiB entries a second (about 11 MB: several slices).
pub(crate) struct PitReplicaSet {
    pub(crate) server: TestServer,
    pub(crate) client: ApiClient,
    pub(crate) group: String,
    pub(crate) cluster: String,
    pub(crate) jobs: String,
    pub(crate) source: tempfile::TempDir,
    pub(crate) snapshot: String,
    pub(crate) base: u32,
    pub(crate) oplog: Vec<Entry>,
}

impl PitReplicaSet {
    pub(crate) async fn start() -> PitReplicaSet {
        let (server, client, group, cluster) = registered_replica_set(&[]).await;
        let now = now_secs();
        let base = now - 3700;
        let source = tempfile::tempdir().unwrap();
        generate(source.path(), 256 * 1024, 11);
        let taken = format!("{}:2", base + 100);
        let summary = import_dir_taken_at(&server, &group, &cluster, source.path(), &taken);
        let snapshot = summary["snapshotId"].as_str().unwrap().to_owned();
        let oplog = entries(base..now - 100, 3, 1000);
        push(&server, &group, &cluster, "rs0", &oplog);
        let jobs = restore_jobs_path(&group, &cluster);
        PitReplicaSet {
            server,
            client,
            group,
            cluster,
            jobs,
            source,
            snapshot,
            base,
            oplog,
        }
    }
}

#[tokio::test]
async fn point_in_time_and_oplog_restores_of_a_replica_set_replay_exactly_the_entries_up_to_the_target(
) {
    let rs = PitReplicaSet::start().await;
    let after = (rs.base + 100, 2);

    // A point in time late in the hour: the cut spans a whole stored slice.
    let target = rs.base + 3400;
    let millis = i64::from(target) * 1000 + 250;
    let restored = restore_to(
        &rs.client,
        &rs.jobs,
        json!({"pointInTimeUTCMillis": millis}),
    )
    .await;
    assert_eq!(restored.len(), 1);
    let (job, dir, archive) = &restored[0];
    let expected = between(&rs.oplog, after, (target, u32::MAX));
    assert_eq!(expected.last().map(|e| (e.secs, e.inc)), Some((target, 3)));
    assert_eq!(job["pointInTime"], true);
    assert_eq!(job["snapshotId"], rs.snapshot.as_str());
    assert_eq!(
        job["timestamp"],
        bson_ts(target, 3),
        "the last entry replayed"
    );
    assert_eq!(job["delivery"]["statusName"], "READY");
    let info = std::fs::read_to_string(dir.path().join("restoreInfo.txt")).unwrap();
    assert!(
        info.contains(&format!(
            "Restore timestamp: {} (Timestamp({target}, 3))",
            iso(target)
        )),
        "{info}"
    );
    assert_restored_with_oplog(rs.source.path(), dir.path(), &expected);
    assert!(
        download_archive(job).await == *archive,
        "the same job yields the same bytes"
    );

    // The CLI takes the moment as RFC 3339 with milliseconds.
    let moment = chrono::DateTime::from_timestamp_millis(millis)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = rewind_as_client(
        &rs.server,
        &[
            "restore",
            "start",
            "--group",
            &rs.group,
            "--cluster",
            &rs.cluster,
            "--point-in-time",
            &moment,
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        page["results"][0]["timestamp"],
        bson_ts(target, 3),
        "{page}"
    );
    assert_eq!(page["results"][0]["pointInTime"], true);

    // An oplog timestamp that is an entry: up to and including it.
    let at = rs.base + 1500;
    let restored = restore_to(
        &rs.client,
        &rs.jobs,
        json!({"oplogTs": at.to_string(), "oplogInc": 2}),
    )
    .await;
    let (job, dir, _) = &restored[0];
    assert_eq!(job["timestamp"], bson_ts(at, 2));
    assert_restored_with_oplog(
        rs.source.path(),
        dir.path(),
        &between(&rs.oplog, after, (at, 2)),
    );

    // One that is not: up to the newest entry before it.
    let restored = restore_to(&rs.client, &rs.jobs, json!({"oplogTs": at, "oplogInc": 7})).await;
    let (job, dir, _) = &restored[0];
    assert_eq!(job["timestamp"], bson_ts(at, 3));
    assert_restored_with_oplog(
        rs.source.path(),
        dir.path(),
        &between(&rs.oplog, after, (at, 7)),
    );

    // The snapshot's own moment: an empty oplog.bson.
    let restored = restore_to(
        &rs.client,
        &rs.jobs,
        json!({"oplogTs": after.0, "oplogInc": after.1}),
    )
    .await;
    let (job, dir, _) = &restored[0];
    assert_eq!(job["timestamp"], bson_ts(after.0, after.1));
    assert_restored_with_oplog(rs.source.path(), dir.path(), &[]);
    drop(rs.server);
}

#[tokio::test]
async fn targets_outside_the_window_in_the_future_or_behind_a_gap_are_refused_with_what_is_restorable(
) {
    let (server, client, group, cluster) = registered_replica_set(&[]).await;
    let now = now_secs();
    let base = now - 2000;
    let source = tempfile::tempdir().unwrap();
    generate(source.path(), 64 * 1024, 5);
    let taken = format!("{}:1", base + 10);
    import_dir_taken_at(&server, &group, &cluster, source.path(), &taken);
    let jobs = restore_jobs_path(&group, &cluster);
    let pit = |secs: u32| json!({"delivery": {"methodName": "HTTP"}, "pointInTimeUTCMillis": i64::from(secs) * 1000});

    // No oplog yet: nothing is restorable to a moment.
    let refused = post(&client, &jobs, pit(base + 50)).await.assert_error(
        409,
        "NO_CHECKPOINT_FOR_PIT_RESTORE",
        &["pointInTimeUTCMillis"],
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing is restorable"),
        "{refused}"
    );

    // Oplog from base to base + 100, then a gap, then base + 200 to base + 300.
    let before_gap = entries(base..base + 101, 3, 40);
    push(&server, &group, &cluster, "rs0", &before_gap);
    push(
        &server,
        &group,
        &cluster,
        "rs0",
        &entries(base + 200..base + 301, 3, 40),
    );
    let restorable = format!(
        "Restorable: from {} ({}:1) to {} ({}:3).",
        iso(base + 10),
        base + 10,
        iso(base + 100),
        base + 100
    );

    for (body, status, code, field) in [
        (
            pit(base + 250),
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            "pointInTimeUTCMillis",
        ),
        (
            pit(base + 150),
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            "pointInTimeUTCMillis",
        ),
        (
            pit(base + 5),
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            "pointInTimeUTCMillis",
        ),
        (
            pit(now + 120),
            400,
            "INVALID_ATTRIBUTE",
            "pointInTimeUTCMillis",
        ),
        (
            pit(now - 25 * 3600),
            400,
            "INVALID_ATTRIBUTE",
            "pointInTimeUTCMillis",
        ),
        (
            json!({"delivery": {"methodName": "HTTP"}, "oplogTs": base + 250, "oplogInc": 1}),
            409,
            "NO_CHECKPOINT_FOR_PIT_RESTORE",
            "oplogTs",
        ),
    ] {
        let refused = post(&client, &jobs, body.clone())
            .await
            .assert_error(status, code, &[field]);
        let detail = refused["detail"].as_str().unwrap();
        assert!(detail.contains(&restorable), "{body}: {detail}");
    }
    let listed = get(&client, &jobs).await.json();
    assert_eq!(listed["totalCount"], 0, "a refusal creates no job");

    // Inside the restorable stretch it works. A point in time takes every entry of its
    // second, so its second must end before the stored range does.
    let restored = restore_to(
        &client,
        &jobs,
        json!({"pointInTimeUTCMillis": i64::from(base + 99) * 1000 + 999}),
    )
    .await;
    assert_restored_with_oplog(
        source.path(),
        restored[0].1.path(),
        &between(&before_gap, (base + 10, 1), (base + 99, u32::MAX)),
    );
    post(&client, &jobs, pit(base + 100)).await.assert_error(
        409,
        "NO_CHECKPOINT_FOR_PIT_RESTORE",
        &["pointInTimeUTCMillis"],
    );
    let restored = restore_to(
        &client,
        &jobs,
        json!({"oplogTs": base + 100, "oplogInc": 3}),
    )
    .await;
    assert_restored_with_oplog(
        source.path(),
        restored[0].1.path(),
        &between(&before_gap, (base + 10, 1), (base + 100, 3)),
    );
}

#[tokio::test]
async fn a_sharded_point_in_time_restore_cuts_every_shard_and_the_config_server_at_one_target() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let base = now_secs() - 1000;
    let taken = format!("{}:1", base + 10);
    let sharded = ImportedShardedCluster::import_with(
        &server,
        64 * 1024,
        30,
        json!({}),
        &["--taken-at", &taken],
    )
    .await;
    let (cluster, dirs) = (&sharded.cluster, &sharded.dirs);
    let parts = ["ledger-shard-0", "ledger-shard-1", "ledger-config-0"];
    let jobs = restore_jobs_path(&group, cluster);

    // Each replica set writes at its own pace; the config server's oplog ends too early
    // at first.
    let oplogs: Vec<Vec<Entry>> = (0..3u32)
        .map(|i| {
            entries(base..base + 200, 1 + i, 60)
                .into_iter()
                .filter(|e| (e.secs - base).is_multiple_of(i + 2))
                .collect()
        })
        .collect();
    let target = base + 150;
    push(&server, &group, cluster, parts[0], &oplogs[0]);
    push(&server, &group, cluster, parts[1], &oplogs[1]);
    let short: Vec<Entry> = between(&oplogs[2], (0, 0), (base + 120, u32::MAX));
    push(&server, &group, cluster, parts[2], &short);
    let body = json!({"delivery": {"methodName": "HTTP"}, "pointInTimeUTCMillis": i64::from(target) * 1000});
    post(&client, &jobs, body.clone()).await.assert_error(
        409,
        "NO_CHECKPOINT_FOR_PIT_RESTORE",
        &["pointInTimeUTCMillis"],
    );

    let config_rest = between(&oplogs[2], (base + 120, u32::MAX), (u32::MAX, 0));
    let last = &short[short.len() - 1];
    let after = format!("{}:{}", last.secs, last.inc);
    push_with(
        &server,
        &group,
        cluster,
        parts[2],
        &config_rest,
        &["--after", &after],
    );

    let restored = restore_to(
        &client,
        &jobs,
        json!({"pointInTimeUTCMillis": i64::from(target) * 1000}),
    )
    .await;
    assert_eq!(restored.len(), 3);
    let batch = restored[0].0["batchId"].clone();
    assert!(batch.is_string());
    for (i, name) in parts.iter().enumerate() {
        let (job, dir, _) = restored
            .iter()
            .find(|(j, _, _)| j["delivery"]["url"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("a job for {name}"));
        assert_eq!(job["batchId"], batch);
        assert_eq!(job["pointInTime"], true);
        let expected = between(&oplogs[i], (base + 10, 1), (target, u32::MAX));
        let last = expected.last().unwrap();
        assert_eq!(job["timestamp"], bson_ts(last.secs, last.inc), "{name}");
        assert_restored_with_oplog(dirs[i].path(), dir.path(), &expected);
    }
    assert_eq!(
        get(
            &client,
            &format!("{jobs}?batchId={}", batch.as_str().unwrap())
        )
        .await
        .json()["totalCount"],
        3
    );
}
