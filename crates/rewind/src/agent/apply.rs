//! Applying one archive to one member, and putting the previous data back.
//!
//! Files beside a member's `dbpath` (`/data/db` → `/data/db.rewind-…`):
//! `journal.json` (the step reached, written before each irreversible step),
//! `download.tar.gz` (the archive, kept across restarts for `Range` resume), `staging/`
//! (the extracted archive), `previous/` (the data directory before the restore, kept until
//! the job finishes), `info/` (`restoreInfo.txt` and `oplog.bson` of the restore whose data
//! the directory holds), `staged-info/` (those of the archive in `staging/`) and
//! `previous-info/` (`info/` before the swap, kept until the job finishes). `info/` moves
//! with the data: a rolled-back restore puts the previous `info/` back (or none, when there
//! was none), so it never names a snapshot that is not in place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::RANGE;
use reqwest::StatusCode;
use rewind_api_types::agent::{AgentTask, MemberState};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;

use super::config::MemberConfig;
use super::unpack::{remove_any, unpack, StreamUnpack, Target};
use super::AgentLink;

/// Transfers attempted (each resuming where the last broke off) before giving up.
const TRANSFER_ATTEMPTS: u32 = 10;
/// Whole downloads attempted when the SHA-1 does not match.
const HASH_ATTEMPTS: u32 = 3;
/// How often progress is reported while downloading.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Read buffer of the archive file during extraction.
const EXTRACT_READ_BYTES: usize = 1 << 20;
/// Largest piece of a partial download read back into the sink at once.
const CATCH_UP_PIECE_BYTES: usize = 1 << 20;

/// The step a member has reached in one job; each is recorded before the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Step {
    /// The member was stopped.
    Stopped,
    /// The archive is downloaded and verified (and unpacked into `staging/`, which a
    /// resumed restore does again: it cannot tell how far that got).
    Downloaded,
    /// Renames under way: `dbpath` → `previous`, `staging` → `dbpath`.
    Swapping,
    /// The restored data is in `dbpath`.
    Swapped,
    /// The member runs on the restored data.
    Started,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    job_id: String,
    step: Step,
    /// Whether there was a data directory to keep before the swap.
    had_data: bool,
}

/// The paths of one member's restore files.
struct Paths {
    dbpath: PathBuf,
    journal: PathBuf,
    download: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
    info: PathBuf,
    staged_info: PathBuf,
    previous_info: PathBuf,
}

impl Paths {
    fn of(member: &MemberConfig) -> Paths {
        let beside = |suffix: &str| {
            let mut name = member.dbpath.file_name().unwrap_or_default().to_owned();
            name.push(format!(".rewind-{suffix}"));
            member.dbpath.with_file_name(name)
        };
        Paths {
            dbpath: member.dbpath.clone(),
            journal: beside("journal.json"),
            download: beside("download.tar.gz"),
            staging: beside("staging"),
            previous: beside("previous"),
            info: beside("info"),
            staged_info: beside("staged-info"),
            previous_info: beside("previous-info"),
        }
    }
}

