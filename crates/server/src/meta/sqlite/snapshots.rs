//! SQLite implementation of [`SnapshotMeta`].

use async_trait::async_trait;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row};

use super::SqliteMetaStore;
use crate::blocks::{ChunkId, PackId};
use crate::ids::{ClaimToken, ClusterId, GroupId, SnapshotId};
use crate::meta::rows::{
    attach_snapshot_parts, build_insert, chunk_from_row, claim_token, corrupt, new_chunk_flags,
    page_limit, placement_columns, snapshot_from_row, snapshot_part_row, snapshot_row,
    SNAPSHOT_INSERT, SNAPSHOT_PART_INSERT,
};
use crate::meta::snapshots::{ForgottenChunks, PackDeletionRule, PartCommit, SnapshotMeta};
use crate::meta::{MetaError, MetaResult};
use crate::model::{ChunkInfo, PageOf, PageRequest, PartStats, SnapshotRecord, UnixSeconds};

/// Most ids bound into one `IN (...)` list; SQLite's default limit is 32766 variables.
const IDS_PER_STATEMENT: usize = 500;
/// Chunk rows inserted by one statement (8 variables each).
const CHUNK_ROWS_PER_INSERT: usize = 200;

/// `?, ?, …` with `n` placeholders.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `ids` as hex arguments, appended to `args` (which carries any placeholders before
/// the id list).
fn with_ids<'q>(mut args: SqliteArguments<'q>, ids: &[ChunkId]) -> MetaResult<SqliteArguments<'q>> {
    for id in ids {
        args.add(id.to_hex())
            .map_err(|e| MetaError::Backend(e.to_string()))?;
    }
    Ok(args)
}

/// Just `ids` as hex arguments.
fn id_arguments<'q>(ids: &[ChunkId]) -> MetaResult<SqliteArguments<'q>> {
    with_ids(SqliteArguments::default(), ids)
}

impl SqliteMetaStore {
    /// The indexed chunks among `ids`, each with its reference count.
    async fn select_chunks(&self, ids: &[ChunkId]) -> MetaResult<Vec<(ChunkInfo, i64)>> {
        let mut found = Vec::with_capacity(ids.len());
        for group in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT * FROM chunks WHERE id IN ({})",
                placeholders(group.len())
            );
            for row in sqlx::query_with(&sql, id_arguments(group)?)
                .fetch_all(self.pool())
                .await?
            {
                found.push((chunk_from_row(&row)?, row.try_get("refcount")?));
            }
        }
        Ok(found)
    }

    /// The snapshots `sql` selects (binding `binds` in order), each with its parts: read
    /// in one query per [`PARTS_PER_QUERY`] snapshots, not one per snapshot, since a
    /// cluster's whole history is read at once (its restorable ranges).
    async fn snapshots_where(
        &self,
        sql: &str,
        binds: &[String],
    ) -> MetaResult<Vec<SnapshotRecord>> {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut found = rows
            .iter()
            .map(snapshot_from_row)
            .collect::<MetaResult<Vec<_>>>()?;
        for batch in found.chunks_mut(PARTS_PER_QUERY) {
            let placeholders = vec!["?"; batch.len()].join(", ");
            let sql = format!(
                "SELECT * FROM snapshot_parts WHERE snapshot_id IN ({placeholders}) \
                 ORDER BY snapshot_id, cluster_id, replica_set_name"
            );
            let mut parts = sqlx::query(&sql);
            for snapshot in batch.iter() {
                parts = parts.bind(snapshot.id.to_hex());
            }
            let part_rows = parts.fetch_all(self.pool()).await?;
            attach_snapshot_parts(batch.iter_mut(), part_rows)?;
        }
        Ok(found)
    }
}

/// Snapshots whose parts one query reads: well below SQLite's limit on bound values.
const PARTS_PER_QUERY: usize = 500;

