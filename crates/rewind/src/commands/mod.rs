//! Command-line definitions and dispatch.

mod checkpoint;
mod cluster;
mod oplog;
mod ranges;
mod restore;
mod serve;
mod snapshot;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::client::{ApiClient, Credentials};

#[derive(Parser, Debug)]
#[command(
    name = "rewind",
    version,
    about = "Self-hosted restore service for MongoDB backups, speaking the Cloud Manager API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server (bootstraps an empty data directory on first start).
    Serve(serve::ServeArgs),
    /// Create the first organization, project and API key without serving.
    Init(serve::InitArgs),
    /// Register and list clusters.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Import, list and verify snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Start, list, inspect and download restore jobs.
    #[command(subcommand)]
    Restore(restore::RestoreCommand),
    /// Apply automated restores to this host's members of one replica set.
    Agent(AgentArgs),
    /// Push oplog entries, show their coverage, and set the point-in-time window and the
    /// checkpoint interval.
    #[command(subcommand)]
    Oplog(oplog::OplogCommand),
    /// List the checkpoints of sharded clusters with FCV 4.0 or earlier.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The agent's TOML configuration file.
    #[arg(long, env = "REWIND_AGENT_CONFIG")]
    pub config: PathBuf,
}

/// How client commands reach the server.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the Rewind server.
    #[arg(long, env = "REWIND_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Public half of the API key (the Digest username).
    #[arg(long, env = "REWIND_PUBLIC_KEY")]
    pub public_key: String,
    /// Private half of the API key (the Digest password).
    #[arg(long, env = "REWIND_PRIVATE_KEY", hide_env_values = true)]
    pub private_key: String,
}

impl ClientArgs {
    pub fn client(&self) -> Result<ApiClient> {
        ApiClient::new(Credentials {
            server: self.server.clone(),
            public_key: self.public_key.clone(),
            private_key: self.private_key.clone(),
        })
    }
}

/// Options shared by commands that open a data directory directly.
#[derive(Args, Debug, Clone)]
pub struct DataDirArg {
    /// Data directory of the embedded store.
    #[arg(long, env = "REWIND_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Init(args) => serve::init(args).await,
        Command::Cluster(cmd) => cluster::run(cmd).await,
        Command::Snapshot(cmd) => snapshot::run(cmd).await,
        Command::Restore(cmd) => restore::run(cmd).await,
        Command::Agent(args) => {
            let config = crate::agent::config::AgentConfig::load(&args.config)?;
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            crate::agent::run(config).await
        }
        Command::Oplog(cmd) => oplog::run(cmd).await,
        Command::Checkpoint(cmd) => checkpoint::run(cmd).await,
    }
}

/// Prints a value as indented JSON on standard output.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