fn read_journal(paths: &Paths) -> Option<Journal> {
    let text = std::fs::read(&paths.journal).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes the journal durably: temp file, fsync, rename, fsync of the directory.
fn write_journal(paths: &Paths, journal: &Journal) -> Result<()> {
    let tmp = paths.journal.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut file, &serde_json::to_vec(journal)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &paths.journal)?;
    sync_parent(&paths.journal);
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Runs a member's stop or start command with `sh -c`.
async fn run_command(what: &str, command: &str) -> Result<()> {
    let command = command.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await?
    .with_context(|| format!("cannot run the {what} command"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        bail!("the {what} command failed ({}): {last}", output.status);
    }
    Ok(())
}

/// Why applying stopped.
enum Stop {
    /// The job ended (cancelled or broken elsewhere): roll back, report `ROLLED_BACK`.
    JobEnded(String),
    /// A step failed: roll back, report `FAILED`.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(err: anyhow::Error) -> Self {
        Stop::Failed(err)
    }
}

/// Applies `task` to `member`, resuming from the journal; reports the outcome.
pub async fn apply(link: &AgentLink, member: &MemberConfig, task: &AgentTask) {
    let paths = Paths::of(member);
    let outcome = apply_steps(link, member, task, &paths).await;
    match outcome {
        Ok(bytes) => {
            tracing::info!(job.id = %task.job_id, member = %member.name, size_bytes = bytes, "restore applied");
            link.report_until_taken(task, MemberState::Applied, bytes, None)
                .await;
        }
        Err(Stop::JobEnded(status)) => {
            tracing::warn!(job.id = %task.job_id, member = %member.name, status, "job ended while applying; rolling back");
            let note = roll_back(member, &paths)
                .await
                .err()
                .map(|e| format!("{e:#}"));
            link.report_until_taken(task, MemberState::RolledBack, 0, note)
                .await;
        }
        Err(Stop::Failed(err)) => {
            let mut reason = format!("{err:#}");
            tracing::error!(job.id = %task.job_id, member = %member.name, reason, "restore failed; rolling back");
            if let Err(again) = roll_back(member, &paths).await {
                reason.push_str(&format!("; after rolling back: {again:#}"));
            } else {
                reason.push_str("; the member is back on its previous data");
            }
            link.report_until_taken(task, MemberState::Failed, 0, Some(reason))
                .await;
        }
    }
}

async fn apply_steps(
    link: &AgentLink,
    member: &MemberConfig,
    task: &AgentTask,
    paths: &Paths,
) -> Result<u64, Stop> {
    let mut journal = match read_journal(paths) {
        Some(j) if j.job_id == task.job_id => j,
        Some(other) => {
            // Left from another job the server no longer speaks of: undo it first.
            tracing::warn!(job.id = %other.job_id, "rolling back a restore left by an earlier run");
            roll_back(member, paths).await?;
            fresh_start(member, task, paths).await?
        }
        None => fresh_start(member, task, paths).await?,
    };
    check_live(link, task, 0).await?;
    if journal.step < Step::Swapping {
        let started = Instant::now();
        if journal.step < Step::Downloaded {
            fetch(link, task, paths).await?;
            journal.step = Step::Downloaded;
            write_journal(paths, &journal)?;
        } else if file_matches(&paths.download, &task.sha1).await? {
            // Resumed after the download was verified: what `staging/` holds is unknown.
            extract(paths).await?;
        } else {
            // The download is not synced to disk (it is checked instead): after a machine
            // crash it may not hold what was verified, so a resumed restore checks it again.
            std::fs::remove_file(&paths.download).context("cannot discard a damaged download")?;
            fetch(link, task, paths).await?;
        }
        tracing::debug!(job.id = %task.job_id, elapsed_ms = started.elapsed().as_millis() as u64, "archive downloaded, verified and unpacked");
        check_live(link, task, task.size_bytes).await?;
        journal.step = Step::Swapping;
        write_journal(paths, &journal)?;
    }
    if journal.step < Step::Swapped {
        swap(paths, journal.had_data)?;
        journal.step = Step::Swapped;
        write_journal(paths, &journal)?;
    }
    if journal.step < Step::Started {
        run_command("start", &member.start_command).await?;
        journal.step = Step::Started;
        write_journal(paths, &journal)?;
    }
    let _ = std::fs::remove_file(&paths.download);
    Ok(task.size_bytes)
}

/// Stops the member and opens the journal of a new job.
async fn fresh_start(member: &MemberConfig, task: &AgentTask, paths: &Paths) -> Result<Journal> {
    if paths.previous.exists() {
        // Never ours to delete without a journal: it may be the only copy of older data.
        bail!(
            "{} exists without a restore in progress; move it away before restoring",
            paths.previous.display()
        );
    }
    // Info directories hold no data: one left without a journal describes nothing.
    let leftovers = [
        &paths.staging,
        &paths.download,
        &paths.staged_info,
        &paths.previous_info,
    ];
    for leftover in leftovers {
        remove_any(leftover).with_context(|| format!("cannot clear {}", leftover.display()))?;
    }
    run_command("stop", &member.stop_command).await?;
    let journal = Journal {
        job_id: task.job_id.clone(),
        step: Step::Stopped,
        had_data: paths.dbpath.exists(),
    };
    write_journal(paths, &journal)?;
    Ok(journal)
}

/// Reports progress; `JobEnded` when the job is no longer in progress.
async fn check_live(link: &AgentLink, task: &AgentTask, bytes: u64) -> Result<(), Stop> {
    match link.report(task, MemberState::Applying, bytes, None).await {
        Ok(status) if status == "IN_PROGRESS" => Ok(()),
        Ok(status) => Err(Stop::JobEnded(status)),
        // The server may be restarting: carry on, the outcome report retries.
        Err(err) => {
            tracing::warn!(job.id = %task.job_id, error = %err, "progress report failed");
            Ok(())
        }
    }
}

/// Downloads the archive to `download.tar.gz` (resuming a partial file with `Range`),
/// hashing it and unpacking it into `staging/` as it arrives, then checks its SHA-1. A
/// mismatch discards the file and the unpacked data and downloads it again. Returns once
/// the archive is verified and `staging/` holds it, flushed to disk.
async fn fetch(link: &AgentLink, task: &AgentTask, paths: &Paths) -> Result<(), Stop> {
    for hash_attempt in 1..=HASH_ATTEMPTS {
        let mut sink = Sink::start(paths);
        let transferred = transfer(link, task, paths, &mut sink).await;
        // Waited for whatever happened, so nothing writes to `staging/` once this returns.
        let (local, unpacked) = sink.finish().await;
        transferred?;
        if local.eq_ignore_ascii_case(&task.sha1) {
            // Only now does the unpacking's outcome mean anything: it read exactly the
            // archive the server vouches for.
            return unpacked.map_err(Stop::Failed);
        }
        tracing::warn!(job.id = %task.job_id, expected = %task.sha1, got = %local, attempt = hash_attempt, "archive SHA-1 mismatch; downloading again");
        std::fs::remove_file(&paths.download).context("cannot discard a corrupt download")?;
    }
    Err(Stop::Failed(anyhow!(
        "the archive's SHA-1 did not match {} in {HASH_ATTEMPTS} downloads",
        task.sha1
    )))
}

/// Whether the file at `path` has the SHA-1 `expected` (hex); `false` when it is missing.
async fn file_matches(path: &Path, expected: &str) -> Result<bool> {
    let path = path.to_owned();
    let hashed = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = Sha1::new();
        std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)?;
        Ok(Some(hex::encode(hasher.finalize())))
    })
    .await??;
    Ok(hashed.is_some_and(|h| h.eq_ignore_ascii_case(expected)))
}

