//! The agent's TOML configuration file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Seconds a poll waits on the server when there is no work.
pub const DEFAULT_POLL_WAIT_SECS: u64 = 20;

/// One `mongod` on this host: where its data lives and how to stop and start it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member's name as the replica set knows it, e.g. `db1.example.net:27017`.
    pub name: String,
    pub dbpath: PathBuf,
    /// Shell command (run with `sh -c`) that stops the member and returns once it is down.
    pub stop_command: String,
    /// Shell command that starts the member and returns once it is up.
    pub start_command: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the Rewind server.
    pub server: String,
    pub public_key: String,
    pub private_key: String,
    /// The target project and cluster (for a sharded cluster: the whole cluster).
    pub group_id: String,
    pub cluster_id: String,
    /// The replica set this host's members belong to (a shard or config server's name
    /// for a sharded cluster).
    pub replica_set: String,
    /// Stable name of this agent; keep it across restarts so the agent resumes its claims.
    pub agent_id: String,
    #[serde(default)]
    pub poll_wait_secs: Option<u64>,
    pub members: Vec<MemberConfig>,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: AgentConfig = toml::from_str(&text)
            .with_context(|| format!("invalid agent config {}", path.display()))?;
        if config.members.is_empty() {
            bail!("the agent config names no members");
        }
        for m in &config.members {
            if m.dbpath.file_name().is_none() {
                bail!(
                    "member {}: dbpath {} has no final component",
                    m.name,
                    m.dbpath.display()
                );
            }
        }
        Ok(config)
    }
}
