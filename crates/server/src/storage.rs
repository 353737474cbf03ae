//! Where a deployment keeps its data: the typed storage configuration and the one function
//! that opens it.
//!
//! Every part that needs storage (`serve`, `init`, the tests) describes it as a
//! [`StorageConfig`] and calls [`StorageConfig::open`]; a backend is added as a new variant
//! of [`MetaConfig`] or [`BlocksConfig`] and an arm in its `open`, nowhere else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocks::{BlockStore, ObjectBlockStore, S3Config};
use crate::meta::{MetaError, MetaStore, PostgresMetaStore, SqliteMetaStore};

/// Name of the metadata database inside the data directory.
pub const META_FILE: &str = "meta.sqlite";
/// Directory of the local block store inside the data directory.
pub const BLOCKS_DIR: &str = "blocks";

/// Where the metadata store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaConfig {
    /// An SQLite database file (created if missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database (its schema is created or migrated on open).
    Postgres { url: DatabaseUrl },
}

/// The URL of a database server, which may carry a password: its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({:?})", without_password(&self.0))
    }
}

/// `scheme://user:password@host/…` as `scheme://user:***@host/…`.
fn without_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// A database URL whose scheme names no metadata backend.
#[derive(Debug, thiserror::Error)]
#[error("{scheme:?} names no metadata backend (expected postgres:// or postgresql://)")]
pub struct UnknownDatabaseScheme {
    /// What stood before the first `:` (never the rest, which may hold a password).
    pub scheme: String,
}

impl MetaConfig {
    /// The metadata store a database URL names, by its scheme: `postgres://` or
    /// `postgresql://` (the forms PostgreSQL's own clients accept).
    pub fn from_database_url(url: &str) -> Result<MetaConfig, UnknownDatabaseScheme> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match (scheme, url.get(scheme.len()..)) {
            ("postgres" | "postgresql", Some(rest)) if rest.starts_with("://") => {
                Ok(MetaConfig::Postgres {
                    url: DatabaseUrl(url.to_owned()),
                })
            }
            _ => Err(UnknownDatabaseScheme {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// Where the block store (chunks, packs, manifests, oplog slices) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlocksConfig {
    /// A local directory (created if missing).
    Local { dir: PathBuf },
    /// A bucket (and prefix) on S3 or an S3-compatible server, which several nodes may
    /// share; nothing is created there.
    S3(S3Config),
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
    /// Whether several server processes may use this metadata store at once (a database
    /// server), so that state every request touches, such as the Digest replay ledger,
    /// must live in it. An SQLite file is served by one process.
    pub meta_is_shared: bool,
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

    /// The block store inside `data_dir`, and the metadata store in the database that
    /// `database_url` names, else inside `data_dir` too.
    pub fn with_database(
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Result<StorageConfig, UnknownDatabaseScheme> {
        let mut config = StorageConfig::embedded(data_dir);
        if let Some(url) = database_url {
            config.meta = MetaConfig::from_database_url(url)?;
        }
        Ok(config)
    }

    /// Opens both stores, creating what is missing and applying pending migrations.
    pub async fn open(&self) -> Result<Storage, StorageError> {
        Ok(Storage {
            meta: self.meta.open().await?,
            blocks: self.blocks.open()?,
            meta_is_shared: self.meta.is_shared(),
        })
    }
}

impl MetaConfig {
    /// Whether several server processes may use this store at once.
    pub fn is_shared(&self) -> bool {
        match self {
            MetaConfig::Sqlite { .. } => false,
            MetaConfig::Postgres { .. } => true,
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn MetaStore>, StorageError> {
        match self {
            MetaConfig::Sqlite { path } => {
                if let Some(dir) = path.parent() {
                    create_dir(dir)?;
                }
                Ok(Arc::new(SqliteMetaStore::open(path).await?))
            }
            MetaConfig::Postgres { url } => {
                Ok(Arc::new(PostgresMetaStore::connect(url.as_str()).await?))
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
            BlocksConfig::S3(config) => {
                let store = config
                    .open()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_the_postgres_store_and_others_are_refused() {
        for url in [
            "postgres://rewind@db/rewind",
            "postgresql://rewind@db:5433/rewind",
        ] {
            assert!(matches!(
                MetaConfig::from_database_url(url),
                Ok(MetaConfig::Postgres { .. })
            ));
        }
        for (url, scheme) in [
            ("mysql://root:secret@db/rewind", "mysql"),
            ("postgres:db", "postgres"),
            ("rewind.db", ""),
        ] {
            let err = MetaConfig::from_database_url(url).unwrap_err();
            assert_eq!(err.scheme, scheme, "{url}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn a_database_urls_password_stays_out_of_its_debug_form() {
        let url = |text: &str| DatabaseUrl(text.to_owned());
        assert_eq!(
            format!("{:?}", url("postgres://rewind:s3cr@t@db:5432/rewind")),
            r#"DatabaseUrl("postgres://rewind:***@db:5432/rewind")"#
        );
        assert_eq!(
            format!("{:?}", url("postgres://rewind@db/rewind")),
            r#"DatabaseUrl("postgres://rewind@db/rewind")"#
        );
    }
}