/// Where the downloaded bytes go besides the file: the SHA-1 and the unpacking. Both have
/// seen exactly the file's first `bytes` bytes.
struct Sink {
    hasher: Sha1,
    bytes: u64,
    /// `None` only while one unpacking is replaced by the next.
    unpack: Option<StreamUnpack>,
    target: Target,
}

impl Sink {
    fn start(paths: &Paths) -> Sink {
        let target = Target {
            staging: paths.staging.clone(),
            info: paths.staged_info.clone(),
        };
        Sink {
            hasher: Sha1::new(),
            bytes: 0,
            unpack: Some(StreamUnpack::start(&target)),
            target,
        }
    }

    async fn push(&mut self, piece: Bytes) {
        self.hasher.update(&piece);
        self.bytes += piece.len() as u64;
        if let Some(unpack) = &mut self.unpack {
            unpack.feed(piece).await;
        }
    }

    /// Starts over from byte 0 (the file is rewritten from its start).
    async fn restart(&mut self) {
        // The old thread must be done with `staging/` before the new one clears it.
        if let Some(old) = self.unpack.take() {
            let _ = old.finish().await;
        }
        self.unpack = Some(StreamUnpack::start(&self.target));
        self.hasher = Sha1::new();
        self.bytes = 0;
    }

    /// Brings the sink to the file's first `have` bytes: a file left by an earlier run, or
    /// a write that failed half-way, holds bytes the sink has not seen.
    async fn catch_up(&mut self, download: &Path, have: u64) -> Result<()> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if self.bytes > have {
            self.restart().await;
        }
        if self.bytes == have {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(download).await?;
        file.seek(std::io::SeekFrom::Start(self.bytes)).await?;
        while self.bytes < have {
            let want = (have - self.bytes).min(CATCH_UP_PIECE_BYTES as u64) as usize;
            let mut piece = vec![0u8; want];
            file.read_exact(&mut piece).await?;
            self.push(Bytes::from(piece)).await;
        }
        Ok(())
    }

