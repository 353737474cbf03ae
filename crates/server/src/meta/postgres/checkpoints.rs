//! PostgreSQL implementation of [`CheckpointMeta`].

use async_trait::async_trait;

use super::PostgresMetaStore;
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::meta::checkpoints::CheckpointMeta;
use crate::meta::rows::{
    attach_checkpoint_parts, checkpoint_from_row, group_and_cluster_from_row, page_limit, Columns,
};
use crate::meta::MetaResult;
use crate::model::{CheckpointRecord, PageOf, PageRequest};

impl PostgresMetaStore {
    /// The checkpoints `sql` selects (binding `binds` in order), each with its parts.
    async fn checkpoints_where(
        &self,
        sql: &str,
        binds: &[String],
    ) -> MetaResult<Vec<CheckpointRecord>> {
        // One transaction that sees one snapshot of the database, so the parts are those of
        // the rows read.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let query = binds
            .iter()
            .fold(sqlx::query(sql), |query, value| query.bind(value));
        let rows = query.fetch_all(&mut *tx).await?;
        let mut found = rows
            .iter()
            .map(checkpoint_from_row)
            .collect::<MetaResult<Vec<_>>>()?;
        if found.is_empty() {
            return Ok(found);
        }
        let ids: Vec<String> = found.iter().map(|c| c.id.to_hex()).collect();
        let part_rows = sqlx::query(
            "SELECT * FROM checkpoint_parts WHERE checkpoint_id = ANY($1) ORDER BY checkpoint_id, position",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        attach_checkpoint_parts(&mut found, part_rows)?;
        Ok(found)
    }
}

#[async_trait]
impl CheckpointMeta for PostgresMetaStore {
    async fn insert_checkpoint(&self, c: &CheckpointRecord) -> MetaResult<bool> {
        let mut tx = self.pool().begin().await?;
        // A racing insert of the same moment waits for this one to commit, then inserts
        // nothing.
        let inserted = sqlx::query(
            "INSERT INTO checkpoints (id, project_id, cluster_id, timestamp_secs, recorded) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster_id, timestamp_secs) DO NOTHING",
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
        let names: Vec<&str> = c
            .parts
            .iter()
            .map(|p| p.replica_set_name.as_str())
            .collect();
        let shards: Vec<Option<&str>> = c.parts.iter().map(|p| p.shard_name.as_deref()).collect();
        let types: Vec<&str> = c.parts.iter().map(|p| p.type_name.as_str()).collect();
        let secs: Vec<i64> = c.parts.iter().map(|p| i64::from(p.token.secs)).collect();
        let incs: Vec<i64> = c.parts.iter().map(|p| i64::from(p.token.inc)).collect();
        // Positions count from 0, in the order the parts were given.
        sqlx::query(
            "INSERT INTO checkpoint_parts (checkpoint_id, position, replica_set_name, shard_name, type_name, \
             token_secs, token_inc) \
             SELECT $1, n - 1, name, shard, type_name, secs, inc \
             FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[]) \
             WITH ORDINALITY AS p(name, shard, type_name, secs, inc, n)",
        )
        .bind(c.id.to_hex())
        .bind(names)
        .bind(shards)
        .bind(types)
        .bind(secs)
        .bind(incs)
        .execute(&mut *tx)
        .await?;
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
            "SELECT COUNT(*) FROM checkpoints WHERE project_id = $1 AND cluster_id = $2",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .fetch_one(self.pool())
        .await?;
        let (limit, offset) = page_limit(page);
        let items = self
            .checkpoints_where(
                &format!(
                    "SELECT * FROM checkpoints WHERE project_id = $1 AND cluster_id = $2 \
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
                "SELECT * FROM checkpoints WHERE project_id = $1 AND cluster_id = $2 AND id = $3",
                &[group.to_hex(), cluster.to_hex(), id.to_hex()],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn checkpoint_timestamps(&self, cluster: ClusterId) -> MetaResult<Vec<u32>> {
        let rows = sqlx::query(
            "SELECT timestamp_secs FROM checkpoints WHERE cluster_id = $1 ORDER BY timestamp_secs",
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
        // Their parts go with them (ON DELETE CASCADE).
        let deleted =
            sqlx::query("DELETE FROM checkpoints WHERE cluster_id = $1 AND timestamp_secs < $2")
                .bind(cluster.to_hex())
                .bind(i64::from(before))
                .execute(self.pool())
                .await?
                .rows_affected();
        Ok(deleted)
    }
}