#[async_trait]
impl SnapshotMeta for SqliteMetaStore {
    async fn insert_snapshot(&self, s: &SnapshotRecord) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        build_insert::<sqlx::Sqlite>(SNAPSHOT_INSERT, [snapshot_row(s)])
            .build()
            .execute(&mut *tx)
            .await?;
        if !s.parts.is_empty() {
            let parts = s.parts.iter().map(|p| snapshot_part_row(s.id, p));
            build_insert::<sqlx::Sqlite>(SNAPSHOT_PART_INSERT, parts)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_snapshot(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> MetaResult<Option<SnapshotRecord>> {
        let found = self
            .snapshots_where(
                "SELECT * FROM snapshots WHERE project_id = ? AND cluster_id = ? AND id = ?",
                &[group.to_hex(), cluster.to_hex(), id.to_hex()],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn list_snapshots(
        &self,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> MetaResult<PageOf<SnapshotRecord>> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshots WHERE project_id = ? AND cluster_id = ? AND deleted_at IS NULL",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .fetch_one(self.pool())
        .await?;
        let (limit, offset) = page_limit(page);
        let items = self
            .snapshots_where(
                &format!(
                    "SELECT * FROM snapshots WHERE project_id = ? AND cluster_id = ? AND deleted_at IS NULL \
                     ORDER BY created_secs DESC, created_inc DESC, id DESC LIMIT {limit} OFFSET {offset}"
                ),
                &[group.to_hex(), cluster.to_hex()],
            )
            .await?;
        Ok(PageOf {
            items,
            total: total as u64,
        })
    }

    async fn set_snapshot_retention(
        &self,
        id: SnapshotId,
        expires: Option<UnixSeconds>,
        do_not_delete: bool,
    ) -> MetaResult<()> {
        sqlx::query("UPDATE snapshots SET expires = ?, do_not_delete = ? WHERE id = ?")
            .bind(expires)
            .bind(do_not_delete)
            .bind(id.to_hex())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn mark_snapshot_deleted(&self, id: SnapshotId, at: UnixSeconds) -> MetaResult<bool> {
        let done =
            sqlx::query("UPDATE snapshots SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
                .bind(at)
                .bind(id.to_hex())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn commit_part(
        &self,
        snapshot: SnapshotId,
        replica_set: &str,
        stats: PartStats,
        distinct_chunks: &[ChunkId],
        manifest_name: &str,
    ) -> MetaResult<PartCommit> {
        let mut tx = self.begin_write().await?;
        let committed: Option<bool> = sqlx::query_scalar(
            "SELECT committed FROM snapshot_parts WHERE snapshot_id = ? AND replica_set_name = ?",
        )
        .bind(snapshot.to_hex())
        .bind(replica_set)
        .fetch_optional(&mut *tx)
        .await?;
        if committed != Some(false) {
            return Ok(PartCommit::AlreadyCommitted);
        }
        // `distinct_chunks` holds no duplicates, so a group updates as many rows as it has
        // ids unless one of them is not indexed.
        for group in distinct_chunks.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE chunks SET refcount = refcount + 1, unreferenced_since = NULL WHERE id IN ({})",
                placeholders(group.len())
            );
            let done = sqlx::query_with(&sql, id_arguments(group)?)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() < group.len() as u64 {
                let sql = format!(
                    "SELECT id FROM chunks WHERE id IN ({})",
                    placeholders(group.len())
                );
                let found: std::collections::HashSet<String> =
                    sqlx::query_scalar_with(&sql, id_arguments(group)?)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .collect();
                if let Some(unknown) = group.iter().find(|id| !found.contains(&id.to_hex())) {
                    return Ok(PartCommit::UnknownChunk(*unknown));
                }
            }
        }
        sqlx::query(
            "UPDATE snapshot_parts SET committed = TRUE, manifest_name = ?, file_count = ?, file_size_bytes = ?, \
             data_size_bytes = ?, storage_size_bytes = ? WHERE snapshot_id = ? AND replica_set_name = ?",
        )
        .bind(manifest_name)
        .bind(stats.file_count as i64)
        .bind(stats.file_size_bytes as i64)
        .bind(stats.data_size_bytes as i64)
        .bind(stats.storage_size_bytes as i64)
        .bind(snapshot.to_hex())
        .bind(replica_set)
        .execute(&mut *tx)
        .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM snapshot_parts WHERE snapshot_id = ? AND committed = FALSE",
        )
        .bind(snapshot.to_hex())
        .fetch_one(&mut *tx)
        .await?;
        if pending == 0 {
            sqlx::query("UPDATE snapshots SET complete = TRUE WHERE id = ?")
                .bind(snapshot.to_hex())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(PartCommit::Committed {
            complete: pending == 0,
        })
    }

    async fn claim_pack(
        &self,
        pack: PackId,
        pack_bytes: u64,
        token: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<Option<ClaimToken>> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO packs (id, bytes, created, state, claim_token, claimed_at) \
             VALUES (?, ?, ?, 'writing', ?, ?) \
             ON CONFLICT (id) DO UPDATE SET claimed_at = excluded.claimed_at WHERE packs.state <> 'deleting' \
             RETURNING claim_token",
        )
        .bind(pack.to_hex())
        .bind(pack_bytes as i64)
        .bind(now)
        .bind(token.to_hex())
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        held.map(|hex| claim_token(&hex)).transpose()
    }

    async fn record_pack(
        &self,
        pack: PackId,
        pack_bytes: u64,
        chunks: &[ChunkInfo],
        claim: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<Option<Vec<bool>>> {
        let mut tx = self.begin_write().await?;
        let holds: Option<String> = sqlx::query_scalar(
            "SELECT id FROM packs WHERE id = ? AND claim_token = ? AND state <> 'deleting'",
        )
        .bind(pack.to_hex())
        .bind(claim.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
        if holds.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut new_ids = std::collections::HashSet::new();
        for rows in chunks.chunks(CHUNK_ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?, 0, ?, ?, ?, ?)"; rows.len()].join(", ");
            let sql = format!(
                "INSERT INTO chunks (id, raw_bytes, stored_bytes, is_deflate, refcount, unreferenced_since, \
                 pack_id, pack_offset, object_bytes) VALUES {values} ON CONFLICT DO NOTHING RETURNING id"
            );
            let mut insert = sqlx::query_scalar::<_, String>(&sql);
            for c in rows {
                let (pack_id, offset, len) = placement_columns(c.placement);
                insert = insert
                    .bind(c.id.to_hex())
                    .bind(i64::from(c.raw_bytes))
                    .bind(i64::from(c.stored_bytes))
                    .bind(c.is_deflate)
                    .bind(now)
                    .bind(pack_id)
                    .bind(offset)
                    .bind(len);
            }
            new_ids.extend(insert.fetch_all(&mut *tx).await?);
        }
        if new_ids.is_empty() {
            tx.rollback().await?;
            return Ok(Some(vec![false; chunks.len()]));
        }
        sqlx::query("UPDATE packs SET state = 'live', bytes = ? WHERE id = ?")
            .bind(pack_bytes as i64)
            .bind(pack.to_hex())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(new_chunk_flags(chunks, &new_ids)))
    }

    async fn find_chunks(&self, ids: &[ChunkId], now: UnixSeconds) -> MetaResult<Vec<ChunkInfo>> {
        let found = self.select_chunks(ids).await?;
        // Only rows that need it are touched: an UPDATE takes the write lock even when it
        // matches nothing, and imports ask about chunks the index mostly lacks.
        let idle: Vec<ChunkId> = found
            .iter()
            .filter(|(_, refcount)| *refcount == 0)
            .map(|(info, _)| info.id)
            .collect();
        for group in idle.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE chunks SET unreferenced_since = ? WHERE refcount = 0 AND id IN ({})",
                placeholders(group.len())
            );
            let mut args = SqliteArguments::default();
            args.add(now)
                .map_err(|e| MetaError::Backend(e.to_string()))?;
            sqlx::query_with(&sql, with_ids(args, group)?)
                .execute(self.pool())
                .await?;
        }
        Ok(found.into_iter().map(|(info, _)| info).collect())
    }

    async fn locate_chunks(&self, ids: &[ChunkId]) -> MetaResult<Vec<ChunkInfo>> {
        Ok(self
            .select_chunks(ids)
            .await?
            .into_iter()
            .map(|(info, _)| info)
            .collect())
    }

    async fn list_chunks(&self, after: Option<ChunkId>, limit: u32) -> MetaResult<Vec<ChunkInfo>> {
        // Every id is 64 hex digits, so all sort after the empty string.
        let after = after.as_ref().map(ChunkId::to_hex).unwrap_or_default();
        let rows = sqlx::query("SELECT * FROM chunks WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn known_packs(&self, ids: &[PackId]) -> MetaResult<Vec<PackId>> {
        let mut known = Vec::new();
        for group in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM packs WHERE id IN ({})",
                placeholders(group.len())
            );
            let mut select = sqlx::query_scalar::<_, String>(&sql);
            for id in group {
                select = select.bind(id.to_hex());
            }
            for hex in select.fetch_all(self.pool()).await? {
                known.push(PackId::parse_hex(&hex).ok_or_else(|| corrupt("pack id", &hex))?);
            }
        }
        Ok(known)
    }

    async fn start_pack_deletion(
        &self,
        pack: PackId,
        token: ClaimToken,
        now: UnixSeconds,
        rule: PackDeletionRule,
    ) -> MetaResult<bool> {
        let moved: Option<String> = sqlx::query_scalar(
            "INSERT INTO packs (id, bytes, created, state, claim_token, claimed_at) \
             VALUES (?, 0, ?, 'deleting', ?, ?) \
             ON CONFLICT (id) DO UPDATE SET state = 'deleting', claim_token = excluded.claim_token, \
             claimed_at = excluded.claimed_at \
             WHERE (packs.state = 'writing' AND packs.claimed_at < ?) \
             OR (packs.state = 'deleting' AND packs.claimed_at < ?) \
             RETURNING id",
        )
        .bind(pack.to_hex())
        .bind(now)
        .bind(token.to_hex())
        .bind(now)
        .bind(rule.claimed_before)
        .bind(rule.deletion_started_before)
        .fetch_optional(self.writer())
        .await?;
        Ok(moved.is_some())
    }

    async fn finish_pack_deletion(&self, pack: PackId, token: ClaimToken) -> MetaResult<()> {
        sqlx::query("DELETE FROM packs WHERE id = ? AND state = 'deleting' AND claim_token = ?")
            .bind(pack.to_hex())
            .bind(token.to_hex())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn unsettled_packs(&self, rule: PackDeletionRule, limit: u32) -> MetaResult<Vec<PackId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM packs WHERE state <> 'live' AND \
             ((state = 'writing' AND claimed_at < ?) OR (state = 'deleting' AND claimed_at < ?)) \
             ORDER BY id LIMIT ?",
        )
        .bind(rule.claimed_before)
        .bind(rule.deletion_started_before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        ids.iter()
            .map(|hex| PackId::parse_hex(hex).ok_or_else(|| corrupt("pack id", hex)))
            .collect()
    }

    async fn delete_expired_snapshots(
        &self,
        now: UnixSeconds,
        abandoned_before: UnixSeconds,
    ) -> MetaResult<Vec<SnapshotId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM snapshots WHERE deleted_at IS NULL AND \
             ((expires IS NOT NULL AND expires <= ? AND do_not_delete = FALSE) OR (complete = FALSE AND recorded < ?))",
        )
        .bind(now)
        .bind(abandoned_before)
        .fetch_all(self.pool())
        .await?;
        let mut deleted = Vec::new();
        for id in rows {
            let parsed = SnapshotId::parse(&id).ok_or_else(|| corrupt("snapshot id", &id))?;
            if self.mark_snapshot_deleted(parsed, now).await? {
                deleted.push(parsed);
            }
        }
        Ok(deleted)
    }

    async fn snapshots_holding_refs(&self) -> MetaResult<Vec<SnapshotRecord>> {
        self.snapshots_where(
            "SELECT * FROM snapshots WHERE deleted_at IS NOT NULL AND refs_released = FALSE",
            &[],
        )
        .await
    }

    async fn release_snapshot_refs(
        &self,
        id: SnapshotId,
        distinct_chunks: &[ChunkId],
        now: UnixSeconds,
    ) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        let released: Option<bool> =
            sqlx::query_scalar("SELECT refs_released FROM snapshots WHERE id = ?")
                .bind(id.to_hex())
                .fetch_optional(&mut *tx)
                .await?;
        if released != Some(false) {
            return Ok(());
        }
        for chunk in distinct_chunks {
            sqlx::query(
                "UPDATE chunks SET refcount = refcount - 1, \
                 unreferenced_since = CASE WHEN refcount = 1 THEN ? ELSE unreferenced_since END \
                 WHERE id = ? AND refcount > 0",
            )
            .bind(now)
            .bind(chunk.to_hex())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE snapshots SET refs_released = TRUE WHERE id = ?")
            .bind(id.to_hex())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn collectable_chunks(
        &self,
        before: UnixSeconds,
        limit: u32,
    ) -> MetaResult<Vec<ChunkId>> {
        let rows = sqlx::query(
            "SELECT * FROM chunks WHERE refcount = 0 AND unreferenced_since < ? LIMIT ?",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| chunk_from_row(r).map(|c| c.id))
            .collect()
    }

    async fn forget_chunks(
        &self,
        ids: &[ChunkId],
        before: UnixSeconds,
        deletion: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<ForgottenChunks> {
        let mut tx = self.begin_write().await?;
        let mut forgotten = ForgottenChunks::default();
        let mut packs = std::collections::BTreeSet::new();
        for id in ids {
            let removed: Option<Option<String>> = sqlx::query_scalar(
                "DELETE FROM chunks WHERE id = ? AND refcount = 0 AND unreferenced_since < ? RETURNING pack_id",
            )
            .bind(id.to_hex())
            .bind(before)
            .fetch_optional(&mut *tx)
            .await?;
            match removed {
                None => continue,
                Some(None) => forgotten.loose.push(*id),
                Some(Some(pack)) => {
                    packs.insert(pack);
                }
            }
            forgotten.chunks += 1;
        }
        for pack in packs {
            let done = sqlx::query(
                "UPDATE packs SET state = 'deleting', claim_token = ?, claimed_at = ? \
                 WHERE id = ? AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack_id = ?)",
            )
            .bind(deletion.to_hex())
            .bind(now)
            .bind(&pack)
            .bind(&pack)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                forgotten
                    .packs
                    .push(PackId::parse_hex(&pack).ok_or_else(|| corrupt("pack id", &pack))?);
            }
        }
        tx.commit().await?;
        Ok(forgotten)
    }
}

