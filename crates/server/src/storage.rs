//! Where a deployment keeps its data: the typed storage configuration and the one function
//! that opens it.
//!
//! Every part that needs storage (`serve`, `init`, the tests) describes it as a
//! [`StorageConfig`] and calls [`StorageConfig::open`]; a backend is added as a new variant
//! of [`MetaConfig`] or [`BlocksConfig`] and an arm in its `open`, nowhere else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocks::{BlockStore, ObjectBlockStore};
use crate::meta::{MetaError, MetaStore, SqliteMetaStore};

/// Name of the metadata database inside the data directory.
pub const META_FILE: &str = "meta.sqlite";
/// Directory of the local block store inside the data directory.
pub const BLOCKS_DIR: &str = "blocks";

/// Where the metadata store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaConfig {
    /// An SQLite database file (created if missing).
    Sqlite { path: PathBuf },
}

/// Where the block store (chunks, packs, manifests, oplog slices) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlocksConfig {
    /// A local directory (created if missing).
    Local { dir: PathBuf },
}

/// The storage of one deployment: its metadata store and its block store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub meta: MetaConfig,
    pub blocks: BlocksConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the metadata store: {0}")]
    Meta(#[from] MetaError),
    #[error("cannot open the block store: {0}")]
    Blocks(String),
}

/// The opened storage.
pub struct Storage {
    pub meta: Arc<dyn MetaStore>,
    pub blocks: Arc<dyn BlockStore>,
}

impl StorageConfig {
    /// The embedded default: everything inside `data_dir`.
    pub fn embedded(data_dir: &Path) -> StorageConfig {
        StorageConfig {
            meta: MetaConfig::Sqlite {
                path: data_dir.join(META_FILE),
            },
            blocks: BlocksConfig::Local {
                dir: data_dir.join(BLOCKS_DIR),
            },
        }
    }

    /// Opens both stores, creating what is missing and applying pending migrations.
    pub async fn open(&self) -> Result<Storage, StorageError> {
        Ok(Storage {
            meta: self.meta.open().await?,
            blocks: self.blocks.open()?,
        })
    }
}

impl MetaConfig {
    pub async fn open(&self) -> Result<Arc<dyn MetaStore>, StorageError> {
        match self {
            MetaConfig::Sqlite { path } => {
                if let Some(dir) = path.parent() {
                    create_dir(dir)?;
                }
                Ok(Arc::new(SqliteMetaStore::open(path).await?))
            }
        }
    }
}

impl BlocksConfig {
    pub fn open(&self) -> Result<Arc<dyn BlockStore>, StorageError> {
        match self {
            BlocksConfig::Local { dir } => {
                create_dir(dir)?;
                let store = ObjectBlockStore::local(dir)
                    .map_err(|e| StorageError::Blocks(e.to_string()))?;
                Ok(Arc::new(store))
            }
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
        path: dir.to_owned(),
        source,
    })
}
