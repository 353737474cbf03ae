//! `rewind serve` and `rewind init`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use rewind_api_types::BootstrapCredentials;
use rewind_server::config::{
    storage_config, LogFormat, Role, ServerConfig, Settings, DEFAULT_DATA_DIR,
};
use rewind_server::server;
use rewind_server::storage::MetaConfig;

use super::{print_json, DataDirArg};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Optional TOML file with the same settings (flags and REWIND_* variables win).
    #[arg(long, env = "REWIND_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, IP:PORT (port 0 picks a free one) [default: 127.0.0.1:8080].
    #[arg(long, env = "REWIND_LISTEN")]
    listen: Option<String>,
    /// Data directory of the embedded store [default: ./rewind-data].
    #[arg(long, env = "REWIND_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    database: DatabaseArg,
    #[command(flatten)]
    blocks: BlocksArgs,
    /// Base URL clients use to reach this server; used in every link and download URL.
    #[arg(long, env = "REWIND_PUBLIC_URL")]
    public_url: Option<String>,
    /// Address of a reverse proxy whose X-Forwarded-For is trusted for access lists.
    #[arg(long, env = "REWIND_TRUSTED_PROXY")]
    trusted_proxy: Option<String>,
    /// Refuse API keys with an empty access list [default: true].
    #[arg(long, env = "REWIND_REQUIRE_ACCESS_LIST")]
    require_access_list: Option<bool>,
    /// Log format: human or json [default: human].
    #[arg(long, env = "REWIND_LOG_FORMAT", value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Seconds a Digest nonce stays valid (a client then retries with a fresh one) [default: 300]
    #[arg(long, env = "REWIND_NONCE_LIFETIME_SECS")]
    nonce_lifetime_secs: Option<i64>,
    /// Seconds an unreferenced chunk waits before garbage collection [default: 3600].
    #[arg(long, env = "REWIND_GC_DELAY_SECS")]
    gc_delay_secs: Option<u64>,
    /// Seconds between retention sweeper passes [default: 30].
    #[arg(long, env = "REWIND_SWEEP_INTERVAL_SECS")]
    sweep_interval_secs: Option<u64>,
    /// Seconds an automated restore waits for its agents to report before it is BROKEN [default: 300].
    #[arg(long, env = "REWIND_AGENT_TIMEOUT_SECS")]
    agent_timeout_secs: Option<u64>,
    /// Seconds between checkpoint passes (a pass also follows each oplog push) [default: 30].
    #[arg(long, env = "REWIND_CHECKPOINT_PASS_SECS")]
    checkpoint_pass_secs: Option<u64>,
    /// Seconds a client may take to send a request's line and headers; a connection that
    /// stalls longer is closed (also the idle keep-alive limit) [default: 10]
    #[arg(long, env = "REWIND_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
    /// What this node does: api (the HTTP APIs, no background work), worker (the background
    /// work; serves only /health and /metrics) or all [default: all].
    #[arg(long, env = "REWIND_ROLE")]
    role: Option<Role>,
    /// Seconds a node's lease on a restore job or a background task lasts without renewal:
    /// how long work waits after its node died before another node takes it over [default: 15]
    #[arg(long, env = "REWIND_LEASE_SECS")]
    lease_secs: Option<u64>,
    /// Seconds a web console session lasts after its sign-in [default: 28800].
    #[arg(long, env = "REWIND_CONSOLE_SESSION_SECS")]
    console_session_secs: Option<u64>,
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{text:?} is not human or json")),
    }
}

/// Where the metadata store lives when not in the data directory.
#[derive(Args, Debug)]
struct DatabaseArg {
    /// PostgreSQL database of the metadata store, postgres://USER[:PASSWORD]@HOST[:PORT]/DB
    /// [default: SQLite in the data directory].
    #[arg(long, env = "REWIND_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Where the block store lives when not in the data directory.
#[derive(Args, Debug)]
struct BlocksArgs {
    /// Block store in a bucket, s3://BUCKET[/PREFIX] [default: the data directory].
    #[arg(long, env = "REWIND_BLOCKS_URL")]
    blocks_url: Option<String>,
    /// Base URL of a self-hosted S3-compatible server, addressed path-style [default: AWS].
    #[arg(long, env = "REWIND_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region [default: AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long, env = "REWIND_S3_REGION")]
    s3_region: Option<String>,
    /// Accept a plain http:// S3 endpoint [default: false].
    #[arg(long, env = "REWIND_S3_ALLOW_HTTP")]
    s3_allow_http: Option<bool>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID, or an instance role].
    #[arg(long, env = "REWIND_S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY].
    #[arg(long, env = "REWIND_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// How long one S3 request is retried before it fails the import or job [default: 30].
    #[arg(long, env = "REWIND_S3_RETRY_TIMEOUT_SECS")]
    s3_retry_timeout_secs: Option<u64>,
}