// The contracts of `SnapshotMeta` are checked for every backend by the conformance suite;
// what is left here depends on this backend's own history.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Placement;

    /// The chunk id of 32 bytes `n`.
    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[tokio::test]
    async fn loose_chunks_from_before_packs_are_listed_and_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteMetaStore::open(&dir.path().join("meta.sqlite"))
            .await
            .expect("open");
        let pack = PackId::of(b"pack");
        let packed = ChunkInfo {
            id: id(1),
            raw_bytes: 10,
            stored_bytes: 10,
            is_deflate: false,
            placement: Placement::Packed {
                pack,
                offset: 0,
                len: 62,
            },
        };
        let claim = store
            .claim_pack(pack, 62, ClaimToken::generate(), 100)
            .await
            .expect("claim")
            .expect("claimed");
        store
            .record_pack(pack, 62, &[packed], claim, 100)
            .await
            .expect("record")
            .expect("the claim holds");
        // Rows of this shape were written before migration 0006 added packs; no method
        // writes them any more.
        sqlx::query(
            "INSERT INTO chunks (id, raw_bytes, stored_bytes, is_deflate, refcount, unreferenced_since) \
             VALUES (?, 5, 5, FALSE, 0, 90)",
        )
        .bind(id(0).to_hex())
        .execute(store.pool())
        .await
        .expect("a chunk stored alone, as before packs");

        let listed = store.list_chunks(None, 10).await.expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|c| (c.id, c.placement))
                .collect::<Vec<_>>(),
            [(id(0), Placement::Loose), (id(1), packed.placement)]
        );
        let forgotten = store
            .forget_chunks(&[id(0), id(1)], 101, ClaimToken::generate(), 101)
            .await
            .expect("forget");
        assert_eq!(
            forgotten,
            ForgottenChunks {
                chunks: 2,
                loose: vec![id(0)],
                packs: vec![pack],
            },
            "a loose chunk's own object is named for deletion"
        );
    }
}
