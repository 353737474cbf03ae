//! Archives that bring back the imported data directory as it was: empty and nested
//! directories, files of odd sizes, every file's and directory's mode and modification
//! time, through HTTP delivery (extracted with GNU tar) and through `rewind agent`; and the
//! restore info beside a member after a rolled-back restore.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::agent::*;
use crate::fixtures::*;
use crate::support::*;

/// What a tree holds, entry by entry: kind, permission bits, modification time (seconds)
/// and, for a file, its content.
type TreeMeta = BTreeMap<String, (bool, u32, u64, Vec<u8>)>;

/// Every file and directory below `root` (not `root` itself), with its metadata.
fn tree_meta(root: &Path) -> TreeMeta {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mtime = meta
                .modified()
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mode = meta.permissions().mode() & 0o7777;
            let content = if meta.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(relative, (meta.is_dir(), mode, mtime, content));
        }
    }
    out
}

fn set_mtime(path: &Path, secs: u64) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn noise(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A data directory with empty directories (one of them nested), nested directories,
/// files of sizes around tar's 512-byte blocks and the chunker's sizes, two identical
/// files (so the import deduplicates), distinct modes, and a distinct time on every entry.
fn odd_data_dir(root: &Path) {
    let files: [(&str, usize, u32); 9] = [
        ("WiredTiger", 47, 0o644),
        ("mongod.lock", 0, 0o600),
        ("collection-0-1.wt", 1_000_003, 0o600),
        ("collection-2-1.wt", 1_000_003, 0o600),
        ("journal/WiredTigerLog.0000000001", 513, 0o600),
        ("journal/WiredTigerPreplog.0000000001", 511, 0o600),
        ("db/nested/index-1-1.wt", 512, 0o640),
        ("db/nested/deeper/collection-3-1.wt", 65_537, 0o600),
        ("db/one-byte", 1, 0o400),
    ];
    for dir in [
        "journal",
        "diagnostic.data",
        "db/nested/deeper",
        "db/empty/inside",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (i, (path, len, mode)) in files.iter().enumerate() {
        let seed = if path.starts_with("collection-") {
            1
        } else {
            i as u32
        };
        let file = root.join(path);
        std::fs::write(&file, noise(*len, seed)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&file, 1_600_000_000 + i as u64 * 1000);
    }
    // Directories last, deepest first, since writing into one resets its time.
    let dirs: [(&str, u32); 7] = [
        ("db/empty/inside", 0o700),
        ("db/empty", 0o750),
        ("db/nested/deeper", 0o755),
        ("db/nested", 0o711),
        ("db", 0o750),
        ("diagnostic.data", 0o700),
        ("journal", 0o755),
    ];
    for (i, (dir, mode)) in dirs.iter().enumerate() {
        let path = root.join(dir);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&path, 1_500_000_000 + i as u64 * 777);
    }
}

/// The data directory of `odd_data_dir` imported without `--json`: the summary line shows
/// the dedup ratio as a number. Returns the snapshot id.
fn import_odd_dir(server: &TestServer, group: &str, cluster: &str, dir: &Path) -> String {
    let out = rewind_as_client(
        server,
        &[
            "snapshot",
            "import",
            "--group",
            group,
            "--cluster",
            cluster,
            "--from",
            dir.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ratio = stdout
        .split("dedup ratio ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no dedup ratio in {stdout:?}"));
    let ratio: f64 = ratio
        .parse()
        .unwrap_or_else(|_| panic!("the dedup ratio {ratio:?} is not a number"));
    assert!(
        ratio > 1.3,
        "two identical 1 MB files deduplicate: {stdout}"
    );
    stdout
        .strip_prefix("Imported snapshot ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no snapshot id in {stdout:?}"))
        .to_owned()
}

#[tokio::test]
async fn an_http_restore_extracted_by_gnu_tar_is_the_imported_directory_times_and_all() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    let source = tempfile::tempdir().unwrap();
    odd_data_dir(source.path());
    let before = tree_meta(source.path());
    let snapshot = import_odd_dir(&server, &group, &cluster, source.path());
    assert_eq!(
        tree_meta(source.path()),
        before,
        "importing changes nothing"
    );
    let jobs_path = restore_jobs_path(&group, &cluster);
    let jobs = create_jobs(
        &client,
        &jobs_path,
        json!({ "delivery": { "methodName": "HTTP" }, "snapshotId": snapshot }),
    )
    .await;
    let job = wait_for_job(&client, &jobs_path, job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    let archive = download_archive(&job).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("restore.tar.gz");
    std::fs::write(&file, &archive).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    gnu_untar(&file, &out);
    let mut restored = tree_meta(&out);
    let info = restored.remove("restoreInfo.txt").expect("restoreInfo.txt");
    assert!(String::from_utf8_lossy(&info.3).contains(&snapshot));
    assert_eq!(restored, before, "GNU tar extracts the very same tree");

    let fetched = work.path().join("fetched");
    let out = rewind_as_client(
        &server,
        &[
            "restore",
            "download",
            job_id(&jobs[0]),
            "--group",
            &group,
            "--cluster",
            &cluster,
            "--out",
            fetched.to_str().unwrap(),
            "--extract",
        ],
    );
    assert!(
        out.status.success(),
        "download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extracted = std::fs::read_dir(&fetched)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("an extracted directory");
    let mut extracted = tree_meta(&extracted);
    extracted.remove("restoreInfo.txt");
    assert_eq!(extracted, before, "rewind restore download --extract too");
}

#[tokio::test]
async fn an_automated_restore_brings_back_empty_directories_and_every_time() {
    let server = TestServer::start();
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    let source = tempfile::tempdir().unwrap();
    odd_data_dir(source.path());
    let before = tree_meta(source.path());
    let first = import_odd_dir(&server, &group, &cluster, source.path());
    // A second snapshot of the same files, whose restore is made to fail.
    let second = import_dir(&server, &group, &cluster, source.path())["snapshotId"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = Target::register(&server, "target", None).await;
    let m = Member::new(target.root.path(), "solo:27017", 970);
    let fail_flag = target.root.path().join("fail-next-start");
    let start = format!(
        "if [ -e '{}' ]; then echo 'mongod would not start' >&2; exit 3; fi; {}",
        fail_flag.display(),
        m.start_command()
    );
    let _agent = target.agent(&server.url, "target", "solo", &[(&m, start)]);
    eventually_heartbeat(&client, &target).await;
    let jobs_path = restore_jobs_path(&group, &cluster);
    let jobs = create_automated(&server, &jobs_path, &target, &first).await;
    let job = wait_until_ended(&server, &jobs_path, job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "FINISHED", "{job}");
    eventually("the member committed the restore", || {
        no_restore_leftovers(&m)
    })
    .await;
    assert_eq!(
        tree_meta(&m.dbpath),
        before,
        "the member holds the very same tree"
    );
    let info_file = m.beside("info").join("restoreInfo.txt");
    let info = std::fs::read_to_string(&info_file).unwrap();
    assert!(info.contains(&first), "{info}");

    std::fs::write(&fail_flag, b"").unwrap();
    let jobs = create_automated(&server, &jobs_path, &target, &second).await;
    let job = wait_until_ended(&server, &jobs_path, job_id(&jobs[0])).await;
    assert_eq!(job["statusName"], "BROKEN", "{job}");
    eventually("the member is back on the first restore", || {
        no_restore_leftovers(&m) && !m.beside("staged-info").exists()
    })
    .await;
    assert_eq!(tree_meta(&m.dbpath), before);
    assert_eq!(
        std::fs::read_to_string(&info_file).unwrap(),
        info,
        "the info names the restore in place, not the one rolled back"
    );
    assert!(!m.beside("previous-info").exists());
}
