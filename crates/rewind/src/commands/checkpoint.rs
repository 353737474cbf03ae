//! `rewind checkpoint list`.

use anyhow::Result;
use clap::Subcommand;
use rewind_api_types::{Checkpoint, Page};

use super::{print_json, ClientArgs};

#[derive(Subcommand, Debug)]
pub enum CheckpointCommand {
    /// List a sharded cluster's checkpoints (FCV 4.0 or earlier), newest first.
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
}

pub async fn run(cmd: CheckpointCommand) -> Result<()> {
    match cmd {
        CheckpointCommand::List {
            client,
            group,
            cluster,
            json,
        } => {
            let api = client.client()?;
            let page: Page<Checkpoint> = api
                .get_json(&format!(
                    "/api/public/v1.0/groups/{group}/clusters/{cluster}/checkpoints?itemsPerPage=500"
                ))
                .await?;
            if json {
                print_json(&page)?;
            } else {
                println!("{:<26} {:<22} {:<10}", "ID", "TIMESTAMP", "RESTORABLE");
                for c in &page.results {
                    println!("{:<26} {:<22} {:<10}", c.id, c.timestamp, c.restorable);
                }
            }
        }
    }
    Ok(())
}
