//! SQLite implementation of [`CheckpointMeta`].

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::oplog::ts_at;
use super::{corrupt, page_limit, SqliteMetaStore};
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::meta::checkpoints::CheckpointMeta;
use crate::meta::MetaResult;
use crate::model::{CheckpointPartRecord, CheckpointRecord, ClusterType, PageOf, PageRequest};

fn secs_at(row: &SqliteRow, name: &str) -> MetaResult<u32> {
    let v: i64 = row.try_get(name)?;
    u32::try_from(v).map_err(|_| corrupt(name, &v.to_string()))
}

fn checkpoint_from_row(row: &SqliteRow) -> MetaResult<CheckpointRecord> {
    let id: String = row.try_get("id")?;
    let group: String = row.try_get("project_id")?;
    let cluster: String = row.try_get("cluster_id")?;
    Ok(CheckpointRecord {
        id: CheckpointId::parse(&id).ok_or_else(|| corrupt("checkpoint id", &id))?,
        group_id: GroupId::parse(&group).ok_or_else(|| corrupt("group id", &group))?,
        cluster_id: ClusterId::parse(&cluster).ok_or_else(|| corrupt("cluster id", &cluster))?,
        timestamp: secs_at(row, "timestamp_secs")?,
        recorded: row.try_get("recorded")?,
        parts: Vec::new(),
    })
}

fn part_from_row(row: &SqliteRow) -> MetaResult<CheckpointPartRecord> {
    let type_name: String = row.try_get("type_name")?;
    Ok(CheckpointPartRecord {
        replica_set_name: row.try_get("replica_set_name")?,
        shard_name: row.try_get("shard_name")?,
        type_name: ClusterType::parse(&type_name).ok_or_else(|| corrupt("typeName", &type_name))?,
        token: ts_at(row, "token")?,
    })
}

impl SqliteMetaStore {
    /// The checkpoints `sql` selects (binding `binds` in order), each with its parts.
    async fn checkpoints_where(
        &self,
        sql: &str,
        binds: &[String],
    ) -> MetaResult<Vec<CheckpointRecord>> {
        // One read transaction, so the parts are those of the rows read.
        let mut tx = self.pool().begin().await?;
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        let mut found = rows
            .iter()
            .map(checkpoint_from_row)
            .collect::<MetaResult<Vec<_>>>()?;
        if found.is_empty() {
            return Ok(found);
        }
        let ids: Vec<String> = found.iter().map(|c| c.id.to_hex()).collect();
        let parts_sql = format!(
            "SELECT * FROM checkpoint_parts WHERE checkpoint_id IN ({}) ORDER BY checkpoint_id, position",
            vec!["?"; ids.len()].join(", ")
        );
        let mut parts_query = sqlx::query(&parts_sql);
        for id in &ids {
            parts_query = parts_query.bind(id);
        }
        let mut parts: HashMap<String, Vec<CheckpointPartRecord>> = HashMap::new();
        for row in parts_query.fetch_all(&mut *tx).await? {
            let owner: String = row.try_get("checkpoint_id")?;
            parts.entry(owner).or_default().push(part_from_row(&row)?);
        }
        tx.commit().await?;
        for checkpoint in &mut found {
            checkpoint.parts = parts.remove(&checkpoint.id.to_hex()).unwrap_or_default();
        }
        Ok(found)
    }
}

