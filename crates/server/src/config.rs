//! Server settings. The binary gathers flags and `REWIND_*` variables; this module adds the
//! optional TOML file and the defaults, in that order of precedence.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::time::Duration;

use crate::blocks::{S3Config, S3Credentials};
use crate::domain::agents::DEFAULT_AGENT_TIMEOUT;
use crate::domain::garbage::DEFAULT_GC_DELAY;
use crate::http::digest::DEFAULT_NONCE_LIFETIME_SECS;
use crate::http::DEFAULT_HEADER_TIMEOUT;
use crate::jobs::checkpointer::DEFAULT_CHECKPOINT_PASS_INTERVAL;
use crate::jobs::sweeper::DEFAULT_SWEEP_INTERVAL;
use crate::jobs::{DEFAULT_LEASE, MAX_LEASE, MIN_LEASE};
use crate::storage::{BlocksConfig, StorageConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./rewind-data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// What one `rewind serve` node does. Nodes of one deployment share the metadata store and
/// the block store; each may take a part of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves the HTTP APIs and runs no background work.
    Api,
    /// Runs the background work (restore preparation, retention sweeps, agent deadlines,
    /// checkpoints) and serves only `/health` and `/metrics`.
    Worker,
    /// Both: the single-node default.
    #[default]
    All,
}

impl Role {
    /// Whether this node answers the public and Rewind APIs and the download URLs.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// Whether this node runs the restore worker, the sweeper, the agent monitor and the
    /// checkpointer.
    pub fn runs_background_work(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => Err(format!("{text:?} is not api, worker or all")),
        }
    }
}

/// Settings as they may appear in the TOML file (or on the command line): all optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL database for the metadata store, in place of SQLite in the data
    /// directory (which keeps the blocks either way).
    pub database_url: Option<String>,
    /// `s3://BUCKET[/PREFIX]`: the block store in a bucket, in place of the data directory.
    pub blocks_url: Option<String>,
    /// Base URL of a self-hosted S3-compatible server (addressed path-style).
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Whether an `http://` endpoint is accepted (a loopback test server).
    pub s3_allow_http: Option<bool>,
    /// A static access key; without one, the standard `AWS_*` variables.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// How long one S3 request is retried (5xx, throttling, broken connections) before it
    /// fails the import, the push or the job that sent it.
    pub s3_retry_timeout_secs: Option<u64>,
    pub public_url: Option<String>,
    pub trusted_proxy: Option<String>,
    pub require_access_list: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub nonce_lifetime_secs: Option<i64>,
    pub gc_delay_secs: Option<u64>,
    pub sweep_interval_secs: Option<u64>,
    pub agent_timeout_secs: Option<u64>,
    pub checkpoint_pass_secs: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub role: Option<Role>,
    /// Seconds a node's lease on a restore job or a background task lasts unrenewed.
    pub lease_secs: Option<u64>,
    /// Seconds a web console session lasts after its sign-in.
    pub console_session_secs: Option<u64>,
}

impl Settings {
    /// Reads the TOML file; unknown keys are an error so typos do not go unnoticed.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Fills every setting left unset here from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            blocks_url: self.blocks_url.or(lower.blocks_url),
            s3_endpoint: self.s3_endpoint.or(lower.s3_endpoint),
            s3_region: self.s3_region.or(lower.s3_region),
            s3_allow_http: self.s3_allow_http.or(lower.s3_allow_http),
            s3_access_key_id: self.s3_access_key_id.or(lower.s3_access_key_id),
            s3_secret_access_key: self.s3_secret_access_key.or(lower.s3_secret_access_key),
            s3_retry_timeout_secs: self.s3_retry_timeout_secs.or(lower.s3_retry_timeout_secs),
            public_url: self.public_url.or(lower.public_url),
            trusted_proxy: self.trusted_proxy.or(lower.trusted_proxy),
            require_access_list: self.require_access_list.or(lower.require_access_list),
            log_format: self.log_format.or(lower.log_format),
            nonce_lifetime_secs: self.nonce_lifetime_secs.or(lower.nonce_lifetime_secs),
            gc_delay_secs: self.gc_delay_secs.or(lower.gc_delay_secs),
            sweep_interval_secs: self.sweep_interval_secs.or(lower.sweep_interval_secs),
            agent_timeout_secs: self.agent_timeout_secs.or(lower.agent_timeout_secs),
            checkpoint_pass_secs: self.checkpoint_pass_secs.or(lower.checkpoint_pass_secs),
            header_timeout_secs: self.header_timeout_secs.or(lower.header_timeout_secs),
            role: self.role.or(lower.role),
            lease_secs: self.lease_secs.or(lower.lease_secs),
            console_session_secs: self.console_session_secs.or(lower.console_session_secs),
        }
    }
}

