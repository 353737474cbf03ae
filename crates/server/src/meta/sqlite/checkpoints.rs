//! SQLite implementation of [`CheckpointMeta`].

use async_trait::async_trait;

use super::SqliteMetaStore;
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::meta::checkpoints::CheckpointMeta;
use crate::meta::rows::{
    attach_checkpoint_parts, checkpoint_from_row, group_and_cluster_from_row, page_limit, Columns,
};
use crate::meta::MetaResult;
use crate::model::{CheckpointRecord, PageOf, PageRequest};

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
        let part_rows = parts_query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        attach_checkpoint_parts(&mut found, part_rows)?;
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
        rows.iter().map(|row| row.small("timestamp_secs")).collect()
    }

    async fn checkpointed_clusters(&self) -> MetaResult<Vec<(GroupId, ClusterId)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id, cluster_id FROM checkpoints ORDER BY cluster_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(group_and_cluster_from_row).collect()
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
    use crate::model::{CheckpointPartRecord, ClusterType, OplogTs};

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
