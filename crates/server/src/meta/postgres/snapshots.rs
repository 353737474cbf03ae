//! PostgreSQL implementation of [`SnapshotMeta`].
//!
//! Every statement that writes chunk rows locks them in id order first (`… ORDER BY id FOR
//! UPDATE`, or an insert sorted by id), so that an import committing its part, a release and
//! the collector never wait for each other in a cycle.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::PostgresMetaStore;
use crate::blocks::{ChunkId, PackId};
use crate::ids::{ClaimToken, ClusterId, GroupId, SnapshotId};
use crate::meta::rows::{
    attach_snapshot_parts, build_insert, chunk_from_row, claim_token, corrupt, new_chunk_flags,
    page_limit, placement_columns, snapshot_from_row, snapshot_part_row, snapshot_row,
    SNAPSHOT_INSERT, SNAPSHOT_PART_INSERT,
};
use crate::meta::snapshots::{ForgottenChunks, PackDeletionRule, PartCommit, SnapshotMeta};
use crate::meta::MetaResult;
use crate::model::{
    ChunkInfo, PageOf, PageRequest, PartStats, SnapshotPartRecord, SnapshotRecord, UnixSeconds,
};

fn hex_ids(ids: &[ChunkId]) -> Vec<String> {
    ids.iter().map(ChunkId::to_hex).collect()
}

/// Locks the snapshot's row until the transaction ends: what reads a snapshot's state and
/// then changes its chunks' references (a part's commit, the release) goes one at a time.
/// `false` when there is no such snapshot.
async fn lock_snapshot(tx: &mut PgConnection, id: SnapshotId) -> MetaResult<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM snapshots WHERE id = $1 FOR UPDATE")
            .bind(id.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(found.is_some())
}

impl PostgresMetaStore {
    /// The indexed chunks among `ids`, each with its reference count.
    async fn select_chunks(&self, ids: &[ChunkId]) -> MetaResult<Vec<(ChunkInfo, i64)>> {
        let rows = sqlx::query("SELECT * FROM chunks WHERE id = ANY($1)")
            .bind(hex_ids(ids))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((chunk_from_row(row)?, row.try_get("refcount")?)))
            .collect()
    }

    /// The snapshots `sql` selects (binding `binds` in order), each with its parts.
    async fn snapshots_where(
        &self,
        sql: &str,
        binds: &[String],
    ) -> MetaResult<Vec<SnapshotRecord>> {
        let query = binds
            .iter()
            .fold(sqlx::query(sql), |query, value| query.bind(value));
        let rows: Vec<PgRow> = query.fetch_all(self.pool()).await?;
        let mut found = rows
            .iter()
            .map(snapshot_from_row)
            .collect::<MetaResult<Vec<_>>>()?;
        // Parts of complete snapshots come from the cache; the rest are read in one query.
        let missing: HashSet<SnapshotId> = found
            .iter_mut()
            .filter_map(|s| (!self.parts_cache.fill(s)).then_some(s.id))
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let part_rows = sqlx::query(
            "SELECT * FROM snapshot_parts WHERE snapshot_id = ANY($1) \
             ORDER BY snapshot_id, cluster_id, replica_set_name",
        )
        .bind(missing.iter().map(SnapshotId::to_hex).collect::<Vec<_>>())
        .fetch_all(self.pool())
        .await?;
        let mut read: Vec<&mut SnapshotRecord> = found
            .iter_mut()
            .filter(|s| missing.contains(&s.id))
            .collect();
        attach_snapshot_parts(read.iter_mut().map(|s| &mut **s), part_rows)?;
        for snapshot in read {
            self.parts_cache.keep(snapshot);
        }
        Ok(found)
    }
}

/// The parts of complete snapshots, by snapshot id, so that reading a snapshot (as every
/// restore request does) costs one query instead of two. Nothing here can go stale: a
/// snapshot is complete once its last part commits, in the transaction that marks it so,
/// and its part rows never change afterwards, on any node. Entries are only ever served
/// for a snapshot row just read, so a snapshot deleted on another node is never served from
/// here. The map is bounded: when full it is emptied, which costs one parts query per
/// snapshot read afterwards.
#[derive(Default)]
pub(super) struct PartsCache {
    entries: Mutex<HashMap<SnapshotId, Vec<SnapshotPartRecord>>>,
}

/// Complete snapshots whose parts are kept at most (a few hundred bytes each).
const CACHED_SNAPSHOTS: usize = 4096;