/// The resolved configuration of `rewind serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the metadata and block stores live (the data directory by default).
    pub storage: StorageConfig,
    /// Base of every absolute URL the server writes; `None` means "the address it listens on".
    pub public_url: Option<String>,
    pub trusted_proxy: Option<IpAddr>,
    pub require_access_list: bool,
    pub log_format: LogFormat,
    pub nonce_lifetime_secs: i64,
    /// How long an unreferenced chunk waits before it is collected.
    pub gc_delay: Duration,
    /// How often the retention sweeper runs.
    pub sweep_interval: Duration,
    /// How long an automated restore waits for its agents to report before it is BROKEN.
    pub agent_timeout: Duration,
    /// How often the checkpointer looks for due checkpoints (also right after a push).
    pub checkpoint_pass_interval: Duration,
    /// How long a client may take to send a request's line and headers.
    pub header_timeout: Duration,
    /// Which part of the work this node does.
    pub role: Role,
    /// How long a node's lease on a restore job or a background task lasts unrenewed (it
    /// renews every third of it): how long work waits after its node died.
    pub lease: Duration,
    /// How long a web console session lasts after its sign-in, in seconds.
    pub console_session_secs: u64,
}

impl ServerConfig {
    pub fn resolve(settings: Settings) -> Result<ServerConfig, ConfigError> {
        let data_dir = settings
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let storage = storage_config(&data_dir, &settings)?;
        let listen_text = settings.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            name: "listen",
            message: format!("{listen_text:?} is not an IP:PORT address"),
        })?;
        let trusted_proxy = match settings.trusted_proxy {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                name: "trusted_proxy",
                message: format!("{text:?} is not an IP address"),
            })?),
        };
        if let Some(url) = &settings.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name: "public_url",
                    message: format!("{url:?} must start with http:// or https://"),
                });
            }
        }
        let nonce_lifetime_secs = settings
            .nonce_lifetime_secs
            .unwrap_or(DEFAULT_NONCE_LIFETIME_SECS);
        if !(1..=86_400).contains(&nonce_lifetime_secs) {
            return Err(ConfigError::Invalid {
                name: "nonce_lifetime_secs",
                message: "must be between 1 and 86400".into(),
            });
        }
        Ok(ServerConfig {
            listen,
            storage,
            data_dir,
            public_url: settings
                .public_url
                .map(|u| u.trim_end_matches('/').to_owned()),
            trusted_proxy,
            require_access_list: settings.require_access_list.unwrap_or(true),
            log_format: settings.log_format.unwrap_or_default(),
            nonce_lifetime_secs,
            gc_delay: settings
                .gc_delay_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_GC_DELAY),
            sweep_interval: Duration::from_secs(
                settings
                    .sweep_interval_secs
                    .unwrap_or(DEFAULT_SWEEP_INTERVAL.as_secs())
                    .max(1),
            ),
            agent_timeout: Duration::from_secs(
                settings
                    .agent_timeout_secs
                    .unwrap_or(DEFAULT_AGENT_TIMEOUT.as_secs())
                    .max(1),
            ),
            checkpoint_pass_interval: Duration::from_secs(
                settings
                    .checkpoint_pass_secs
                    .unwrap_or(DEFAULT_CHECKPOINT_PASS_INTERVAL.as_secs())
                    .max(1),
            ),
            header_timeout: Duration::from_secs(
                settings
                    .header_timeout_secs
                    .unwrap_or(DEFAULT_HEADER_TIMEOUT.as_secs())
                    .max(1),
            ),
            role: settings.role.unwrap_or_default(),
            lease: lease(settings.lease_secs)?,
            console_session_secs: console_session_secs(settings.console_session_secs)?,
        })
    }
}

/// The lease duration: whole seconds, at least [`MIN_LEASE`] so that renewing every third
/// of it still leaves a second's slack.
fn lease(secs: Option<u64>) -> Result<Duration, ConfigError> {
    let lease = secs.map_or(DEFAULT_LEASE, Duration::from_secs);
    if !(MIN_LEASE..=MAX_LEASE).contains(&lease) {
        return Err(ConfigError::Invalid {
            name: "lease_secs",
            message: format!(
                "must be between {} and {}",
                MIN_LEASE.as_secs(),
                MAX_LEASE.as_secs()
            ),
        });
    }
    Ok(lease)
}

