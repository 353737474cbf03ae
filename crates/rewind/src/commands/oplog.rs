//! `rewind oplog push|status|window`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use rewind_api_types::iso_seconds::format_iso;
use rewind_api_types::{BackupSettings, BsonTimestamp, OplogStatus, Page};

use super::{print_json, ClientArgs};
use crate::oplog::{parse_oplog_ts, push, PushRequest};

#[derive(Subcommand, Debug)]
pub enum OplogCommand {
    /// Push a file of concatenated BSON oplog entries (like mongodump's oplog.bson).
    Push {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        /// Replica set the entries come from [default: the cluster's only one].
        #[arg(long)]
        part: Option<String>,
        /// SECONDS:INCREMENT of the stored entry this file continues from; without it, a
        /// file that starts after the stored oplog records a gap.
        #[arg(long, value_parser = parse_oplog_ts)]
        after: Option<rewind_formats::OplogTs>,
        /// Print a JSON summary instead of a progress bar.
        #[arg(long)]
        json: bool,
        /// The file of entries.
        file: PathBuf,
    },
    /// Show each replica set's stored oplog: first and last ts, entries, bytes, gaps.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        json: bool,
    },
    /// Show, or with --hours or --checkpoint-interval set, the project's point-in-time
    /// window and checkpoint interval.
    Window {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        /// New window, in hours (1 to 720).
        #[arg(long)]
        hours: Option<u32>,
        /// New interval between checkpoints of sharded clusters with FCV 4.0 or earlier, in
        /// minutes (15, 30 or 60).
        #[arg(long)]
        checkpoint_interval: Option<u32>,
        #[arg(long)]
        json: bool,
    },
}

fn ts_text(ts: &BsonTimestamp) -> String {
    format!("{} ({}:{})", format_iso(ts.date), ts.date, ts.increment)
}

fn print_status(status: &OplogStatus) {
    let span = match (&status.first_timestamp, &status.last_timestamp) {
        (Some(first), Some(last)) => format!("{} .. {}", ts_text(first), ts_text(last)),
        _ => "no oplog stored".to_owned(),
    };
    println!(
        "{}: {span}; {} entries, {} bytes ({} stored in {} slices)",
        status.replica_set_name,
        status.entry_count,
        status.data_size_bytes,
        status.storage_size_bytes,
        status.slice_count
    );
    for gap in &status.gaps {
        println!(
            "  gap after {} until {}",
            ts_text(&gap.start),
            ts_text(&gap.end)
        );
    }
}

pub async fn run(cmd: OplogCommand) -> Result<()> {
    match cmd {
        OplogCommand::Push {
            client,
            group,
            cluster,
            part,
            after,
            json,
            file,
        } => {
            let api = client.client()?;
            let request = PushRequest {
                group,
                cluster,
                replica_set: part,
                after,
                file,
                show_progress: !json && std::io::stderr().is_terminal(),
            };
            let report = push(&api, request).await?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "Pushed {} entries ({} bytes) in {} requests: {} stored, {} already stored.",
                    report.entries_pushed,
                    report.bytes_pushed,
                    report.requests,
                    report.entries_stored,
                    report.entries_already_stored
                );
                if report.gap_opened {
                    println!("Warning: these entries do not continue the stored oplog; a gap is recorded before them (use --after to continue from a stored entry).");
                }
                print_status(&report.coverage);
            }
        }
        OplogCommand::Status {
            client,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            let page: Page<OplogStatus> = api
                .get_json(&format!(
                    "/api/rewind/v1/groups/{group}/clusters/{cluster}/oplog?itemsPerPage=500"
                ))
                .await?;
            if json {
                print_json(&page)?;
            } else {
                for status in &page.results {
                    print_status(status);
                }
            }
        }
        OplogCommand::Window {
            client,
            group,
            hours,
            checkpoint_interval,
            json,
        } => {
            let api = client.client()?;
            let path = format!("/api/rewind/v1/groups/{group}/backupSettings");
            let mut change = serde_json::Map::new();
            if let Some(hours) = hours {
                change.insert("pointInTimeWindowHours".into(), hours.into());
            }
            if let Some(minutes) = checkpoint_interval {
                change.insert("checkpointIntervalMinutes".into(), minutes.into());
            }
            let settings: BackupSettings = if change.is_empty() {
                api.get_json(&path).await?
            } else {
                let body = serde_json::to_vec(&change)?;
                api.send(Method::PATCH, &path, Some(&body), "application/json")
                    .await?
                    .json()?
            };
            if json {
                print_json(&settings)?;
            } else {
                println!(
                    "Point-in-time window: {} hours",
                    settings.point_in_time_window_hours
                );
                println!(
                    "Checkpoint interval: {} minutes",
                    settings.checkpoint_interval_minutes
                );
            }
        }
    }
    Ok(())
}
