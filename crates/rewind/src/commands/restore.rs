//! `rewind restore start|list|get|watch|cancel|download`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_LENGTH, RANGE};
use reqwest::StatusCode;
use rewind_api_types::{Page, RestoreJob};
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;

use super::{print_json, ClientArgs};
use crate::client::{describe_error, ApiClient};
use crate::watch::{watch, Display};

/// Attempts at a download before giving up; each retry resumes with `Range`.
const DOWNLOAD_ATTEMPTS: u32 = 5;
/// How long `download` waits for the archive's hash after the last byte: the server records
/// it once it has sent that byte and committed the download, a moment after the client may
/// have read it.
const HASH_RECORDED_WITHIN: Duration = Duration::from_secs(10);
/// How often `download` asks for the hash meanwhile.
const HASH_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often `download` polls a job that is still being prepared.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Start a restore of a snapshot, or of a moment between snapshots (a sharded cluster
    /// yields one job per replica set): an HTTP download, or with --target-group and
    /// --target-cluster an automated restore applied by the target's agents.
    #[command(group(clap::ArgGroup::new("target").required(true)))]
    Start {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// The snapshot to restore.
        #[arg(long, group = "target")]
        snapshot: Option<String>,
        /// A moment to restore to, RFC 3339 (2026-11-29T04:00:00.250Z) or epoch
        /// milliseconds: a snapshot before it plus the stored oplog up to it.
        #[arg(long, group = "target")]
        point_in_time: Option<String>,
        /// The oplog entry to restore up to and including, SECONDS:INCREMENT.
        #[arg(long, group = "target")]
        oplog_ts: Option<String>,
        /// How many times the link may be downloaded [default: unlimited].
        #[arg(long)]
        max_downloads: Option<u32>,
        /// Hours the link stays valid after the job finishes [default: 48].
        #[arg(long, conflicts_with = "expires")]
        expiration_hours: Option<u32>,
        /// Absolute expiry of the link (ISO-8601).
        #[arg(long)]
        expires: Option<String>,
        /// The project of the cluster to restore into, automatically (AUTOMATED_RESTORE).
        #[arg(long, requires = "target_cluster")]
        target_group: Option<String>,
        /// The cluster to restore into, automatically, by the agents of its hosts.
        #[arg(long, requires = "target_group")]
        target_cluster: Option<String>,
        /// Watch the job(s) until they end, as `restore watch` does (with --json: only
        /// the watch lines, which name each job).
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Follow a restore job until it ends: status, each member's state, bytes, speed and
    /// time left. Exits 0 when it finishes, 1 with the reason when it breaks or is killed.
    Watch {
        #[command(flatten)]
        client: ClientArgs,
        job: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// One JSON object per line, each time the job changes.
        #[arg(long)]
        json: bool,
    },
    /// List a cluster's restore jobs, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// Only the jobs of this batch.
        #[arg(long)]
        batch: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one restore job.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        job: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a restore job in progress (with the rest of its batch): it ends KILLED, and
    /// agents put back the previous data of the members they restored.
    Cancel {
        #[command(flatten)]
        client: ClientArgs,
        job: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        json: bool,
    },
    /// List the moments a point-in-time or oplog restore of a cluster can reach now.
    Ranges(super::ranges::RangesArgs),
    /// Wait for a job, download its archive (resuming after breaks), verify its SHA-1.
    Download {
        #[command(flatten)]
        client: ClientArgs,
        job: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// Directory to write the archive into [default: current directory].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also extract the archive into OUT/<archive name without .tar.gz>.
        #[arg(long)]
        extract: bool,
    },
}

/// `--point-in-time`: RFC 3339 (to the millisecond) or epoch milliseconds.
fn parse_point_in_time(text: &str) -> Result<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .with_context(|| format!("--point-in-time {text:?} is too large"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .with_context(|| {
            format!("--point-in-time {text:?} is neither RFC 3339 nor epoch milliseconds")
        })
}

fn job_path(group: &str, cluster: &str, job: &str) -> String {
    format!("/api/public/v1.0/groups/{group}/clusters/{cluster}/restoreJobs/{job}")
}

fn print_jobs(jobs: &[RestoreJob]) {
    println!(
        "{:<26} {:<22} {:<12} {:<24} URL",
        "ID", "TIMESTAMP", "STATUS", "DELIVERY"
    );
    for j in jobs {
        println!(
            "{:<26} {:<22} {:<12} {:<24} {}",
            j.id,
            rewind_api_types::iso_seconds::format_iso(j.timestamp.date),
            j.status_name,
            j.delivery.status_name.as_deref().unwrap_or("-"),
            j.delivery.url.as_deref().unwrap_or("-")
        );
    }
}

pub async fn run(cmd: RestoreCommand) -> Result<()> {
    match cmd {
        RestoreCommand::Start {
            client,
            group,
            cluster,
            snapshot,
            point_in_time,
            oplog_ts,
            max_downloads,
            expiration_hours,
            expires,
            target_group,
            target_cluster,
            wait,
            json,
        } => {
            let mut delivery = match (target_group, target_cluster) {
                (Some(group), Some(cluster)) => serde_json::json!({
                    "methodName": "AUTOMATED_RESTORE",
                    "targetGroupId": group,
                    "targetClusterId": cluster,
                }),
                _ => serde_json::json!({ "methodName": "HTTP" }),
            };
            if let Some(n) = max_downloads {
                delivery["maxDownloads"] = n.into();
            }
            if let Some(h) = expiration_hours {
                delivery["expirationHours"] = h.into();
            }
            if let Some(t) = expires {
                delivery["expires"] = t.into();
            }
            let mut body = serde_json::json!({ "delivery": delivery });
            if let Some(id) = snapshot {
                body["snapshotId"] = id.into();
            }
            if let Some(moment) = point_in_time {
                body["pointInTimeUTCMillis"] = parse_point_in_time(&moment)?.into();
            }
            if let Some(ts) = oplog_ts {
                let ts = crate::oplog::parse_oplog_ts(&ts).context("--oplog-ts")?;
                body["oplogTs"] = ts.secs.to_string().into();
                body["oplogInc"] = ts.inc.into();
            }
            let api = client.client()?;
            let page: Page<RestoreJob> = api
                .post_json(
                    &format!("/api/public/v1.0/groups/{group}/clusters/{cluster}/restoreJobs"),
                    &body,
                )
                .await?;
            if wait && json {
                // The watch lines name each job.
            } else if json {
                print_json(&page)?;
            } else {
                println!("Created restore job(s):");
                print_jobs(&page.results);
            }
            if wait {
                let display = watch_display(json);
                let mut broken = Vec::new();
                for job in &page.results {
                    if let Err(err) = watch(&api, &group, &cluster, &job.id, display).await {
                        broken.push(format!("{err:#}"));
                    }
                }
                if !broken.is_empty() {
                    bail!("{}", broken.join("; "));
                }
            }
        }
        RestoreCommand::Watch {
            client,
            job,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            watch(&api, &group, &cluster, &job, watch_display(json)).await?;
        }
        RestoreCommand::Ranges(args) => super::ranges::run(args).await?,
        RestoreCommand::Cancel {
            client,
            job,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            let cancelled: RestoreJob = api
                .post_json(
                    &format!(
                        "/api/rewind/v1/groups/{group}/clusters/{cluster}/restoreJobs/{job}/cancel"
                    ),
                    &serde_json::json!({}),
                )
                .await?;
            if json {
                print_json(&cancelled)?;
            } else {
                print_jobs(std::slice::from_ref(&cancelled));
            }
        }
        RestoreCommand::List {
            client,
            group,
            cluster,
            batch,
            json,
        } => {
            let api = client.client()?;
            let mut path = format!(
                "/api/public/v1.0/groups/{group}/clusters/{cluster}/restoreJobs?itemsPerPage=500"
            );
            if let Some(b) = batch {
                path.push_str(&format!("&batchId={b}"));
            }
            let page: Page<RestoreJob> = api.get_json(&path).await?;
            if json {
                print_json(&page)?;
            } else {
                print_jobs(&page.results);
            }
        }
        RestoreCommand::Get {
            client,
            job,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            let record: RestoreJob = api.get_json(&job_path(&group, &cluster, &job)).await?;
            if json {
                print_json(&record)?;
            } else {
                print_jobs(std::slice::from_ref(&record));
            }
        }
        RestoreCommand::Download {
            client,
            job,
            group,
            cluster,
            out,
            extract,
        } => {
            let api = client.client()?;
            let out = out.unwrap_or_else(|| PathBuf::from("."));
            let path = download(&api, &job_path(&group, &cluster, &job), &out).await?;
            println!("Downloaded and verified {}", path.display());
            if extract {
                let dir = extract_archive(&path)?;
                println!("Extracted into {}", dir.display());
            }
        }
    }
    Ok(())
}

/// Bars on a terminal, else a line per change (JSON with `--json`).
fn watch_display(json: bool) -> Display {
    if json {
        Display::Json
    } else if std::io::stderr().is_terminal() {
        Display::Bars
    } else {
        Display::Lines
    }
}

/// Polls the job until its archive is ready; fails when the job broke or the link is gone.
async fn wait_until_ready(api: &ApiClient, path: &str) -> Result<RestoreJob> {
    loop {
        let job: RestoreJob = api.get_json(path).await?;
        let delivery = job.delivery.status_name.as_deref().unwrap_or("");
        match (job.status_name.as_str(), delivery) {
            ("BROKEN" | "KILLED", _) => bail!(
                "restore job {} is {}: {}",
                job.id,
                job.status_name,
                job.failure_reason.as_deref().unwrap_or("no reason given")
            ),
            (_, "READY" | "INTERRUPTED") if job.delivery.url.is_some() => return Ok(job),
            (_, "EXPIRED" | "MAX_DOWNLOADS_EXCEEDED" | "FAILED") => {
                bail!(
                    "restore job {} cannot be downloaded: its link is {delivery}",
                    job.id
                )
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Downloads the job's archive into `out`, resuming with `Range` after a broken transfer,
/// and checks the SHA-1 against the one the server reports.
/// The archive's SHA-1 as the job reports it, waiting up to [`HASH_RECORDED_WITHIN`] for it
/// to appear; `None` if it does not.
async fn reported_hash(api: &ApiClient, job_path: &str) -> Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + HASH_RECORDED_WITHIN;
    loop {
        let job: RestoreJob = api.get_json(job_path).await?;
        let reported = job
            .hashes
            .as_ref()
            .and_then(|h| h.first())
            .map(|h| h.hash.clone());
        if reported.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok(reported);
        }
        tokio::time::sleep(HASH_POLL_INTERVAL).await;
    }
}

async fn download(api: &ApiClient, job_path: &str, out: &Path) -> Result<PathBuf> {
    let job = wait_until_ready(api, job_path).await?;
    let url = job.delivery.url.clone().unwrap_or_default();
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or("restore.tar.gz")
        .to_owned();
    tokio::fs::create_dir_all(out).await?;
    let target = out.join(&name);
    let partial = out.join(format!("{name}.part"));
    let mut file = tokio::fs::File::create(&partial).await?;
    let http = reqwest::Client::new();
    let mut hasher = Sha1::new();
    let mut have = 0u64;
    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
    {
        progress.set_style(style);
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut request = http.get(&url);
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let response = request.send().await;
        let result = match response {
            Ok(r) if r.status() == StatusCode::OK || r.status() == StatusCode::PARTIAL_CONTENT => {
                if let Some(len) = r
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                {
                    progress.set_length(have + len);
                }
                let mut body = r.bytes_stream();
                let mut failure = None;
                while let Some(piece) = body.next().await {
                    match piece {
                        Ok(bytes) => {
                            file.write_all(&bytes).await?;
                            hasher.update(&bytes);
                            have += bytes.len() as u64;
                            progress.set_position(have);
                        }
                        Err(e) => {
                            failure = Some(anyhow::Error::from(e));
                            break;
                        }
                    }
                }
                failure.map_or(Ok(()), Err)
            }
            Ok(r) => {
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                bail!(
                    "the download was refused: {}",
                    describe_error(status, &body)
                );
            }
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => break,
            Err(e) if attempts < DOWNLOAD_ATTEMPTS => {
                eprintln!("download interrupted at byte {have} ({e}); resuming");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
            }
            Err(e) => return Err(e.context("the download kept failing")),
        }
    }
    file.flush().await?;
    drop(file);
    progress.finish_and_clear();
    let local = hex::encode(hasher.finalize());
    match reported_hash(api, job_path).await? {
        Some(hash) if hash == local => {}
        Some(hash) => {
            tokio::fs::remove_file(&partial).await.ok();
            bail!(
                "SHA-1 mismatch: downloaded {local}, server reports {hash}; the file was discarded"
            );
        }
        None => bail!("the server reports no hash for the archive; cannot verify it"),
    }
    tokio::fs::rename(&partial, &target)
        .await
        .context("cannot move the archive into place")?;
    Ok(target)
}

/// Extracts a `.tar.gz` beside itself, into a directory named after it, as GNU tar would:
/// modes kept, and each directory's modification time set once everything is written into
/// it (the `tar` crate sets no directory times itself).
fn extract_archive(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("restore.tar.gz");
    let dir = path.with_file_name(name.trim_end_matches(".tar.gz"));
    std::fs::create_dir_all(&dir)?;
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(
        std::io::BufReader::new(file),
    ));
    archive.set_preserve_permissions(true);
    let cannot = || format!("cannot extract {}", path.display());
    let mut dir_times = Vec::new();
    for entry in archive.entries().with_context(cannot)? {
        let mut entry = entry.with_context(cannot)?;
        if entry.header().entry_type().is_dir() {
            let mtime = entry.header().mtime().unwrap_or(0);
            let at = dir.join(entry.path().with_context(cannot)?);
            dir_times.push((at, UNIX_EPOCH + Duration::from_secs(mtime)));
        }
        if !entry.unpack_in(&dir).with_context(cannot)? {
            bail!(
                "{}: an entry would land outside {}",
                cannot(),
                dir.display()
            );
        }
    }
    for (at, mtime) in dir_times {
        std::fs::File::open(&at)
            .and_then(|d| d.set_modified(mtime))
            .with_context(|| format!("cannot set the time of {}", at.display()))?;
    }
    Ok(dir)
}