/// A console session's lifetime: from a second (tests) to a week.
fn console_session_secs(secs: Option<u64>) -> Result<u64, ConfigError> {
    let secs = secs.unwrap_or(crate::domain::sessions::DEFAULT_SESSION_SECS);
    if !(1..=7 * 86_400).contains(&secs) {
        return Err(ConfigError::Invalid {
            name: "console_session_secs",
            message: "must be between 1 and 604800".into(),
        });
    }
    Ok(secs)
}

/// Where a deployment's data lives: the data directory, with the metadata in the database
/// `database_url` names and the blocks in the bucket `blocks_url` names, when they are set.
pub fn storage_config(data_dir: &Path, settings: &Settings) -> Result<StorageConfig, ConfigError> {
    let mut config = StorageConfig::with_database(data_dir, settings.database_url.as_deref())
        .map_err(|err| ConfigError::Invalid {
            name: "database_url",
            message: err.to_string(),
        })?;
    if let Some(blocks) = blocks_config(settings)? {
        config.blocks = blocks;
    }
    Ok(config)
}

/// The longest retry bound accepted: a request's signature must stay valid while it is
/// retried (`object_store` advises under 5 minutes), and a pack deletion must end well
/// within the GC's deletion lease.
const MAX_S3_RETRY_TIMEOUT_SECS: u64 = 300;