    /// The SHA-1 (hex) of what went through, and the unpacking's outcome.
    async fn finish(self) -> (String, Result<()>) {
        let unpacked = match self.unpack {
            Some(unpack) => unpack.finish().await,
            None => Err(anyhow!("the archive was not unpacked")),
        };
        (hex::encode(self.hasher.finalize()), unpacked)
    }
}

/// Brings `download.tar.gz` to the archive's full size, resuming after broken transfers,
/// with every byte of it through `sink`.
async fn transfer(
    link: &AgentLink,
    task: &AgentTask,
    paths: &Paths,
    sink: &mut Sink,
) -> Result<(), Stop> {
    let mut attempts = 0;
    loop {
        let have = std::fs::metadata(&paths.download)
            .map(|m| m.len())
            .unwrap_or(0);
        if have > task.size_bytes {
            std::fs::remove_file(&paths.download)
                .context("cannot discard an oversized download")?;
            continue;
        }
        sink.catch_up(&paths.download, have)
            .await
            .context("cannot read the partial download")?;
        if have == task.size_bytes {
            return Ok(());
        }
        attempts += 1;
        match transfer_once(link, task, paths, have, sink).await {
            Ok(()) => continue,
            Err(Stop::Failed(err)) if attempts < TRANSFER_ATTEMPTS => {
                tracing::warn!(job.id = %task.job_id, at_byte = have, error = %format!("{err:#}"), "download interrupted; resuming");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
            }
            Err(Stop::Failed(err)) => {
                return Err(Stop::Failed(err.context("the download kept failing")))
            }
            Err(ended) => return Err(ended),
        }
    }
}

/// One request for the rest of the archive from byte `have`, appended to the file and
/// passed to `sink` as written. Not synced: the SHA-1 check, not the disk, vouches for the
/// bytes.
async fn transfer_once(
    link: &AgentLink,
    task: &AgentTask,
    paths: &Paths,
    have: u64,
    sink: &mut Sink,
) -> Result<(), Stop> {
    let mut request = link.http.get(&task.url);
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let response = request
        .send()
        .await
        .context("cannot reach the download URL")?;
    let append = match response.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => true,
        StatusCode::OK => false,
        status => {
            let body = response.bytes().await.unwrap_or_default();
            return Err(Stop::Failed(anyhow!(
                "the download was refused: {}",
                crate::client::describe_error(status, &body)
            )));
        }
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&paths.download)
        .await
        .context("cannot open the download file")?;
    if !append && sink.bytes > 0 {
        sink.restart().await;
    }
    let received = receive(link, task, response, &mut file, sink).await;
    // Written out even when the transfer broke, so the file's length is what was received
    // and the next attempt asks for the right range.
    let flushed = file.flush().await.context("cannot write the download");
    received?;
    flushed?;
    Ok(())
}

/// Copies a response body to the download file and the sink, reporting progress.
async fn receive(
    link: &AgentLink,
    task: &AgentTask,
    response: reqwest::Response,
    file: &mut tokio::fs::File,
    sink: &mut Sink,
) -> Result<(), Stop> {
    let mut last_report = Instant::now();
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let bytes = piece.context("the transfer broke off")?;
        file.write_all(&bytes)
            .await
            .context("cannot write the download")?;
        sink.push(bytes).await;
        if last_report.elapsed() >= PROGRESS_INTERVAL {
            check_live(link, task, sink.bytes).await?;
            last_report = Instant::now();
        }
    }
    Ok(())
}

