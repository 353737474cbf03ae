//! PostgreSQL implementation of [`OplogMeta`].

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresMetaStore, OPLOG_STREAM_LOCKS};
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::meta::oplog::{CollectableSlice, OplogCommit, OplogMeta};
use crate::meta::rows::{
    collectable_slice_from_row, group_and_stream_from_row, range_from_row, slice_from_row,
    summaries_from_rows, BindOplog, Columns,
};
use crate::meta::MetaResult;
use crate::model::{
    OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs, UnixSeconds,
};

/// Holds the stream's advisory lock until the transaction ends, so that what changes the
/// stream's ranges (a push, retention) reads them and replaces them with no other change in
/// between. A row lock would not do: the first push of a stream has no row to lock.
async fn lock_stream(tx: &mut PgConnection, stream: &OplogStream) -> MetaResult<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2::TEXT || '/' || $3::TEXT))",
    )
    .bind(OPLOG_STREAM_LOCKS)
    .bind_stream(stream)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn ranges_of(conn: &mut PgConnection, stream: &OplogStream) -> MetaResult<Vec<OplogRange>> {
    let rows = sqlx::query(
        "SELECT first_secs, first_inc, last_secs, last_inc FROM oplog_ranges \
         WHERE cluster_id = $1 AND replica_set_name = $2 ORDER BY first_secs, first_inc",
    )
    .bind_stream(stream)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(range_from_row).collect()
}