/// The block store `blocks_url` and the `s3_*` settings name; `None` for the data directory.
fn blocks_config(settings: &Settings) -> Result<Option<BlocksConfig>, ConfigError> {
    let invalid = |name, message: &str| ConfigError::Invalid {
        name,
        message: message.to_owned(),
    };
    let Some(url) = &settings.blocks_url else {
        let s3_settings = [
            ("s3_endpoint", settings.s3_endpoint.is_some()),
            ("s3_region", settings.s3_region.is_some()),
            ("s3_allow_http", settings.s3_allow_http.is_some()),
            ("s3_access_key_id", settings.s3_access_key_id.is_some()),
            (
                "s3_secret_access_key",
                settings.s3_secret_access_key.is_some(),
            ),
            (
                "s3_retry_timeout_secs",
                settings.s3_retry_timeout_secs.is_some(),
            ),
        ];
        return match s3_settings.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(invalid(name, "needs blocks_url = s3://BUCKET[/PREFIX]")),
            None => Ok(None),
        };
    };
    let mut s3 = S3Config::from_url(url).map_err(|e| invalid("blocks_url", &e.to_string()))?;
    s3.allow_http = settings.s3_allow_http.unwrap_or(false);
    if let Some(endpoint) = &settings.s3_endpoint {
        let endpoint = endpoint.trim_end_matches('/');
        if endpoint.starts_with("http://") && !s3.allow_http {
            return Err(invalid(
                "s3_endpoint",
                "is plain http; set s3_allow_http = true to accept it",
            ));
        }
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "s3_endpoint",
                "must start with https:// or http://",
            ));
        }
        s3.endpoint = Some(endpoint.to_owned());
    }
    s3.region = settings.s3_region.clone();
    if let Some(secs) = settings.s3_retry_timeout_secs {
        if secs == 0 || secs > MAX_S3_RETRY_TIMEOUT_SECS {
            return Err(invalid(
                "s3_retry_timeout_secs",
                &format!("must be 1 to {MAX_S3_RETRY_TIMEOUT_SECS} seconds"),
            ));
        }
        s3.retry_timeout = std::time::Duration::from_secs(secs);
    }
    s3.credentials = match (&settings.s3_access_key_id, &settings.s3_secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
        }),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "s3_access_key_id",
                "and s3_secret_access_key are set together or not at all",
            ))
        }
    };
    Ok(Some(BlocksConfig::S3(s3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_settings_win_and_defaults_fill_the_rest() {
        let flags = Settings {
            listen: Some("127.0.0.1:9000".into()),
            ..Default::default()
        };
        let file: Settings =
            toml::from_str("listen = \"0.0.0.0:1\"\nrequire_access_list = false\n").unwrap();
        let config = ServerConfig::resolve(flags.or(file)).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert!(!config.require_access_list);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let bad = |s: Settings| ServerConfig::resolve(s).unwrap_err().to_string();
        assert!(bad(Settings {
            listen: Some("nowhere".into()),
            ..Default::default()
        })
        .contains("listen"));
        assert!(bad(Settings {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        })
        .contains("public_url"));
        assert!(bad(Settings {
            database_url: Some("mysql://db/rewind".into()),
            ..Default::default()
        })
        .contains("database_url"));
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<Settings>("role = \"leader\"").is_err());
    }

    #[test]
    fn a_node_does_everything_unless_given_a_role() {
        let config = ServerConfig::resolve(Settings::default()).unwrap();
        assert_eq!(config.role, Role::All);
        let file: Settings = toml::from_str("role = \"worker\"\n").unwrap();
        let config = ServerConfig::resolve(file).unwrap();
        assert!(config.role.runs_background_work() && !config.role.serves_api());
        let api: Role = "api".parse().unwrap();
        assert!(api.serves_api() && !api.runs_background_work());
        assert!("leader".parse::<Role>().is_err());
    }

    #[test]
    fn leases_last_fifteen_seconds_unless_set_within_three_seconds_and_an_hour() {
        let config = ServerConfig::resolve(Settings::default()).unwrap();
        assert_eq!(config.lease, Duration::from_secs(15));
        let file: Settings = toml::from_str("lease_secs = 3\n").unwrap();
        assert_eq!(
            ServerConfig::resolve(file).unwrap().lease,
            Duration::from_secs(3)
        );
        for refused in [2, 3601] {
            let settings = Settings {
                lease_secs: Some(refused),
                ..Settings::default()
            };
            match ServerConfig::resolve(settings) {
                Err(ConfigError::Invalid { name, .. }) => assert_eq!(name, "lease_secs"),
                other => panic!("{refused}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_blocks_url_moves_only_the_blocks_into_the_bucket() {
        let file: Settings = toml::from_str(
            "blocks_url = \"s3://rewind/site-a\"\ns3_endpoint = \"http://127.0.0.1:8333/\"\n\
             s3_allow_http = true\ns3_region = \"eu-west-1\"\n",
        )
        .unwrap();
        let config = ServerConfig::resolve(file).unwrap();
        let BlocksConfig::S3(s3) = &config.storage.blocks else {
            panic!("not S3: {:?}", config.storage.blocks);
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("rewind", "site-a")
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert!(s3.allow_http && s3.credentials.is_none());
        assert_eq!(s3.retry_timeout, crate::blocks::s3::DEFAULT_RETRY_TIMEOUT);
        let shortened: Settings =
            toml::from_str("blocks_url = \"s3://rewind\"\ns3_retry_timeout_secs = 2\n").unwrap();
        let BlocksConfig::S3(s3) = ServerConfig::resolve(shortened).unwrap().storage.blocks else {
            panic!("not S3");
        };
        assert_eq!(s3.retry_timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            config.storage.meta,
            StorageConfig::embedded(Path::new(DEFAULT_DATA_DIR)).meta
        );
    }

    #[test]
    fn s3_settings_that_do_not_fit_are_refused_with_their_name() {
        let s3 = |extra: &str| format!("blocks_url = \"s3://rewind\"\n{extra}");
        for (text, name) in [
            ("s3_endpoint = \"http://x:1\"\n".to_owned(), "s3_endpoint"),
            ("blocks_url = \"file:///x\"\n".to_owned(), "blocks_url"),
            (s3("s3_endpoint = \"http://x:1\"\n"), "s3_endpoint"),
            (
                s3("s3_endpoint = \"x:1\"\ns3_allow_http = true\n"),
                "s3_endpoint",
            ),
            (s3("s3_access_key_id = \"AKID\"\n"), "s3_access_key_id"),
            (
                "s3_retry_timeout_secs = 5\n".to_owned(),
                "s3_retry_timeout_secs",
            ),
            (s3("s3_retry_timeout_secs = 0\n"), "s3_retry_timeout_secs"),
            (s3("s3_retry_timeout_secs = 301\n"), "s3_retry_timeout_secs"),
        ] {
            let settings: Settings = toml::from_str(&text).unwrap();
            let err = ServerConfig::resolve(settings).unwrap_err().to_string();
            assert!(err.contains(name), "{text}: {err}");
        }
    }

    #[test]
    fn a_database_url_moves_only_the_metadata_out_of_the_data_directory() {
        let file: Settings =
            toml::from_str("database_url = \"postgres://rewind@db/rewind\"\n").unwrap();
        let config = ServerConfig::resolve(file).unwrap();
        assert!(matches!(
            config.storage.meta,
            crate::storage::MetaConfig::Postgres { .. }
        ));
        assert_eq!(
            config.storage.blocks,
            StorageConfig::embedded(Path::new(DEFAULT_DATA_DIR)).blocks
        );
    }
}
