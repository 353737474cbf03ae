//! `rewind restore ranges`: the moments a point-in-time restore can reach.

use anyhow::Result;
use clap::Args;
use reqwest::Method;
use rewind_api_types::iso_seconds::format_iso;
use rewind_api_types::{BsonTimestamp, RestorableTimeRange};

use super::{print_json, ClientArgs};

#[derive(Args, Debug)]
pub struct RangesArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(long)]
    pub group: String,
    #[arg(long)]
    pub cluster: String,
    /// Print the server's array as it is.
    #[arg(long)]
    pub json: bool,
}

/// A BSON timestamp as the table shows it: ISO time and `SECONDS:INCREMENT`, the form
/// `rewind restore start --oplog-ts` takes.
fn ts_cell(ts: &BsonTimestamp) -> String {
    format!("{} ({}:{})", format_iso(ts.date), ts.date, ts.increment)
}

pub async fn run(args: RangesArgs) -> Result<()> {
    let api = args.client.client()?;
    let path = format!(
        "/api/public/v1.0/groups/{}/clusters/{}/restoreJobs/restorableTimeRanges",
        args.group, args.cluster
    );
    // Ops Manager's endpoint takes no body.
    let ranges: Vec<RestorableTimeRange> = api
        .send(Method::POST, &path, None, "application/json")
        .await?
        .json()?;
    if args.json {
        return print_json(&ranges);
    }
    if ranges.is_empty() {
        println!("Nothing is restorable to a point in time yet.");
        return Ok(());
    }
    println!("{:<42} {:<42} SNAPSHOT", "FROM", "TO (INCLUDED)");
    for r in &ranges {
        println!(
            "{:<42} {:<42} {}",
            ts_cell(&r.start),
            ts_cell(&r.end),
            r.snapshot_id
        );
    }
    if let (Some(shards), Some(config)) = (ranges[0].shard_count, &ranges[0].config_server_type) {
        println!("Sharded cluster: {shards} shards, config server {config}.");
    }
    Ok(())
}
