//! Assembles a running server from its configuration: data directory, metadata store,
//! services, HTTP application.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngCore;
use rewind_api_types::BootstrapCredentials;

use crate::config::ServerConfig;
use crate::domain::{bootstrap, Clock, DomainError, Services, SystemClock};
use crate::http::conventions::Links;
use crate::http::digest::NonceService;
use crate::http::{router, AppState};
use crate::meta::{MetaError, MetaStore, SqliteMetaStore};

/// Name of the metadata database inside the data directory.
pub const META_FILE: &str = "meta.sqlite";
/// Server secret that signs Digest nonces, shared by every node of one deployment.
const NONCE_SECRET: &str = "digest-nonce-hmac";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
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

/// The opened storage of one data directory.
pub struct Storage {
    pub meta: Arc<dyn MetaStore>,
}

impl Storage {
    /// Opens (creating if needed) the embedded default storage in `data_dir`.
    pub async fn open_embedded(data_dir: &Path) -> Result<Storage, ServerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let meta = SqliteMetaStore::open(&data_dir.join(META_FILE)).await?;
        Ok(Storage {
            meta: Arc::new(meta),
        })
    }
}

/// Writes the bootstrap identity if the store has none; `None` when already initialized.
pub async fn initialize(storage: &Storage) -> Result<Option<BootstrapCredentials>, ServerError> {
    Ok(bootstrap::bootstrap(storage.meta.as_ref(), &SystemClock).await?)
}

/// Builds the application state for `config` over `storage`.
pub async fn app_state(
    config: &ServerConfig,
    storage: &Storage,
    public_url: &str,
) -> Result<AppState, ServerError> {
    let mut fresh = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut fresh);
    let secret = storage.meta.secret(NONCE_SECRET, fresh).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(AppState {
        services: Arc::new(Services::new(storage.meta.clone(), clock)),
        nonces: Arc::new(NonceService::new(secret, config.nonce_lifetime_secs)),
        links: Links::new(public_url),
        trusted_proxy: config.trusted_proxy,
        require_access_list: config.require_access_list,
    })
}

/// A bound, ready-to-run server.
pub struct BoundServer {
    pub listener: tokio::net::TcpListener,
    pub public_url: String,
    pub app: axum::Router,
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
    Ok(BoundServer {
        listener,
        public_url,
        app: router(state),
    })
}

impl BoundServer {
    /// Serves until `shutdown` resolves; in-flight requests finish first.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        crate::http::serve(self.listener, self.app, shutdown)
            .await
            .map_err(ServerError::Serve)
    }
}