/// Unpacks the downloaded file into a fresh `staging/` (a restore resumed after its
/// download was verified).
async fn extract(paths: &Paths) -> Result<()> {
    let archive = paths.download.clone();
    let target = Target {
        staging: paths.staging.clone(),
        info: paths.staged_info.clone(),
    };
    tokio::task::spawn_blocking(move || -> Result<()> {
        let file = std::fs::File::open(&archive)?;
        // Large reads: the default 8 KiB buffer made tens of thousands of read calls per
        // archive.
        unpack(
            std::io::BufReader::with_capacity(EXTRACT_READ_BYTES, file),
            &target,
        )
    })
    .await?
}

/// `dbpath` → `previous`, then `staging` → `dbpath`. Idempotent, so a restart in the
/// middle completes it: each rename is skipped once its result is in place.
fn swap(paths: &Paths, had_data: bool) -> Result<()> {
    if had_data && !paths.previous.exists() {
        std::fs::rename(&paths.dbpath, &paths.previous)
            .context("cannot move the data directory aside")?;
    }
    if paths.staging.exists() {
        if paths.dbpath.exists() {
            // Only possible without previous data: a directory created since the stop.
            bail!(
                "{} appeared while the member was stopped",
                paths.dbpath.display()
            );
        }
        std::fs::rename(&paths.staging, &paths.dbpath)
            .context("cannot move the restored data into place")?;
    }
    swap_info(paths)?;
    sync_parent(&paths.dbpath);
    Ok(())
}

/// `info` → `previous-info`, then `staged-info` → `info`, so the info beside the data
/// directory describes what it holds. Idempotent like [`swap`].
fn swap_info(paths: &Paths) -> Result<()> {
    if !paths.staged_info.exists() {
        return Ok(());
    }
    if paths.info.exists() && !paths.previous_info.exists() {
        std::fs::rename(&paths.info, &paths.previous_info)
            .context("cannot move the previous restore info aside")?;
    }
    std::fs::rename(&paths.staged_info, &paths.info)
        .context("cannot move the restore info into place")
}

/// Undoes [`swap_info`] from wherever it stopped: the previous info back in place, or no
/// info when there was none before.
fn unswap_info(paths: &Paths) -> Result<()> {
    if !paths.staged_info.exists() {
        // The archive's info reached `info/`.
        remove_any(&paths.info).context("cannot remove the rolled-back restore info")?;
    }
    if paths.previous_info.exists() && !paths.info.exists() {
        std::fs::rename(&paths.previous_info, &paths.info)
            .context("cannot put the previous restore info back")?;
    }
    Ok(())
}

/// Puts the previous data back (whatever step the journal reached), removes the restore's
/// files and starts the member again if it was stopped.
async fn roll_back(member: &MemberConfig, paths: &Paths) -> Result<()> {
    let Some(journal) = read_journal(paths) else {
        return Ok(());
    };
    if journal.step >= Step::Swapping {
        if journal.step == Step::Started {
            run_command("stop", &member.stop_command).await?;
        }
        // Restored data is in `dbpath` once `previous` holds the old data, or, when there
        // was none, once `staging` has been moved in.
        let previous_kept = paths.previous.exists();
        let restored_in_place = if journal.had_data {
            previous_kept
        } else {
            !paths.staging.exists()
        };
        if restored_in_place {
            remove_any(&paths.dbpath).context("cannot remove the restored data")?;
        }
        if previous_kept {
            std::fs::rename(&paths.previous, &paths.dbpath)
                .context("cannot put the previous data directory back")?;
        }
        unswap_info(paths)?;
        sync_parent(&paths.dbpath);
    }
    remove_any(&paths.staging)?;
    remove_any(&paths.staged_info)?;
    remove_any(&paths.download)?;
    remove_any(&paths.journal)?;
    sync_parent(&paths.journal);
    run_command("start", &member.start_command).await
}

/// The job finished: the previous data directory is no longer needed.
pub async fn commit(link: &AgentLink, member: &MemberConfig, task: &AgentTask) {
    let paths = Paths::of(member);
    let journal = read_journal(&paths);
    if journal.as_ref().is_some_and(|j| j.job_id != task.job_id) {
        return;
    }
    let removed = remove_any(&paths.previous)
        .and_then(|()| remove_any(&paths.previous_info))
        .and_then(|()| remove_any(&paths.download))
        .and_then(|()| remove_any(&paths.journal));
    match removed {
        Ok(()) => {
            link.report_until_taken(task, MemberState::Committed, task.size_bytes, None)
                .await
        }
        Err(err) => {
            tracing::error!(job.id = %task.job_id, member = %member.name, error = %err, "cannot remove the previous data directory")
        }
    }
}