#[async_trait]
impl CheckpointMeta for SqliteMetaStore {
    async fn insert_checkpoint(&self, c: &CheckpointRecord) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO checkpoints (id, project_id, cluster_id, timestamp_secs, recorded) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (cluster_id, timestamp_secs) DO NOTHING",
        )
        .bind(c.id.to_hex())
        .bind(c.group_id.to_hex())
        .bind(c.cluster_id.to_hex())
        .bind(i64::from(c.timestamp))
        .bind(c.recorded)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        for (position, part) in c.parts.iter().enumerate() {
            sqlx::query(
                "INSERT INTO checkpoint_parts (checkpoint_id, position, replica_set_name, shard_name, type_name, \
                 token_secs, token_inc) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(c.id.to_hex())
            .bind(position as i64)
            .bind(&part.replica_set_name)
            .bind(&part.shard_name)
            .bind(part.type_name.as_str())
            .bind(i64::from(part.token.secs))
            .bind(i64::from(part.token.inc))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_checkpoints(
        &self,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> MetaResult<PageOf<CheckpointRecord>> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkpoints WHERE project_id = ? AND cluster_id = ?",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .fetch_one(self.pool())
        .await?;
        let (limit, offset) = page_limit(page);
        let items = self
            .checkpoints_where(
                &format!(
                    "SELECT * FROM checkpoints WHERE project_id = ? AND cluster_id = ? \
                     ORDER BY timestamp_secs DESC LIMIT {limit} OFFSET {offset}"
                ),
                &[group.to_hex(), cluster.to_hex()],
            )
            .await?;
        Ok(PageOf {
            items,
            total: total.max(0) as u64,
        })
    }

    async fn get_checkpoint(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: CheckpointId,
    ) -> MetaResult<Option<CheckpointRecord>> {
        let found = self
            .checkpoints_where(
                "SELECT * FROM checkpoints WHERE project_id = ? AND cluster_id = ? AND id = ?",
                &[group.to_hex(), cluster.to_hex(), id.to_hex()],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn checkpoint_timestamps(&self, cluster: ClusterId) -> MetaResult<Vec<u32>> {
        let rows = sqlx::query(
            "SELECT timestamp_secs FROM checkpoints WHERE cluster_id = ? ORDER BY timestamp_secs",
        )
        .bind(cluster.to_hex())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| secs_at(row, "timestamp_secs"))
            .collect()
    }

    async fn checkpointed_clusters(&self) -> MetaResult<Vec<(GroupId, ClusterId)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id, cluster_id FROM checkpoints ORDER BY cluster_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let group: String = row.try_get("project_id")?;
                let cluster: String = row.try_get("cluster_id")?;
                Ok((
                    GroupId::parse(&group).ok_or_else(|| corrupt("group id", &group))?,
                    ClusterId::parse(&cluster).ok_or_else(|| corrupt("cluster id", &cluster))?,
                ))
            })
            .collect()
    }

    async fn delete_checkpoints_before(&self, cluster: ClusterId, before: u32) -> MetaResult<u64> {
        // Their parts go with them (ON DELETE CASCADE; the store turns foreign keys on).
        let deleted =
            sqlx::query("DELETE FROM checkpoints WHERE cluster_id = ? AND timestamp_secs < ?")
                .bind(cluster.to_hex())
                .bind(i64::from(before))
                .execute(self.writer())
                .await?
                .rows_affected();
        Ok(deleted)
    }
}

// The contracts of `CheckpointMeta` are checked for every backend by the conformance suite;
// what is left here is how this backend keeps the parts.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OplogTs;

    #[tokio::test]
    async fn a_deleted_checkpoint_takes_its_part_rows_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, group, cluster) = crate::meta::sqlite::test_support::store_with_cluster(
            dir.path(),
            "SHARDED_REPLICA_SET",
        )
        .await;
        let checkpoint = |timestamp: u32| CheckpointRecord {
            id: CheckpointId::generate(),
            group_id: group,
            cluster_id: cluster,
            timestamp,
            recorded: i64::from(timestamp),
            parts: ["s-shard-0", "s-shard-1"]
                .iter()
                .map(|name| CheckpointPartRecord {
                    replica_set_name: (*name).to_owned(),
                    shard_name: Some((*name).to_owned()),
                    type_name: ClusterType::ReplicaSet,
                    token: OplogTs {
                        secs: timestamp - 1,
                        inc: 1,
                    },
                })
                .collect(),
        };
        for at in [900, 1_800] {
            assert!(store.insert_checkpoint(&checkpoint(at)).await.unwrap());
        }
        assert_eq!(
            store
                .delete_checkpoints_before(cluster, 1_800)
                .await
                .unwrap(),
            1
        );
        let parts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkpoint_parts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            parts, 2,
            "the deleted checkpoint's parts went with it (ON DELETE CASCADE)"
        );
    }
}
