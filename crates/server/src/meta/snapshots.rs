//! Snapshot metadata and the chunk index.

use async_trait::async_trait;

use super::MetaResult;
use crate::blocks::{ChunkId, PackId};
use crate::ids::{ClaimToken, ClusterId, GroupId, SnapshotId};
use crate::model::{ChunkInfo, PageOf, PageRequest, PartStats, SnapshotRecord, UnixSeconds};

/// What committing a part changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartCommit {
    /// The part is in; `complete` tells whether it was the last one.
    Committed { complete: bool },
    /// The part was committed before; nothing changed.
    AlreadyCommitted,
    /// A chunk the manifest names is not in the index (never uploaded, or collected).
    UnknownChunk(ChunkId),
}

/// What forgetting chunks freed: the objects the caller deletes next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgottenChunks {
    /// Chunks removed from the index.
    pub chunks: usize,
    /// Those among them stored alone (before packs), whose objects are now unused.
    pub loose: Vec<ChunkId>,
    /// Packs no chunk row names any more, in id order; their rows are now `deleting` under
    /// the deletion's token, to be removed once their objects are.
    pub packs: Vec<PackId>,
}

/// When a pack row may be moved to `deleting` by [`SnapshotMeta::start_pack_deletion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackDeletionRule {
    /// A `writing` row whose claim was last renewed before this was abandoned by its writers.
    pub claimed_before: UnixSeconds,
    /// A `deleting` row whose deletion started before this was left by a crashed deleter.
    pub deletion_started_before: UnixSeconds,
}

#[async_trait]
pub trait SnapshotMeta: Send + Sync + 'static {
    /// Records a new, incomplete snapshot and its (uncommitted) parts.
    async fn insert_snapshot(&self, snapshot: &SnapshotRecord) -> MetaResult<()>;
    /// Loads a snapshot, deleted or not.
    async fn get_snapshot(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> MetaResult<Option<SnapshotRecord>>;
    /// Live (not deleted) snapshots of a cluster, newest first.
    async fn list_snapshots(
        &self,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> MetaResult<PageOf<SnapshotRecord>>;
    async fn set_snapshot_retention(
        &self,
        id: SnapshotId,
        expires: Option<UnixSeconds>,
        do_not_delete: bool,
    ) -> MetaResult<()>;
    /// Marks a snapshot deleted; `false` if it already was.
    async fn mark_snapshot_deleted(&self, id: SnapshotId, at: UnixSeconds) -> MetaResult<bool>;

    /// Takes one reference on each distinct chunk and marks the part committed, atomically;
    /// completes the snapshot when it was the last part.
    async fn commit_part(
        &self,
        snapshot: SnapshotId,
        replica_set: &str,
        stats: PartStats,
        distinct_chunks: &[ChunkId],
        manifest_name: &str,
    ) -> MetaResult<PartCommit>;

    /// Claims a pack's row for a writer about to put its object, in one conditional
    /// upsert: a missing row is inserted `writing` under `token`; a `writing` or `live` row
    /// has its claim renewed (`claimed_at = now`) and its own token is returned, which the
    /// writer then holds with the others. `None`, changing nothing, while the row is
    /// `deleting`.
    async fn claim_pack(
        &self,
        pack: PackId,
        pack_bytes: u64,
        token: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<Option<ClaimToken>>;
    /// Indexes the chunks of a stored pack (unreferenced) and sets its row `live`, in one
    /// transaction, if the row still holds `claim` and is not `deleting`; `None`, changing
    /// nothing, when it does not. For each chunk, `false` if it was already indexed
    /// (another batch stored it first: its bytes in this pack are dead). When no chunk is
    /// new, nothing is written: the row stays as it was (a `writing` one goes to the
    /// orphan sweep once its claim is old).
    async fn record_pack(
        &self,
        pack: PackId,
        pack_bytes: u64,
        chunks: &[ChunkInfo],
        claim: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<Option<Vec<bool>>>;
    /// The indexed chunks among `ids`. Unreferenced ones have their idle clock reset, so a
    /// chunk an import is about to reuse is not collected under it.
    async fn find_chunks(&self, ids: &[ChunkId], now: UnixSeconds) -> MetaResult<Vec<ChunkInfo>>;
    /// The indexed chunks among `ids`, read only (for restores and verification, whose
    /// chunks are referenced already).
    async fn locate_chunks(&self, ids: &[ChunkId]) -> MetaResult<Vec<ChunkInfo>>;
    /// Up to `limit` indexed chunks with ids above `after` (all when `None`), in id order.
    async fn list_chunks(&self, after: Option<ChunkId>, limit: u32) -> MetaResult<Vec<ChunkInfo>>;
    /// The packs among `ids` that have a row, in any state.
    async fn known_packs(&self, ids: &[PackId]) -> MetaResult<Vec<PackId>>;
    /// Moves a pack to `deleting` under `token` (`claimed_at = now`) in one conditional
    /// statement, if it has no row (one is inserted), or its row is `writing` and
    /// abandoned, or `deleting` and left by a crash, as `rule` says; `false`, changing
    /// nothing, otherwise (a `live` row, a claim still renewed, a deletion under way).
    async fn start_pack_deletion(
        &self,
        pack: PackId,
        token: ClaimToken,
        now: UnixSeconds,
        rule: PackDeletionRule,
    ) -> MetaResult<bool>;
    /// Removes the row of a pack whose object the deletion `token` removed; a row no longer
    /// held by that deletion is left alone.
    async fn finish_pack_deletion(&self, pack: PackId, token: ClaimToken) -> MetaResult<()>;
    /// Up to `limit` packs whose rows `rule` lets [`SnapshotMeta::start_pack_deletion`]
    /// move (abandoned `writing` rows, stale `deleting` ones), in id order.
    async fn unsettled_packs(&self, rule: PackDeletionRule, limit: u32) -> MetaResult<Vec<PackId>>;

    /// Snapshots past `expires` (and not `doNotDelete`) or abandoned imports recorded
    /// before `abandoned_before`: marks them deleted and returns them.
    async fn delete_expired_snapshots(
        &self,
        now: UnixSeconds,
        abandoned_before: UnixSeconds,
    ) -> MetaResult<Vec<SnapshotId>>;
    /// Deleted snapshots whose chunk references are still held.
    async fn snapshots_holding_refs(&self) -> MetaResult<Vec<SnapshotRecord>>;
    /// Drops one reference on each chunk (committed parts only) and marks the snapshot released.
    async fn release_snapshot_refs(
        &self,
        id: SnapshotId,
        distinct_chunks: &[ChunkId],
        now: UnixSeconds,
    ) -> MetaResult<()>;
    /// Chunks unreferenced since before `before`, at most `limit` of them.
    async fn collectable_chunks(&self, before: UnixSeconds, limit: u32)
        -> MetaResult<Vec<ChunkId>>;
    /// Removes from the index those of `ids` still unreferenced since before `before`, and
    /// moves the rows of packs left without chunks to `deleting` under `deletion` (at
    /// `now`), in one transaction. The caller then deletes the objects named in the answer
    /// and finishes those deletions.
    async fn forget_chunks(
        &self,
        ids: &[ChunkId],
        before: UnixSeconds,
        deletion: ClaimToken,
        now: UnixSeconds,
    ) -> MetaResult<ForgottenChunks>;
}