impl PartsCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<SnapshotId, Vec<SnapshotPartRecord>>> {
        // No operation under this lock can leave the map half-updated, so a poisoned lock
        // is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a complete snapshot's parts from the cache; `false` when they must be read.
    fn fill(&self, snapshot: &mut SnapshotRecord) -> bool {
        if !snapshot.complete {
            return false;
        }
        match self.lock().get(&snapshot.id) {
            Some(parts) => {
                snapshot.parts = parts.clone();
                true
            }
            None => false,
        }
    }

    /// Remembers a complete snapshot's parts, as just read.
    fn keep(&self, snapshot: &SnapshotRecord) {
        if !snapshot.complete {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= CACHED_SNAPSHOTS {
            entries.clear();
        }
        entries.insert(snapshot.id, snapshot.parts.clone());
    }
}

#[async_trait]
impl SnapshotMeta for PostgresMetaStore {
    async fn insert_snapshot(&self, s: &SnapshotRecord) -> MetaResult<()> {
        let mut tx = self.pool().begin().await?;
        build_insert::<sqlx::Postgres>(SNAPSHOT_INSERT, [snapshot_row(s)])
            .build()
            .execute(&mut *tx)
            .await?;
        if !s.parts.is_empty() {
            let parts = s.parts.iter().map(|p| snapshot_part_row(s.id, p));
            build_insert::<sqlx::Postgres>(SNAPSHOT_PART_INSERT, parts)
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
                "SELECT * FROM snapshots WHERE project_id = $1 AND cluster_id = $2 AND id = $3",
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
            "SELECT COUNT(*) FROM snapshots WHERE project_id = $1 AND cluster_id = $2 AND deleted_at IS NULL",
        )
        .bind(group.to_hex())
        .bind(cluster.to_hex())
        .fetch_one(self.pool())
        .await?;
        let (limit, offset) = page_limit(page);
        let items = self
            .snapshots_where(
                &format!(
                    "SELECT * FROM snapshots WHERE project_id = $1 AND cluster_id = $2 AND deleted_at IS NULL \
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
        sqlx::query("UPDATE snapshots SET expires = $1, do_not_delete = $2 WHERE id = $3")
            .bind(expires)
            .bind(do_not_delete)
            .bind(id.to_hex())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn mark_snapshot_deleted(&self, id: SnapshotId, at: UnixSeconds) -> MetaResult<bool> {
        let done = sqlx::query(
            "UPDATE snapshots SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
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
        let mut tx = self.pool().begin().await?;
        // Locked, two commits of one part cannot both take references, and the commit of
        // the last part sees every other part committed.
        if !lock_snapshot(&mut tx, snapshot).await? {
            return Ok(PartCommit::AlreadyCommitted);
        }
        let committed: Option<bool> = sqlx::query_scalar(
            "SELECT committed FROM snapshot_parts WHERE snapshot_id = $1 AND replica_set_name = $2",
        )
        .bind(snapshot.to_hex())
        .bind(replica_set)
        .fetch_optional(&mut *tx)
        .await?;
        if committed != Some(false) {
            return Ok(PartCommit::AlreadyCommitted);
        }
        // `distinct_chunks` holds no duplicates, so the update matches as many rows as it
        // has ids unless one of them is not indexed.
        let ids = hex_ids(distinct_chunks);
        let referenced = sqlx::query(
            "UPDATE chunks SET refcount = refcount + 1, unreferenced_since = NULL \
             WHERE id IN (SELECT id FROM chunks WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if referenced < ids.len() as u64 {
            let found: HashSet<String> =
                sqlx::query_scalar("SELECT id FROM chunks WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            if let Some(unknown) = distinct_chunks
                .iter()
                .find(|id| !found.contains(&id.to_hex()))
            {
                // Dropping the transaction rolls the references back.
                return Ok(PartCommit::UnknownChunk(*unknown));
            }
        }
        sqlx::query(
            "UPDATE snapshot_parts SET committed = TRUE, manifest_name = $1, file_count = $2, file_size_bytes = $3, \
             data_size_bytes = $4, storage_size_bytes = $5 WHERE snapshot_id = $6 AND replica_set_name = $7",
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
        let complete = sqlx::query(
            "UPDATE snapshots SET complete = TRUE WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM snapshot_parts WHERE snapshot_id = $1 AND committed = FALSE)",
        )
        .bind(snapshot.to_hex())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(PartCommit::Committed { complete })
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
             VALUES ($1, $2, $3, 'writing', $4, $3) \
             ON CONFLICT (id) DO UPDATE SET claimed_at = EXCLUDED.claimed_at WHERE packs.state <> 'deleting' \
             RETURNING claim_token",
        )
        .bind(pack.to_hex())
        .bind(pack_bytes as i64)
        .bind(now)
        .bind(token.to_hex())
        .fetch_optional(self.pool())
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
        let mut tx = self.pool().begin().await?;
        // The pack's row is locked before any chunk row, as the collector locks them (see
        // `forget_chunks`): a deletion cannot start between this check and the commit.
        let holds: Option<String> = sqlx::query_scalar(
            "SELECT id FROM packs WHERE id = $1 AND claim_token = $2 AND state <> 'deleting' FOR UPDATE",
        )
        .bind(pack.to_hex())
        .bind(claim.to_hex())
        .fetch_optional(&mut *tx)
        .await?;
        if holds.is_none() {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut columns = ChunkColumns::default();
        for c in chunks {
            columns.push(c);
        }
        // One statement for the batch, its rows inserted in id order (see the module doc).
        let inserted: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO chunks (id, raw_bytes, stored_bytes, is_deflate, refcount, unreferenced_since, \
             pack_id, pack_offset, object_bytes) \
             SELECT id, raw_bytes, stored_bytes, is_deflate, 0, $1, pack_id, pack_offset, object_bytes \
             FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BOOLEAN[], $6::TEXT[], $7::BIGINT[], $8::BIGINT[]) \
             AS c(id, raw_bytes, stored_bytes, is_deflate, pack_id, pack_offset, object_bytes) \
             ORDER BY id ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(now)
        .bind(columns.ids)
        .bind(columns.raw_bytes)
        .bind(columns.stored_bytes)
        .bind(columns.is_deflate)
        .bind(columns.pack_ids)
        .bind(columns.pack_offsets)
        .bind(columns.object_bytes)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        if inserted.is_empty() {
            tx.rollback().await?;
            return Ok(Some(vec![false; chunks.len()]));
        }
        sqlx::query("UPDATE packs SET state = 'live', bytes = $1 WHERE id = $2")
            .bind(pack_bytes as i64)
            .bind(pack.to_hex())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(new_chunk_flags(chunks, &inserted)))
    }

    async fn find_chunks(&self, ids: &[ChunkId], now: UnixSeconds) -> MetaResult<Vec<ChunkInfo>> {
        let found = self.select_chunks(ids).await?;
        // Only rows that need it are touched: imports ask about chunks the index mostly
        // lacks or holds referenced.
        let idle: Vec<ChunkId> = found
            .iter()
            .filter(|(_, refcount)| *refcount == 0)
            .map(|(info, _)| info.id)
            .collect();
        if !idle.is_empty() {
            sqlx::query(
                "UPDATE chunks SET unreferenced_since = $1 WHERE id IN \
                 (SELECT id FROM chunks WHERE refcount = 0 AND id = ANY($2) ORDER BY id FOR UPDATE)",
            )
            .bind(now)
            .bind(hex_ids(&idle))
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
        let rows = sqlx::query("SELECT * FROM chunks WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn known_packs(&self, ids: &[PackId]) -> MetaResult<Vec<PackId>> {
        let ids: Vec<String> = ids.iter().map(PackId::to_hex).collect();
        let known: Vec<String> = sqlx::query_scalar("SELECT id FROM packs WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(self.pool())
            .await?;
        known
            .iter()
            .map(|hex| PackId::parse_hex(hex).ok_or_else(|| corrupt("pack id", hex)))
            .collect()
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
             VALUES ($1, 0, $2, 'deleting', $3, $2) \
             ON CONFLICT (id) DO UPDATE SET state = 'deleting', claim_token = EXCLUDED.claim_token, \
             claimed_at = EXCLUDED.claimed_at \
             WHERE (packs.state = 'writing' AND packs.claimed_at < $4) \
             OR (packs.state = 'deleting' AND packs.claimed_at < $5) \
             RETURNING id",
        )
        .bind(pack.to_hex())
        .bind(now)
        .bind(token.to_hex())
        .bind(rule.claimed_before)
        .bind(rule.deletion_started_before)
        .fetch_optional(self.pool())
        .await?;
        Ok(moved.is_some())
    }

    async fn finish_pack_deletion(&self, pack: PackId, token: ClaimToken) -> MetaResult<()> {
        sqlx::query("DELETE FROM packs WHERE id = $1 AND state = 'deleting' AND claim_token = $2")
            .bind(pack.to_hex())
            .bind(token.to_hex())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn unsettled_packs(&self, rule: PackDeletionRule, limit: u32) -> MetaResult<Vec<PackId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM packs WHERE state <> 'live' AND \
             ((state = 'writing' AND claimed_at < $1) OR (state = 'deleting' AND claimed_at < $2)) \
             ORDER BY id LIMIT $3",
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
        let deleted: Vec<String> = sqlx::query_scalar(
            "UPDATE snapshots SET deleted_at = $1 WHERE deleted_at IS NULL AND \
             ((expires IS NOT NULL AND expires <= $1 AND do_not_delete = FALSE) OR (complete = FALSE AND recorded < $2)) \
             RETURNING id",
        )
        .bind(now)
        .bind(abandoned_before)
        .fetch_all(self.pool())
        .await?;
        deleted
            .iter()
            .map(|id| SnapshotId::parse(id).ok_or_else(|| corrupt("snapshot id", id)))
            .collect()
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
        let mut tx = self.pool().begin().await?;
        // Locked, two releases cannot both drop the references.
        if !lock_snapshot(&mut tx, id).await? {
            return Ok(());
        }
        let released: bool =
            sqlx::query_scalar("SELECT refs_released FROM snapshots WHERE id = $1")
                .bind(id.to_hex())
                .fetch_one(&mut *tx)
                .await?;
        if released {
            return Ok(());
        }
        sqlx::query(
            "UPDATE chunks SET refcount = refcount - 1, \
             unreferenced_since = CASE WHEN refcount = 1 THEN $1 ELSE unreferenced_since END \
             WHERE id IN (SELECT id FROM chunks WHERE id = ANY($2) AND refcount > 0 ORDER BY id FOR UPDATE)",
        )
        .bind(now)
        .bind(hex_ids(distinct_chunks))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE snapshots SET refs_released = TRUE WHERE id = $1")
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
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM chunks WHERE refcount = 0 AND unreferenced_since < $1 LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        ids.iter()
            .map(|id| ChunkId::parse_hex(id).ok_or_else(|| corrupt("chunk id", id)))
            .collect()
    }

    async fn forget_chunks(
        &self,
        ids: &[ChunkId],
        before: UnixSeconds,
        deletion: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<ForgottenChunks> {
        let mut tx = self.pool().begin().await?;
        // The rows of the packs these chunks lie in are locked first, in id order, as a
        // writer indexing a pack locks its row before inserting chunks: neither waits for
        // the other in a cycle, and no pack is moved to `deleting` under a writer's commit.
        sqlx::query(
            "SELECT id FROM packs WHERE id IN (SELECT pack_id FROM chunks WHERE id = ANY($1)) \
             ORDER BY id FOR UPDATE",
        )
        .bind(hex_ids(ids))
        .execute(&mut *tx)
        .await?;
        let removed = sqlx::query(
            "DELETE FROM chunks WHERE id IN (SELECT id FROM chunks WHERE id = ANY($1) \
             AND refcount = 0 AND unreferenced_since < $2 ORDER BY id FOR UPDATE) RETURNING id, pack_id",
        )
        .bind(hex_ids(ids))
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut loose = HashSet::new();
        let mut packs = std::collections::BTreeSet::new();
        for row in &removed {
            match row.try_get::<Option<String>, _>("pack_id")? {
                None => {
                    loose.insert(row.try_get::<String, _>("id")?);
                }
                Some(pack) => {
                    packs.insert(pack);
                }
            }
        }
        let packs: Vec<String> = packs.into_iter().collect();
        let mut emptied: Vec<String> = sqlx::query_scalar(
            "UPDATE packs SET state = 'deleting', claim_token = $2, claimed_at = $3 \
             WHERE id = ANY($1) AND NOT EXISTS (SELECT 1 FROM chunks WHERE pack_id = packs.id) \
             RETURNING id",
        )
        .bind(&packs)
        .bind(deletion.to_hex())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        emptied.sort();
        Ok(ForgottenChunks {
            chunks: removed.len(),
            // In the order they were asked about.
            loose: ids
                .iter()
                .filter(|id| loose.contains(&id.to_hex()))
                .copied()
                .collect(),
            packs: emptied
                .iter()
                .map(|hex| PackId::parse_hex(hex).ok_or_else(|| corrupt("pack id", hex)))
                .collect::<MetaResult<_>>()?,
        })
    }
}

/// A batch of chunk rows as one array per column, for `UNNEST`.
#[derive(Default)]
struct ChunkColumns {
    ids: Vec<String>,
    raw_bytes: Vec<i64>,
    stored_bytes: Vec<i64>,
    is_deflate: Vec<bool>,
    pack_ids: Vec<Option<String>>,
    pack_offsets: Vec<Option<i64>>,
    object_bytes: Vec<Option<i64>>,
}

impl ChunkColumns {
    fn push(&mut self, c: &ChunkInfo) {
        let (pack_id, offset, len) = placement_columns(c.placement);
        self.ids.push(c.id.to_hex());
        self.raw_bytes.push(i64::from(c.raw_bytes));
        self.stored_bytes.push(i64::from(c.stored_bytes));
        self.is_deflate.push(c.is_deflate);
        self.pack_ids.push(pack_id);
        self.pack_offsets.push(offset);
        self.object_bytes.push(len);
    }
}
