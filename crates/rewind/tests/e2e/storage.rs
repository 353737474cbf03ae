//! The server against its storage: a full disk is a clear, cleaned-up refusal, and objects
//! are durable before the metadata that references them commits.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use rewind_devtools::oplog::oplog_entry;
use rewind_formats::frames::encode_frame;
use rewind_formats::ChunkId;
use serde_json::json;

use crate::fixtures::*;
use crate::oplog::{now_secs, oplog_path};
use crate::support::*;

/// A `tmpfs` mounted on a fresh directory for as long as the guard lives.
struct SmallFileSystem {
    mount_point: tempfile::TempDir,
}

impl SmallFileSystem {
    /// Mounts a `tmpfs` of `size` (`mount`'s notation); `Err` says why it cannot be.
    fn mount(size: &str) -> Result<SmallFileSystem, String> {
        let mount_point = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallFileSystem { mount_point })
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// The bytes still free for writing.
    fn free_bytes(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.path())
            .output()
            .expect("stat runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().expect("stat prints numbers"))
            .collect();
        numbers[0] * numbers[1]
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Something still holds a file open: detach it now, it goes when released.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

const MIB: u64 = 1 << 20;

/// `len` bytes that no compressor shrinks (xorshift from `seed`).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An upload batch of `chunks` incompressible chunks of 64 KiB each.
fn incompressible_batch(chunks: usize, seed: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..chunks {
        let chunk = noise(64 * 1024, seed + i as u64);
        encode_frame(&mut body, &ChunkId::of(&chunk), &chunk).expect("a valid frame");
    }
    body
}

/// About `bytes` of oplog whose entries deflate hardly shrinks.
fn incompressible_oplog(bytes: usize) -> Vec<u8> {
    let secs = now_secs() - 60;
    let mut body = Vec::new();
    let mut inc = 0;
    while body.len() < bytes {
        inc += 1;
        let note = hex::encode(noise(2048, u64::from(inc)));
        body.extend(oplog_entry(secs, inc, &note));
    }
    body
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Staging files (`name#digits`) anywhere under `dir`.
fn staging_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = files_under(dir);
    found.retain(|path| path.to_string_lossy().contains('#'));
    found
}

#[tokio::test]
async fn a_full_disk_refuses_imports_and_pushes_with_insufficient_storage_and_restores_go_on() {
    let fs = match SmallFileSystem::mount("64m") {
        Ok(fs) => fs,
        Err(reason) => {
            println!("skipped: cannot mount a tmpfs ({reason})");
            return;
        }
    };
    let data_dir = tempfile::tempdir_in(fs.path()).expect("a data directory on the tmpfs");
    let server = TestServer::start_in(data_dir, &[], "127.0.0.1:0", &[], "warn");
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    let kept = tempfile::tempdir().unwrap();
    generate(kept.path(), 2 * MIB, 41);
    let kept_snapshot = import_dir(&server, &group, &cluster, kept.path())["snapshotId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Fill the disk but for a few MiB, then import more than that.
    let free_for_requests = 6 * MIB;
    let filler = fs.path().join("filler");
    let filler_bytes = fs.free_bytes().saturating_sub(free_for_requests);
    std::fs::write(&filler, vec![0x5a; filler_bytes as usize]).expect("the filler is written");
    let big = tempfile::tempdir().unwrap();
    generate(big.path(), 24 * MIB, 42);
    let refused = rewind_as_client(
        &server,
        &[
            "snapshot",
            "import",
            "--group",
            &group,
            "--cluster",
            &cluster,
            "--from",
            big.path().to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the import filled the disk");
    assert!(
        stderr.contains("INSUFFICIENT_STORAGE") && stderr.contains("ran out of storage space"),
        "the client is told why: {stderr}"
    );
    assert_eq!(staging_files(server.data_dir()), Vec::<PathBuf>::new());

    // One request at a time: what each wrote is given back before it answers.
    let free_before = fs.free_bytes();
    let batch = incompressible_batch(128, 7);
    let path = format!("{REWIND_API}/groups/{group}/chunks");
    let reply = send_raw(
        &client,
        Method::POST,
        &path,
        &batch,
        "application/octet-stream",
    )
    .await;
    let body = reply.assert_error(507, "INSUFFICIENT_STORAGE", &[]);
    assert_eq!(
        body["detail"],
        "The server ran out of storage space while storing this request; nothing of this \
         request was kept. Retry once space has been freed on the server."
    );
    let free_after_upload = fs.free_bytes();
    assert!(
        free_after_upload + MIB >= free_before,
        "the upload's space was given back: {free_before} bytes free before, {free_after_upload} after"
    );
    let oplog = incompressible_oplog(16 * MIB as usize);
    let push = format!("{}/rs0", oplog_path(&group, &cluster));
    let reply = send_raw(
        &client,
        Method::POST,
        &push,
        &oplog,
        "application/octet-stream",
    )
    .await;
    reply.assert_error(507, "INSUFFICIENT_STORAGE", &[]);
    let free_after_push = fs.free_bytes();
    assert!(
        free_after_push + MIB >= free_before,
        "the push's space was given back: {free_before} bytes free before, {free_after_push} after"
    );
    assert_eq!(staging_files(server.data_dir()), Vec::<PathBuf>::new());
    assert_eq!(
        files_under(&server.data_dir().join("blocks/oplog")),
        Vec::<PathBuf>::new(),
        "the refused push left no slice"
    );
    assert!(server.server_log().contains("No space left on device"));

    // The earlier snapshot is still restored, byte for byte, on the full disk.
    let jobs = create_jobs(
        &client,
        &restore_jobs_path(&group, &cluster),
        json!({ "delivery": { "methodName": "HTTP" }, "snapshotId": kept_snapshot }),
    )
    .await;
    let job = wait_for_job(
        &client,
        &restore_jobs_path(&group, &cluster),
        job_id(&jobs[0]),
    )
    .await;
    let archive = download_archive(&job).await;
    let restored = tempfile::tempdir().unwrap();
    untar(&archive, restored.path());
    assert_restored_tree(kept.path(), restored.path());

    // With space freed, the same import goes through.
    std::fs::remove_file(&filler).expect("the filler is removed");
    import_dir(&server, &group, &cluster, big.path());
}
