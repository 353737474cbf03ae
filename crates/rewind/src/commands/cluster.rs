//! `rewind cluster add|list|get`.

use anyhow::Result;
use clap::Subcommand;
use rewind_api_types::{Cluster, ClusterRegistration, Page, RegisteredCluster};

use super::{print_json, ClientArgs};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Register a replica set, or a sharded cluster with --shards N.
    Add {
        #[command(flatten)]
        client: ClientArgs,
        /// Project id.
        #[arg(long)]
        group: String,
        /// Cluster name (for a replica set, also its replica set name).
        #[arg(long)]
        name: String,
        /// Number of shards; registers a sharded cluster with a config server replica set.
        #[arg(long)]
        shards: Option<u32>,
        /// Feature compatibility version, MAJOR.MINOR [default: 7.0].
        #[arg(long)]
        fcv: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a project's clusters (sharded clusters with their shards and config servers).
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        group: String,
        #[arg(long)]
        json: bool,
    },
}

fn print_members(members: &[Cluster]) {
    println!("{:<26} {:<28} {:<20} REPLICA SET", "ID", "TYPE", "CLUSTER");
    for m in members {
        println!(
            "{:<26} {:<28} {:<20} {}",
            m.id,
            m.type_name,
            m.cluster_name,
            m.replica_set_name.as_deref().unwrap_or("-")
        );
    }
}

pub async fn run(cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Add {
            client,
            group,
            name,
            shards,
            fcv,
            json,
        } => {
            let api = client.client()?;
            let body = ClusterRegistration {
                cluster_name: name,
                feature_compatibility_version: fcv,
                shards,
            };
            let created: RegisteredCluster = api
                .post_json(&format!("/api/rewind/v1/groups/{group}/clusters"), &body)
                .await?;
            if json {
                print_json(&created)?;
            } else {
                println!(
                    "Registered cluster (FCV {}):",
                    created.feature_compatibility_version
                );
                print_members(&created.members);
            }
        }
        ClusterCommand::List {
            client,
            group,
            json,
        } => {
            let api = client.client()?;
            let page: Page<Cluster> = api
                .get_json(&format!(
                    "/api/public/v1.0/groups/{group}/clusters?itemsPerPage=500"
                ))
                .await?;
            if json {
                print_json(&page)?;
            } else {
                print_members(&page.results);
            }
        }
    }
    Ok(())
}