/// The job ended without finishing: put the previous data back.
pub async fn rollback(link: &AgentLink, member: &MemberConfig, task: &AgentTask) {
    let paths = Paths::of(member);
    let note = match read_journal(&paths) {
        Some(j) if j.job_id == task.job_id => roll_back(member, &paths).await.err(),
        _ => None,
    };
    if let Some(err) = &note {
        tracing::error!(job.id = %task.job_id, member = %member.name, error = %format!("{err:#}"), "rollback incomplete");
    }
    link.report_until_taken(
        task,
        MemberState::RolledBack,
        0,
        note.map(|e| format!("{e:#}")),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, content: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("collection-0.wt"), content).unwrap();
    }

    fn content(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("collection-0.wt")).unwrap()
    }

    /// Picks one of a member's paths.
    type PathOf = fn(&Paths) -> &PathBuf;

    /// A member under `root` whose journal says `step`, with the given directories filled.
    fn member_at(root: &Path, step: Step, dirs: [(PathOf, &str); 2]) -> (MemberConfig, Paths) {
        let m = MemberConfig {
            name: "m:27017".into(),
            dbpath: root.join("db"),
            stop_command: "true".into(),
            start_command: "true".into(),
        };
        let paths = Paths::of(&m);
        for (dir, text) in dirs {
            put(dir(&paths), text);
        }
        let journal = Journal {
            job_id: "j".into(),
            step,
            had_data: true,
        };
        write_journal(&paths, &journal).unwrap();
        (m, paths)
    }

    /// The state after a crash between the two renames of a swap.
    fn half_swapped(root: &Path) -> (MemberConfig, Paths) {
        member_at(
            root,
            Step::Swapping,
            [(|p| &p.previous, "old"), (|p| &p.staging, "new")],
        )
    }

    #[test]
    fn a_swap_interrupted_between_its_renames_completes_when_run_again() {
        let root = tempfile::tempdir().unwrap();
        let (_, paths) = half_swapped(root.path());
        swap(&paths, true).unwrap();
        assert_eq!(content(&paths.dbpath), "new");
        assert_eq!(content(&paths.previous), "old");
        assert!(!paths.staging.exists());
        swap(&paths, true).unwrap();
        assert_eq!(
            content(&paths.dbpath),
            "new",
            "a second run changes nothing"
        );
    }

    #[tokio::test]
    async fn a_roll_back_after_a_crash_between_the_renames_restores_the_previous_data() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = half_swapped(root.path());
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.dbpath), "old");
        for gone in [&paths.previous, &paths.staging, &paths.journal] {
            assert!(!gone.exists(), "{} is removed", gone.display());
        }
    }

    #[tokio::test]
    async fn a_roll_back_before_the_first_rename_leaves_the_data_directory_alone() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = member_at(
            root.path(),
            Step::Swapping,
            [(|p| &p.dbpath, "old"), (|p| &p.staging, "new")],
        );
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.dbpath), "old");
        assert!(!paths.staging.exists());
    }

    #[tokio::test]
    async fn a_roll_back_after_the_swap_puts_the_previous_data_back() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = member_at(
            root.path(),
            Step::Started,
            [(|p| &p.dbpath, "new"), (|p| &p.previous, "old")],
        );
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.dbpath), "old");
        assert!(!paths.previous.exists());
    }

    #[tokio::test]
    async fn the_restore_info_moves_with_the_data_and_back_on_a_roll_back() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = member_at(
            root.path(),
            Step::Swapping,
            [(|p| &p.dbpath, "old"), (|p| &p.staging, "new")],
        );
        put(&paths.info, "old info");
        put(&paths.staged_info, "new info");
        swap(&paths, true).unwrap();
        assert_eq!(
            content(&paths.info),
            "new info",
            "info describes the data in place"
        );
        assert_eq!(content(&paths.previous_info), "old info");
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.dbpath), "old");
        assert_eq!(
            content(&paths.info),
            "old info",
            "the previous info is back"
        );
        assert!(!paths.previous_info.exists() && !paths.staged_info.exists());
    }

    #[tokio::test]
    async fn a_rolled_back_first_restore_leaves_no_info_behind() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = member_at(
            root.path(),
            Step::Started,
            [(|p| &p.dbpath, "new"), (|p| &p.previous, "old")],
        );
        put(&paths.info, "new info");
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.dbpath), "old");
        assert!(
            !paths.info.exists(),
            "no info names the rolled-back snapshot"
        );
    }

    #[tokio::test]
    async fn a_roll_back_between_the_info_renames_puts_the_previous_info_back() {
        let root = tempfile::tempdir().unwrap();
        let (m, paths) = member_at(
            root.path(),
            Step::Swapping,
            [(|p| &p.dbpath, "new"), (|p| &p.previous, "old")],
        );
        put(&paths.previous_info, "old info");
        put(&paths.staged_info, "new info");
        roll_back(&m, &paths).await.unwrap();
        assert_eq!(content(&paths.info), "old info");
        assert!(!paths.staged_info.exists());
    }

    /// A tar.gz of `files` (name, content), gzip members split as the server's are.
    fn archive_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, &data[..]).unwrap();
        }
        let raw = tar.into_inner().unwrap();
        let mut out = Vec::new();
        for part in raw.chunks(64 * 1024) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, part).unwrap();
            out.extend(gz.finish().unwrap());
        }
        out
    }

    /// The paths of a member whose dbpath is `root/db`.
    fn member_paths(root: &Path) -> Paths {
        Paths::of(&MemberConfig {
            name: "m:27017".into(),
            dbpath: root.join("db"),
            stop_command: "true".into(),
            start_command: "true".into(),
        })
    }

    #[tokio::test]
    async fn a_download_rewritten_from_its_start_is_unpacked_and_hashed_from_scratch() {
        let root = tempfile::tempdir().unwrap();
        let paths = member_paths(root.path());
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let archive = archive_of(&[
            ("collection-0.wt", data.clone()),
            ("restoreInfo.txt", b"info".to_vec()),
        ]);
        let mut sink = Sink::start(&paths);
        // A partial file left by an earlier run is fed first...
        std::fs::write(&paths.download, &archive[..archive.len() / 2]).unwrap();
        sink.catch_up(&paths.download, (archive.len() / 2) as u64)
            .await
            .unwrap();
        // ...then the file is rewritten from its start (a server that ignored `Range`).
        std::fs::write(&paths.download, &archive[..1000]).unwrap();
        sink.catch_up(&paths.download, 1000).await.unwrap();
        std::fs::write(&paths.download, &archive).unwrap();
        sink.catch_up(&paths.download, archive.len() as u64)
            .await
            .unwrap();
        let (sha1, unpacked) = sink.finish().await;
        unpacked.unwrap();
        assert_eq!(sha1, hex::encode(Sha1::digest(&archive)));
        assert_eq!(
            std::fs::read(paths.staging.join("collection-0.wt")).unwrap(),
            data
        );
        assert!(!paths.staging.join("restoreInfo.txt").exists());
        assert_eq!(
            std::fs::read(paths.staged_info.join("restoreInfo.txt")).unwrap(),
            b"info"
        );
    }

    #[tokio::test]
    async fn archive_entries_escaping_the_staging_directory_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let paths = member_paths(root.path());
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let data = b"evil";
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        // `set_path` refuses `..`; write the raw name as a hostile archive would.
        header.as_old_mut().name[..10].copy_from_slice(b"../outside");
        header.set_cksum();
        tar.append(&header, &data[..]).unwrap();
        let raw = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        std::fs::write(&paths.download, gz.finish().unwrap()).unwrap();
        let err = extract(&paths).await.unwrap_err();
        assert!(format!("{err:#}").contains("refused"), "{err:#}");
        assert!(!root.path().join("outside").exists());
    }
}