async fn replace_ranges(
    conn: &mut PgConnection,
    stream: &OplogStream,
    ranges: &[OplogRange],
) -> MetaResult<()> {
    sqlx::query("DELETE FROM oplog_ranges WHERE cluster_id = $1 AND replica_set_name = $2")
        .bind_stream(stream)
        .execute(&mut *conn)
        .await?;
    let column = |pick: fn(&OplogRange) -> u32| -> Vec<i64> {
        ranges.iter().map(|r| i64::from(pick(r))).collect()
    };
    sqlx::query(
        "INSERT INTO oplog_ranges (cluster_id, replica_set_name, first_secs, first_inc, last_secs, last_inc) \
         SELECT $1, $2, * FROM UNNEST($3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[])",
    )
    .bind_stream(stream)
    .bind(column(|r| r.first.secs))
    .bind(column(|r| r.first.inc))
    .bind(column(|r| r.last.secs))
    .bind(column(|r| r.last.inc))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl OplogMeta for PostgresMetaStore {
    async fn oplog_ranges(&self, stream: &OplogStream) -> MetaResult<Vec<OplogRange>> {
        let mut conn = self.pool().acquire().await?;
        ranges_of(&mut conn, stream).await
    }

    async fn oplog_slices(
        &self,
        stream: &OplogStream,
        from: OplogTs,
        to: OplogTs,
    ) -> MetaResult<Vec<OplogSliceRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM oplog_slices WHERE cluster_id = $1 AND replica_set_name = $2 AND dropped_at IS NULL \
             AND (first_secs, first_inc) <= ($3, $4) AND (last_secs, last_inc) >= ($5, $6) \
             ORDER BY first_secs, first_inc",
        )
        .bind_stream(stream)
        .bind_ts(to)
        .bind_ts(from)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(slice_from_row).collect()
    }

    async fn oplog_summaries(&self, cluster: ClusterId) -> MetaResult<Vec<OplogStreamSummary>> {
        // One snapshot of the database for both reads, so the totals and the ranges are of
        // the same moment.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        // SUM of BIGINT is NUMERIC in PostgreSQL; the totals fit a BIGINT.
        let totals = sqlx::query(
            "SELECT replica_set_name, COUNT(*) AS slices, SUM(entry_count)::BIGINT AS entries, \
             SUM(raw_bytes)::BIGINT AS raw_bytes, SUM(stored_bytes)::BIGINT AS stored_bytes FROM oplog_slices \
             WHERE cluster_id = $1 AND dropped_at IS NULL GROUP BY replica_set_name ORDER BY replica_set_name",
        )
        .bind(cluster.to_hex())
        .fetch_all(&mut *tx)
        .await?;
        let ranges = sqlx::query(
            "SELECT * FROM oplog_ranges WHERE cluster_id = $1 ORDER BY replica_set_name, first_secs, first_inc",
        )
        .bind(cluster.to_hex())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        summaries_from_rows(&totals, &ranges)
    }

    async fn record_pending_slices(
        &self,
        stream: &OplogStream,
        ids: &[OplogSliceId],
        now: UnixSeconds,
    ) -> MetaResult<()> {
        let ids: Vec<String> = ids.iter().map(OplogSliceId::to_hex).collect();
        sqlx::query(
            "INSERT INTO oplog_pending_slices (id, cluster_id, replica_set_name, recorded) \
             SELECT id, $1, $2, $3 FROM UNNEST($4::TEXT[]) AS p(id)",
        )
        .bind_stream(stream)
        .bind(now)
        .bind(ids)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn commit_oplog_push(
        &self,
        stream: &OplogStream,
        commit: &OplogCommit,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let mut tx = self.pool().begin().await?;
        lock_stream(&mut tx, stream).await?;
        if ranges_of(&mut tx, stream).await? != commit.expected_ranges {
            return Ok(false);
        }
        // Retire first: a re-cut slice starts where the retired one did, and only one live
        // slice may start at a timestamp.
        let retired: Vec<String> = commit.retired.iter().map(OplogSliceId::to_hex).collect();
        let done = sqlx::query(
            "UPDATE oplog_slices SET dropped_at = $1 WHERE id = ANY($2) AND dropped_at IS NULL",
        )
        .bind(now)
        .bind(&retired)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() < retired.len() as u64 {
            return Ok(false);
        }
        for s in &commit.slices {
            sqlx::query(
                "INSERT INTO oplog_slices (id, cluster_id, replica_set_name, first_secs, first_inc, last_secs, \
                 last_inc, entry_count, raw_bytes, stored_bytes, recorded, dropped_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
            )
            .bind(s.id.to_hex())
            .bind_stream(stream)
            .bind_ts(s.first)
            .bind_ts(s.last)
            .bind(s.entry_count as i64)
            .bind(s.raw_bytes as i64)
            .bind(s.stored_bytes as i64)
            .bind(s.recorded)
            .execute(&mut *tx)
            .await?;
        }
        let committed: Vec<String> = commit.slices.iter().map(|s| s.id.to_hex()).collect();
        // Every pending record must still be there and not being deleted: a collector that
        // found the push abandoned may be deleting its objects.
        let cleared = sqlx::query(
            "DELETE FROM oplog_pending_slices WHERE id = ANY($1) AND deleting_since IS NULL",
        )
        .bind(&committed)
        .execute(&mut *tx)
        .await?;
        if cleared.rows_affected() < committed.len() as u64 {
            return Ok(false);
        }
        replace_ranges(&mut tx, stream, &commit.ranges).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn oplog_streams(&self) -> MetaResult<Vec<(GroupId, OplogStream)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT r.cluster_id, r.replica_set_name, c.project_id FROM oplog_ranges r \
             JOIN clusters c ON c.id = r.cluster_id ORDER BY r.cluster_id, r.replica_set_name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(group_and_stream_from_row).collect()
    }

    async fn retire_oplog_before(
        &self,
        stream: &OplogStream,
        cutoff: OplogTs,
        now: UnixSeconds,
    ) -> MetaResult<u64> {
        let mut tx = self.pool().begin().await?;
        lock_stream(&mut tx, stream).await?;
        let ranges = ranges_of(&mut tx, stream).await?;
        let inside_a_range = ranges.iter().any(|r| r.first <= cutoff && cutoff <= r.last);
        // Inside a range, the slice holding `cutoff` (the last one starting at or before it)
        // stays; in a gap, nothing before `cutoff` proves anything and all of it goes.
        let keep_from = if inside_a_range {
            let holding = sqlx::query(
                "SELECT first_secs, first_inc FROM oplog_slices WHERE cluster_id = $1 AND replica_set_name = $2 \
                 AND dropped_at IS NULL AND (first_secs, first_inc) <= ($3, $4) \
                 ORDER BY first_secs DESC, first_inc DESC LIMIT 1",
            )
            .bind_stream(stream)
            .bind_ts(cutoff)
            .fetch_one(&mut *tx)
            .await?;
            holding.ts("first")?
        } else {
            cutoff
        };
        let retired = sqlx::query(
            "UPDATE oplog_slices SET dropped_at = $1 WHERE cluster_id = $2 AND replica_set_name = $3 \
             AND dropped_at IS NULL AND (last_secs, last_inc) < ($4, $5)",
        )
        .bind(now)
        .bind_stream(stream)
        .bind_ts(keep_from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retired == 0 {
            return Ok(0);
        }
        // Each range now starts at its first live slice; a range with none is gone.
        let mut trimmed = Vec::new();
        for range in ranges {
            let first = sqlx::query(
                "SELECT first_secs, first_inc FROM oplog_slices WHERE cluster_id = $1 AND replica_set_name = $2 \
                 AND dropped_at IS NULL AND (first_secs, first_inc) >= ($3, $4) AND (last_secs, last_inc) <= ($5, $6) \
                 ORDER BY first_secs, first_inc LIMIT 1",
            )
            .bind_stream(stream)
            .bind_ts(range.first)
            .bind_ts(range.last)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = first {
                trimmed.push(OplogRange {
                    first: row.ts("first")?,
                    last: range.last,
                });
            }
        }
        replace_ranges(&mut tx, stream, &trimmed).await?;
        tx.commit().await?;
        Ok(retired)
    }

    async fn collectable_oplog_slices(
        &self,
        before: UnixSeconds,
        limit: u32,
    ) -> MetaResult<Vec<CollectableSlice>> {
        let rows = sqlx::query(
            "SELECT id, cluster_id, replica_set_name FROM oplog_slices WHERE dropped_at IS NOT NULL AND dropped_at < $1 \
             UNION ALL \
             SELECT id, cluster_id, replica_set_name FROM oplog_pending_slices WHERE recorded < $1 \
             LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(collectable_slice_from_row).collect()
    }

    async fn start_slice_deletion(
        &self,
        id: OplogSliceId,
        before: UnixSeconds,
        now: UnixSeconds,
    ) -> MetaResult<bool> {
        let pending = sqlx::query(
            "UPDATE oplog_pending_slices SET deleting_since = COALESCE(deleting_since, $1) \
             WHERE id = $2 AND recorded < $3",
        )
        .bind(now)
        .bind(id.to_hex())
        .bind(before)
        .execute(self.pool())
        .await?;
        if pending.rows_affected() > 0 {
            return Ok(true);
        }
        let retired: Option<String> = sqlx::query_scalar(
            "SELECT id FROM oplog_slices WHERE id = $1 AND dropped_at IS NOT NULL AND dropped_at < $2",
        )
        .bind(id.to_hex())
        .bind(before)
        .fetch_optional(self.pool())
        .await?;
        Ok(retired.is_some())
    }

    async fn forget_oplog_slice(&self, id: OplogSliceId) -> MetaResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM oplog_slices WHERE id = $1 AND dropped_at IS NOT NULL")
            .bind(id.to_hex())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oplog_pending_slices WHERE id = $1")
            .bind(id.to_hex())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