impl BlocksArgs {
    /// These flags as settings, everything else unset.
    fn into_settings(self, database: DatabaseArg) -> Settings {
        Settings {
            database_url: database.database_url,
            blocks_url: self.blocks_url,
            s3_endpoint: self.s3_endpoint,
            s3_region: self.s3_region,
            s3_allow_http: self.s3_allow_http,
            s3_access_key_id: self.s3_access_key_id,
            s3_secret_access_key: self.s3_secret_access_key,
            s3_retry_timeout_secs: self.s3_retry_timeout_secs,
            ..Settings::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    #[command(flatten)]
    database: DatabaseArg,
    #[command(flatten)]
    blocks: BlocksArgs,
    /// Print the credentials as JSON: {"orgId","groupId","publicKey","privateKey"}.
    #[arg(long)]
    json: bool,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn print_bootstrap(creds: &BootstrapCredentials, public_url: &str) {
    println!("Rewind initialized a new data directory. Keep these credentials: the private key is shown only once.");
    println!("  organization id: {}", creds.org_id);
    println!("  project id:      {}", creds.group_id);
    println!("  public key:      {}", creds.public_key);
    println!("  private key:     {}", creds.private_key);
    println!("  access list:     127.0.0.1, ::1");
    println!("Try it:");
    println!(
        "  curl --user \"{}:{}\" --digest --header \"Accept: application/json\" \"{}/api/public/v1.0/groups/{}/clusters?pretty=true\"",
        creds.public_key, creds.private_key, public_url, creds.group_id
    );
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let flags = Settings {
        listen: args.listen,
        data_dir: args.data_dir,
        public_url: args.public_url,
        trusted_proxy: args.trusted_proxy,
        require_access_list: args.require_access_list,
        log_format: args.log_format,
        nonce_lifetime_secs: args.nonce_lifetime_secs,
        gc_delay_secs: args.gc_delay_secs,
        sweep_interval_secs: args.sweep_interval_secs,
        agent_timeout_secs: args.agent_timeout_secs,
        checkpoint_pass_secs: args.checkpoint_pass_secs,
        header_timeout_secs: args.header_timeout_secs,
        role: args.role,
        lease_secs: args.lease_secs,
        console_session_secs: args.console_session_secs,
        ..args.blocks.into_settings(args.database)
    };
    let file = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = ServerConfig::resolve(flags.or(file))?;
    init_tracing(config.log_format);
    let storage = config.storage.open().await?;
    let bootstrapped = server::initialize(&storage).await?;
    let bound = server::bind(&config, &storage).await?;
    if let Some(creds) = &bootstrapped {
        print_bootstrap(creds, &bound.public_url);
    }
    println!("Rewind listening on {}", bound.public_url);
    tracing::info!(data_dir = %config.data_dir.display(), public_url = %bound.public_url, role = ?config.role, "server started");
    bound.run(shutdown_signal()).await?;
    tracing::info!("server stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

pub async fn init(args: InitArgs) -> Result<()> {
    let dir = args
        .data_dir
        .data_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let config = storage_config(&dir, &args.blocks.into_settings(args.database))?;
    let storage = config
        .open()
        .await
        .context("cannot open the data directory")?;
    let Some(creds) = server::initialize(&storage).await? else {
        let store = match &config.meta {
            MetaConfig::Sqlite { .. } => dir.display().to_string(),
            MetaConfig::Postgres { .. } => "the database".to_owned(),
        };
        bail!(
            "{store} is already initialized; its bootstrap key was shown when it was created and cannot be shown again"
        );
    };
    if args.json {
        print_json(&creds)?;
    } else {
        print_bootstrap(&creds, "http://127.0.0.1:8080");
    }
    Ok(())
}
