//! Registered clusters: replica sets, and sharded clusters with their shards and config server.

use super::projects::validate_name;
use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId};
use crate::meta::MetaError;
use crate::model::{ClusterRecord, ClusterType, PageOf, PageRequest};

/// FCV given to a cluster registered without one.
pub const DEFAULT_FCV: &str = "7.0";
/// Most shards one registration may declare.
pub const MAX_SHARDS: u32 = 64;

/// What `rewind cluster add` asks for.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub name: String,
    /// `None` for a replica set; `Some(n)` for a sharded cluster with `n` shards.
    pub shards: Option<u32>,
    pub fcv: Option<String>,
}

/// Parses a feature compatibility version `MAJOR.MINOR` into a comparable pair.
pub fn parse_fcv(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    let ok = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(major) || !ok(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Services {
    /// Registers a cluster; for a sharded cluster also its shards (`{name}-shard-{i}`) and
    /// config server replica set (`{name}-config-0`), as Cloud Manager names them.
    pub async fn register_cluster(
        &self,
        principal: &Principal,
        group: GroupId,
        spec: &ClusterSpec,
    ) -> DomainResult<Vec<ClusterRecord>> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        validate_name("clusterName", &spec.name)?;
        let fcv = spec.fcv.clone().unwrap_or_else(|| DEFAULT_FCV.to_owned());
        if parse_fcv(&fcv).is_none() {
            return Err(DomainError::rejected(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute featureCompatibilityVersion specified: {fcv:?} is not MAJOR.MINOR."),
                vec!["featureCompatibilityVersion".into()],
            ));
        }
        if let Some(n) = spec.shards {
            if n == 0 || n > MAX_SHARDS {
                return Err(DomainError::rejected(
                    ErrorCode::InvalidAttribute,
                    format!("Invalid attribute shards specified: a sharded cluster has 1 to {MAX_SHARDS} shards."),
                    vec!["shards".into()],
                ));
            }
        }
        let now = self.clock.now();
        let row = |type_name, rs: Option<String>, shard: Option<String>, parent| ClusterRecord {
            id: ClusterId::generate(),
            group_id: group,
            cluster_name: spec.name.clone(),
            type_name,
            replica_set_name: rs,
            shard_name: shard,
            parent_id: parent,
            fcv: fcv.clone(),
            last_heartbeat: None,
            created: now,
        };
        let rows = match spec.shards {
            None => vec![row(
                ClusterType::ReplicaSet,
                Some(spec.name.clone()),
                None,
                None,
            )],
            Some(n) => {
                let top = row(ClusterType::ShardedReplicaSet, None, None, None);
                let parent = Some(top.id);
                let mut rows = vec![top];
                for i in 0..n {
                    let shard = format!("{}-shard-{i}", spec.name);
                    rows.push(row(
                        ClusterType::ReplicaSet,
                        Some(shard.clone()),
                        Some(shard),
                        parent,
                    ));
                }
                let config = format!("{}-config-0", spec.name);
                rows.push(row(
                    ClusterType::ConfigServerReplicaSet,
                    Some(config),
                    None,
                    parent,
                ));
                rows
            }
        };
        let inserted = self.meta.insert_clusters(&rows).await;
        self.clusters_changed(group);
        match inserted {
            Ok(()) => Ok(rows),
            Err(MetaError::Conflict(_)) => Err(DomainError::rejected(
                ErrorCode::DuplicateClusterName,
                format!(
                    "A cluster named \"{}\" already exists in group {group}.",
                    spec.name
                ),
                vec![spec.name.clone()],
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_clusters(
        &self,
        principal: &Principal,
        group: GroupId,
        page: PageRequest,
    ) -> DomainResult<PageOf<ClusterRecord>> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let all = self.cached_clusters(group).await?;
        let items = all
            .iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        Ok(PageOf {
            items,
            total: all.len() as u64,
        })
    }

    pub async fn get_cluster(
        &self,
        principal: &Principal,
        group: GroupId,
        id: ClusterId,
    ) -> DomainResult<ClusterRecord> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        self.find_cluster(group, id).await
    }

    /// A cluster followed by its shards and config server (just itself for a replica set).
    pub async fn get_cluster_members(
        &self,
        principal: &Principal,
        group: GroupId,
        id: ClusterId,
    ) -> DomainResult<Vec<ClusterRecord>> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        self.members_of(group, id).await
    }

    /// A cluster followed by its shards and config server, from the metadata cache;
    /// `CLUSTER_NOT_FOUND` when the project has no such cluster.
    pub async fn members_of(
        &self,
        group: GroupId,
        id: ClusterId,
    ) -> DomainResult<Vec<ClusterRecord>> {
        let cluster = self.find_cluster(group, id).await?;
        let all = self.cached_clusters(group).await?;
        let mut members: Vec<ClusterRecord> = all
            .iter()
            .filter(|c| c.id == id || c.parent_id == Some(id))
            .cloned()
            .collect();
        members.sort_by_key(|m| m.id != cluster.id);
        Ok(members)
    }

    /// Loads a cluster of a project the caller was already authorized for.
    ///
    /// A cluster missing from the cached list is looked for once more in the store before
    /// it is called missing: another node may have registered it since the list was cached,
    /// and a client's next request (an agent's first heartbeat after its registration) may
    /// reach any node. Misses are rare, so the second read costs little.
    pub async fn find_cluster(&self, group: GroupId, id: ClusterId) -> DomainResult<ClusterRecord> {
        let cached = self.cached_clusters(group).await?;
        if let Some(cluster) = cached.iter().find(|c| c.id == id) {
            return Ok(cluster.clone());
        }
        self.clusters_changed(group);
        let all = self.cached_clusters(group).await?;
        all.iter().find(|c| c.id == id).cloned().ok_or_else(|| {
            DomainError::rejected(
                ErrorCode::ClusterNotFound,
                format!("No cluster with ID {id} exists in group {group}."),
                vec![id.to_hex(), group.to_hex()],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_fcv;

    #[test]
    fn fcv_must_be_major_dot_minor() {
        assert_eq!(parse_fcv("4.2"), Some((4, 2)));
        assert_eq!(parse_fcv("10.0"), Some((10, 0)));
        for bad in ["", "4", "4.", ".2", "4.2.1", "a.b", "-4.2", "9999.1"] {
            assert_eq!(parse_fcv(bad), None, "{bad}");
        }
    }
}
