//! Assembles a running server from its configuration: data directory, metadata store,
//! services, HTTP application.

use std::sync::Arc;

use rand::RngCore;
use rewind_api_types::BootstrapCredentials;

use crate::config::ServerConfig;
use crate::domain::leases::Task;
use crate::domain::replay::ReplayLedger;
use crate::domain::sessions::ConsoleSessions;
use crate::domain::{bootstrap, Clock, DomainError, Services, SystemClock};
use crate::http::conventions::Links;
use crate::http::digest::NonceService;
use crate::http::{router, worker_router, AppState};
use crate::jobs::agent_monitor::AgentMonitor;
use crate::jobs::checkpointer::Checkpointer;
use crate::jobs::lease::TaskLease;
use crate::jobs::sweeper::Sweeper;
use crate::jobs::worker::RestoreWorker;
use crate::meta::MetaError;
pub use crate::storage::Storage;
use crate::storage::StorageError;

/// How long background tasks get to finish once shutdown is requested.
const BACKGROUND_EXIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Server secret that signs Digest nonces, shared by every node of one deployment.
const NONCE_SECRET: &str = "digest-nonce-hmac";
/// Server secret that derives restore download tokens.
const DOWNLOAD_TOKEN_SECRET: &str = "download-token-hmac";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Writes the bootstrap identity if the store has none; `None` when already initialized.
pub async fn initialize(storage: &Storage) -> Result<Option<BootstrapCredentials>, ServerError> {
    Ok(bootstrap::bootstrap(storage.meta.as_ref(), &SystemClock).await?)
}

/// A random 256-bit secret created on first use and shared through the metadata store.
async fn shared_secret(storage: &Storage, name: &str) -> Result<Vec<u8>, ServerError> {
    let mut fresh = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut fresh);
    Ok(storage.meta.secret(name, fresh).await?)
}

/// Where this node records Digest counters: in the store when other nodes share it, so that
/// all of them refuse a header any of them saw; else in memory (see `domain::replay`).
fn replay_ledger(storage: &Storage) -> ReplayLedger {
    if storage.meta_is_shared {
        ReplayLedger::shared(storage.meta.clone())
    } else {
        ReplayLedger::in_process()
    }
}

/// Builds the application state for `config` over `storage`.
pub async fn app_state(
    config: &ServerConfig,
    storage: &Storage,
    public_url: &str,
) -> Result<AppState, ServerError> {
    let secret = shared_secret(storage, NONCE_SECRET).await?;
    let token_secret = shared_secret(storage, DOWNLOAD_TOKEN_SECRET).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(AppState {
        services: Arc::new(Services::new(
            storage.meta.clone(),
            storage.blocks.clone(),
            clock,
            token_secret,
        )),
        nonces: Arc::new(NonceService::new(
            secret,
            config.nonce_lifetime_secs,
            replay_ledger(storage),
        )),
        links: Links::new(public_url),
        trusted_proxy: config.trusted_proxy,
        require_access_list: config.require_access_list,
        agent_timeout: config.agent_timeout,
        console_sessions: Arc::new(ConsoleSessions::new(config.console_session_secs)),
    })
}

/// A bound, ready-to-run server.
pub struct BoundServer {
    pub listener: tokio::net::TcpListener,
    pub public_url: String,
    pub app: axum::Router,
    services: Arc<Services>,
    config: ServerConfig,
}

/// Binds the listen address and builds the application. Binding first lets the public URL
/// default to the real address when the port is 0.
pub async fn bind(config: &ServerConfig, storage: &Storage) -> Result<BoundServer, ServerError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let state = app_state(config, storage, &public_url).await?;
    let services = state.services.clone();
    let app = if config.role.serves_api() {
        router(state, crate::console::routes())
    } else {
        worker_router(state)
    };
    Ok(BoundServer {
        listener,
        public_url,
        services,
        app,
        config: config.clone(),
    })
}

impl BoundServer {
    /// Serves until `shutdown` resolves; in-flight requests finish first. Background
    /// tasks (on a node whose role runs them) get the same signal and are awaited (within a
    /// deadline) before returning.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let background_tasks = if self.config.role.runs_background_work() {
            self.spawn_background_work(&stopped)
        } else {
            Vec::new()
        };
        let header_timeout = self.config.header_timeout;
        let served = crate::http::serve(self.listener, self.app, header_timeout, async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
        let services = self.services.clone();
        let background = async move {
            services.tasks.close();
            services.tasks.wait().await;
            for task in background_tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(BACKGROUND_EXIT_DEADLINE, background)
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        served.map_err(ServerError::Serve)
    }

    /// Starts the restore worker, the retention sweeper, the agent monitor and the
    /// checkpointer, each stopping when `stopped` turns true. The last three run their
    /// passes only while this node holds their task's lease, so that every node of a
    /// deployment may run them.
    fn spawn_background_work(
        &self,
        stopped: &crate::jobs::Shutdown,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // This process's name in leases and claims: a restarted node is a new holder.
        let node = format!("node-{}", uuid::Uuid::new_v4());
        let lease =
            |task| TaskLease::new(self.services.clone(), task, node.clone(), self.config.lease);
        let sweeper = Sweeper::new(self.services.clone(), self.config.gc_delay);
        let worker = RestoreWorker::new(self.services.clone(), node.clone(), self.config.lease);
        let monitor = AgentMonitor::new(self.services.clone(), self.config.agent_timeout);
        let checkpointer = Checkpointer::new(self.services.clone());
        vec![
            tokio::spawn(sweeper.run(
                self.config.sweep_interval,
                lease(Task::Sweeper),
                stopped.clone(),
            )),
            tokio::spawn(worker.run(stopped.clone())),
            tokio::spawn(monitor.run(lease(Task::AgentMonitor), stopped.clone())),
            tokio::spawn(checkpointer.run(
                self.config.checkpoint_pass_interval,
                lease(Task::Checkpointer),
                stopped.clone(),
            )),
        ]
    }
}
