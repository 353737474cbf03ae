//! `rewind snapshot import|list|verify`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use rewind_api_types::{BsonTimestamp, Page, Snapshot, VerifyReport};

use super::{print_json, ClientArgs};
use crate::import::{import, parse_taken_at, ImportRequest, PartSource};

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Import data directories as a new snapshot (uploads only chunks the server lacks).
    Import {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// The replica set's data directory (dbpath).
        #[arg(long, conflicts_with = "part")]
        from: Option<PathBuf>,
        /// NAME=DIR for each replica set of a sharded cluster (shards and config server).
        #[arg(long, value_parser = parse_part)]
        part: Vec<PartSource>,
        /// Oplog position of the files: RFC 3339 or SECONDS:INCREMENT [default: now].
        #[arg(long)]
        taken_at: Option<String>,
        /// MongoDB version of the files [default: the cluster's FCV with .0].
        #[arg(long)]
        mongod_version: Option<String>,
        /// Print a JSON summary instead of a progress bar.
        #[arg(long)]
        json: bool,
    },
    /// List a cluster's snapshots, newest first.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-read every chunk of a snapshot (or, with --all, of the whole store).
    Verify {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, required_unless_present = "all")]
        group: Option<String>,
        #[arg(long, required_unless_present = "all")]
        cluster: Option<String>,
        #[arg(long, required_unless_present = "all")]
        snapshot: Option<String>,
        /// Verify every chunk the server stores (organization owners).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// The dedup ratio as the summary line shows it: a number, or why there is none (every
/// chunk was already stored, so nothing was uploaded to divide by).
fn describe_dedup(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) => format!("dedup ratio {ratio:.2}"),
        None => "nothing new to upload".to_owned(),
    }
}

fn parse_part(text: &str) -> Result<PartSource, String> {
    let (name, dir) = text.split_once('=').ok_or("expected NAME=DIR")?;
    if name.is_empty() || dir.is_empty() {
        return Err("expected NAME=DIR".into());
    }
    Ok(PartSource {
        replica_set: name.to_owned(),
        dir: PathBuf::from(dir),
    })
}

pub async fn run(cmd: SnapshotCommand) -> Result<()> {
    match cmd {
        SnapshotCommand::Import {
            client,
            group,
            cluster,
            from,
            part,
            taken_at,
            mongod_version,
            json,
        } => {
            let api = client.client()?;
            let taken_at = match taken_at {
                Some(text) => parse_taken_at(&text)?,
                None => BsonTimestamp {
                    date: chrono::Utc::now().timestamp(),
                    increment: 1,
                },
            };
            if from.is_none() && part.is_empty() {
                bail!("give --from DIR (replica set) or --part NAME=DIR for each replica set");
            }
            let request = ImportRequest {
                group,
                cluster,
                from,
                parts: part,
                taken_at,
                mongod_version,
                show_progress: !json && std::io::stderr().is_terminal(),
            };
            let summary = import(&api, request).await?;
            if json {
                print_json(&summary)?;
            } else {
                println!(
                    "Imported snapshot {}: {} bytes scanned, {} uploaded, {} newly stored ({})",
                    summary.snapshot_id,
                    summary.bytes_scanned,
                    summary.bytes_uploaded,
                    summary.bytes_newly_stored,
                    describe_dedup(summary.dedup_ratio)
                );
            }
        }
        SnapshotCommand::List {
            client,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            let page: Page<Snapshot> = api
                .get_json(&format!(
                    "/api/public/v1.0/groups/{group}/clusters/{cluster}/snapshots?itemsPerPage=500"
                ))
                .await?;
            if json {
                print_json(&page)?;
            } else {
                println!(
                    "{:<26} {:<22} {:<9} {:>14}",
                    "ID", "CREATED", "COMPLETE", "FILE BYTES"
                );
                for s in &page.results {
                    let bytes: u64 = s.parts.iter().map(|p| p.file_size_bytes).sum();
                    let created = rewind_api_types::iso_seconds::format_iso(s.created.date);
                    println!(
                        "{:<26} {:<22} {:<9} {:>14}",
                        s.id, created, s.complete, bytes
                    );
                }
            }
        }
        SnapshotCommand::Verify {
            client,
            group,
            cluster,
            snapshot,
            all,
            json,
        } => {
            let api = client.client()?;
            let path = if all {
                "/api/rewind/v1/verify".to_owned()
            } else {
                let missing = || anyhow!("give --group, --cluster and --snapshot, or --all");
                format!(
                    "/api/rewind/v1/groups/{}/clusters/{}/snapshots/{}/verify",
                    group.ok_or_else(missing)?,
                    cluster.ok_or_else(missing)?,
                    snapshot.ok_or_else(missing)?
                )
            };
            let report: VerifyReport = api.post_json(&path, &serde_json::json!({})).await?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "{} chunks ({} bytes) checked: {} corrupt, {} missing",
                    report.chunks_checked,
                    report.bytes_checked,
                    report.corrupt.len(),
                    report.missing.len()
                );
                for id in &report.corrupt {
                    println!("corrupt {id}");
                }
                for id in &report.missing {
                    println!("missing {id}");
                }
            }
            if !report.corrupt.is_empty() || !report.missing.is_empty() {
                bail!("the store holds damaged chunks");
            }
        }
    }
    Ok(())
}
