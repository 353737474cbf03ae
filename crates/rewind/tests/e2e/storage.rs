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
    if needs_local_blocks("it fills the file system the blocks are on") {
        return;
    }
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

/// One system call seen by `strace -f -y -xx`: the paths of its descriptors, its string
/// arguments (decoded), and the trace lines where it began and where it returned.
#[derive(Debug, Clone)]
struct Syscall {
    name: String,
    fd_paths: Vec<Vec<u8>>,
    strings: Vec<Vec<u8>>,
    succeeded: bool,
    began: usize,
    returned: usize,
}

/// Decodes strace's `\xHH` escapes (all it prints under `-xx`).
fn unescape(text: &str) -> Vec<u8> {
    text.split("\\x")
        .filter(|part| !part.is_empty())
        .filter_map(|hex| u8::from_str_radix(hex.get(..2)?, 16).ok())
        .collect()
}

/// The quoted strings and `<…>` descriptor paths in `args`, in order.
fn scan_arguments(args: &str, call: &mut Syscall) {
    let mut rest = args;
    while let Some(at) = rest.find(['"', '<']) {
        let close = if rest.as_bytes()[at] == b'"' {
            '"'
        } else {
            '>'
        };
        let Some(len) = rest[at + 1..].find(close) else {
            break;
        };
        let inner = &rest[at + 1..at + 1 + len];
        if close == '"' {
            call.strings.push(unescape(inner));
        } else if inner.starts_with("\\x") {
            call.fd_paths.push(unescape(inner));
        }
        rest = &rest[at + 2 + len..];
    }
}

/// Parses a trace written with `-f -y -xx -o`: each line `PID call(args) = result`, or a
/// call split around other threads' lines (`<unfinished ...>` … `<... name resumed>`).
fn parse_trace(trace: &str) -> Vec<Syscall> {
    let mut unfinished: std::collections::HashMap<String, Syscall> = Default::default();
    let mut calls = Vec::new();
    for (line_no, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(mut call) = unfinished.remove(pid) else {
                continue;
            };
            let (_, tail) = resumed.split_once("resumed>").unwrap_or(("", resumed));
            scan_arguments(tail, &mut call);
            call.succeeded = !tail.contains("= -1");
            call.returned = line_no;
            calls.push(call);
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        let mut call = Syscall {
            name: name.to_owned(),
            fd_paths: Vec::new(),
            strings: Vec::new(),
            succeeded: false,
            began: line_no,
            returned: line_no,
        };
        scan_arguments(args, &mut call);
        if args.ends_with("<unfinished ...>") {
            unfinished.insert(pid.to_owned(), call);
        } else {
            call.succeeded = !args.contains("= -1");
            calls.push(call);
        }
    }
    calls.sort_by_key(|c| c.returned);
    calls
}

fn is_sync(call: &Syscall) -> bool {
    matches!(call.name.as_str(), "fsync" | "fdatasync") && call.succeeded
}

fn is_wal(path: &[u8]) -> bool {
    path.ends_with(b"-wal")
}

#[tokio::test]
async fn objects_are_synced_before_the_commit_that_references_them() {
    if needs_local_blocks("it traces the syncs of the block files") {
        return;
    }
    if needs_embedded_store("the trace finds each commit in the embedded store's write-ahead log") {
        return;
    }
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let reason = String::from_utf8_lossy(&out.stderr);
            println!("skipped: strace cannot trace here ({})", reason.trim());
            return;
        }
        Err(e) => {
            println!("skipped: strace cannot run ({e})");
            return;
        }
    }
    let data_dir = tempfile::tempdir().unwrap();
    let trace_dir = tempfile::tempdir().unwrap();
    let trace_file = trace_dir.path().join("serve.trace");
    let wrapper = [
        "strace",
        "-f",
        "-qq",
        "-y",
        "-xx",
        "-s",
        "65536",
        "-e",
        "trace=fsync,fdatasync,rename,renameat,renameat2,openat,pwrite64",
        "-o",
        trace_file.to_str().unwrap(),
        "--",
    ];
    let mut server = TestServer::start_in(data_dir, &wrapper, "127.0.0.1:0", &[], "warn");
    let client = server.client();
    let group = server.boot.group_id.clone();
    let cluster = register_replica_set(&client, &group, "rs0").await;
    let source = tempfile::tempdir().unwrap();
    generate(source.path(), 12 * MIB, 43);
    import_dir(&server, &group, &cluster, source.path());
    server.kill_wrapped_server();

    let trace = std::fs::read_to_string(&trace_file).expect("the trace is written");
    let calls = parse_trace(&trace);
    let objects: Vec<&Syscall> = calls
        .iter()
        .filter(|c| c.name.starts_with("rename") && c.succeeded && c.strings.len() == 2)
        .filter(|c| {
            let to = String::from_utf8_lossy(&c.strings[1]);
            to.contains("/blocks/packs/") || to.contains("/blocks/manifests/")
        })
        .collect();
    let packs = objects
        .iter()
        .filter(|c| String::from_utf8_lossy(&c.strings[1]).contains("/packs/"))
        .count();
    assert!(packs >= 2, "the import wrote several packs: {packs}");
    assert!(objects.len() > packs, "and a manifest");
    for rename in objects {
        let (staging, object) = (&rename.strings[0], &rename.strings[1]);
        let shown = String::from_utf8_lossy(object).into_owned();
        let dir = Path::new(std::str::from_utf8(object).unwrap())
            .parent()
            .unwrap();
        let file_synced = calls.iter().any(|c| {
            is_sync(c) && c.fd_paths.first() == Some(staging) && c.returned < rename.began
        });
        assert!(
            file_synced,
            "{shown} is synced before it is renamed into place"
        );
        let dir_synced = calls
            .iter()
            .find(|c| {
                is_sync(c)
                    && c.fd_paths.first().map(Vec::as_slice)
                        == Some(dir.as_os_str().as_encoded_bytes())
                    && c.began > rename.returned
            })
            .unwrap_or_else(|| panic!("the directory of {shown} is synced after the rename"));
        // The name the metadata records: a pack's id, a manifest's file name.
        let name = Path::new(&shown)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .as_bytes()
            .to_vec();
        // The last write naming it: a pack's row names it first when a writer claims it,
        // before the object is written (see `domain::garbage`); the commit that indexes its
        // chunks comes after.
        let referencing = calls
            .iter()
            .rev()
            .find(|c| {
                c.name == "pwrite64"
                    && c.fd_paths.first().is_some_and(|p| is_wal(p))
                    && c.strings
                        .first()
                        .is_some_and(|data| data.windows(name.len()).any(|w| w == name.as_slice()))
            })
            .unwrap_or_else(|| panic!("a commit references {shown}"));
        assert!(
            dir_synced.returned < referencing.began,
            "{shown} is durable (trace line {}) before the log records it (line {})",
            dir_synced.returned,
            referencing.began
        );
        let committed = calls.iter().any(|c| {
            is_sync(c)
                && c.fd_paths.first().is_some_and(|p| is_wal(p))
                && c.began > referencing.returned
        });
        assert!(committed, "the commit referencing {shown} is synced");
    }
}
