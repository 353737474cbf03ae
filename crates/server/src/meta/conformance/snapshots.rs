//! [`SnapshotMeta`](crate::meta::SnapshotMeta): snapshots and their parts, the chunk index,
//! reference counts and the collection of idle chunks.

use std::collections::BTreeSet;

use super::{page, seed_cluster, seed_replica_set, snapshot_of, ts, ALL};
use crate::blocks::{ChunkId, PackId, Placement};
use crate::ids::{ClaimToken, ClusterId, GroupId, SnapshotId};
use crate::meta::snapshots::{ForgottenChunks, PackDeletionRule, PartCommit};
use crate::meta::MetaStore;
use crate::model::{ChunkInfo, ClusterRecord, PartStats, SnapshotRecord, UnixSeconds};

/// The chunk id of 32 bytes `n`: ids that sort as their `n` do.
fn id(n: u8) -> ChunkId {
    ChunkId::from_bytes([n; 32])
}

fn packed(id: ChunkId, pack: PackId, offset: u64) -> ChunkInfo {
    ChunkInfo {
        id,
        raw_bytes: 10,
        stored_bytes: 8,
        is_deflate: true,
        placement: Placement::Packed {
            pack,
            offset,
            len: 62,
        },
    }
}

/// Claims `pack` and indexes `chunks` in it, at `now`, as a writer does.
async fn index_pack(
    meta: &dyn MetaStore,
    pack: PackId,
    bytes: u64,
    chunks: &[ChunkInfo],
    now: UnixSeconds,
) -> Vec<bool> {
    let claim = meta
        .claim_pack(pack, bytes, ClaimToken::generate(), now)
        .await
        .unwrap()
        .expect("a pack nobody deletes can be claimed");
    meta.record_pack(pack, bytes, chunks, claim, now)
        .await
        .unwrap()
        .expect("the claim holds")
}

/// A rule under which abandoned claims and stale deletions are those from before `before`.
fn before(before: UnixSeconds) -> PackDeletionRule {
    PackDeletionRule {
        claimed_before: before,
        deletion_started_before: before,
    }
}

/// Indexes chunks `ns` as one pack of their own, at `now`.
async fn seed_chunks(meta: &dyn MetaStore, ns: &[u8], now: UnixSeconds) -> PackId {
    let pack = PackId::of(ns);
    let chunks: Vec<ChunkInfo> = ns
        .iter()
        .enumerate()
        .map(|(i, n)| packed(id(*n), pack, i as u64 * 62))
        .collect();
    let new = index_pack(meta, pack, 1_000, &chunks, now).await;
    assert!(new.iter().all(|n| *n), "seeded chunks are new");
    pack
}

/// Chunks unreferenced since before `before`, all of them.
async fn collectable(meta: &dyn MetaStore, before: UnixSeconds) -> BTreeSet<ChunkId> {
    let ids = meta.collectable_chunks(before, 100_000).await.unwrap();
    let set: BTreeSet<ChunkId> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "no chunk listed twice");
    set
}

/// Whether `chunk` holds a reference: an indexed chunk is collectable some day exactly when
/// it holds none.
async fn is_referenced(meta: &dyn MetaStore, chunk: ChunkId) -> bool {
    !collectable(meta, UnixSeconds::MAX).await.contains(&chunk)
}

/// The snapshot with its parts in name order: the trait promises the parts, not their order.
fn canonical(mut snapshot: SnapshotRecord) -> SnapshotRecord {
    snapshot
        .parts
        .sort_by(|a, b| a.replica_set_name.cmp(&b.replica_set_name));
    snapshot
}

async fn get(meta: &dyn MetaStore, snapshot: &SnapshotRecord) -> Option<SnapshotRecord> {
    meta.get_snapshot(snapshot.group_id, snapshot.cluster_id, snapshot.id)
        .await
        .unwrap()
        .map(canonical)
}

/// Inserts an open import of `cluster` with one part per name in `parts`.
async fn open_import(
    meta: &dyn MetaStore,
    cluster: &ClusterRecord,
    created: u32,
    parts: &[&str],
) -> SnapshotRecord {
    let snapshot = snapshot_of(cluster, ts(created, 1), parts);
    meta.insert_snapshot(&snapshot).await.unwrap();
    snapshot
}

async fn commit(
    meta: &dyn MetaStore,
    snapshot: &SnapshotRecord,
    part: &str,
    chunks: &[ChunkId],
) -> PartCommit {
    meta.commit_part(
        snapshot.id,
        part,
        PartStats::default(),
        chunks,
        &format!("{part}.json"),
    )
    .await
    .unwrap()
}

pub async fn a_snapshot_reads_back_deleted_or_not(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let mut snapshot = snapshot_of(&cluster, ts(100, 3), &["rs-b", "rs-a"]);
    snapshot.last_oplog_applied = Some(ts(101, 1));
    snapshot.expires = Some(5_000);
    meta.insert_snapshot(&snapshot).await.unwrap();
    assert_eq!(
        get(meta, &snapshot).await,
        Some(canonical(snapshot.clone()))
    );

    assert!(meta.mark_snapshot_deleted(snapshot.id, 500).await.unwrap());
    let deleted = get(meta, &snapshot)
        .await
        .expect("a deleted snapshot is found");
    assert_eq!(deleted.deleted_at, Some(500));

    let elsewhere = |group: GroupId, cluster: ClusterId, id: SnapshotId| async move {
        meta.get_snapshot(group, cluster, id).await.unwrap()
    };
    assert_eq!(
        elsewhere(GroupId::generate(), cluster.id, snapshot.id).await,
        None
    );
    assert_eq!(
        elsewhere(cluster.group_id, ClusterId::generate(), snapshot.id).await,
        None
    );
    assert_eq!(
        elsewhere(cluster.group_id, cluster.id, SnapshotId::generate()).await,
        None
    );
}

pub async fn live_snapshots_are_listed_newest_first_in_pages(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let other = seed_replica_set(meta, cluster.group_id, "other").await;
    let mut inserted = Vec::new();
    for created in [ts(100, 1), ts(300, 1), ts(200, 2), ts(200, 1), ts(400, 1)] {
        let snapshot = snapshot_of(&cluster, created, &[]);
        meta.insert_snapshot(&snapshot).await.unwrap();
        inserted.push(snapshot);
    }
    assert!(meta.mark_snapshot_deleted(inserted[4].id, 1).await.unwrap());
    meta.insert_snapshot(&snapshot_of(&other, ts(500, 1), &[]))
        .await
        .unwrap();

    let listed = meta
        .list_snapshots(cluster.group_id, cluster.id, ALL)
        .await
        .unwrap();
    let newest_first = vec![
        inserted[1].clone(),
        inserted[2].clone(),
        inserted[3].clone(),
        inserted[0].clone(),
    ];
    assert_eq!(
        listed.total, 4,
        "deleted and other clusters' snapshots are not counted"
    );
    assert_eq!(listed.items, newest_first);
    let middle = meta
        .list_snapshots(cluster.group_id, cluster.id, page(1, 2))
        .await
        .unwrap();
    assert_eq!(
        (middle.total, middle.items),
        (4, newest_first[1..3].to_vec())
    );
    let wrong_group = meta
        .list_snapshots(GroupId::generate(), cluster.id, ALL)
        .await
        .unwrap();
    assert_eq!((wrong_group.total, wrong_group.items.len()), (0, 0));
}

pub async fn retention_settings_are_stored(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let snapshot = open_import(meta, &cluster, 100, &[]).await;
    meta.set_snapshot_retention(snapshot.id, Some(900), true)
        .await
        .unwrap();
    let kept = get(meta, &snapshot).await.unwrap();
    assert_eq!((kept.expires, kept.do_not_delete), (Some(900), true));
    meta.set_snapshot_retention(snapshot.id, None, false)
        .await
        .unwrap();
    let cleared = get(meta, &snapshot).await.unwrap();
    assert_eq!((cleared.expires, cleared.do_not_delete), (None, false));
}

pub async fn a_snapshot_is_deleted_once(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let snapshot = open_import(meta, &cluster, 100, &[]).await;
    assert!(meta.mark_snapshot_deleted(snapshot.id, 500).await.unwrap());
    assert!(!meta.mark_snapshot_deleted(snapshot.id, 600).await.unwrap());
    assert_eq!(
        get(meta, &snapshot).await.unwrap().deleted_at,
        Some(500),
        "the second call changed nothing"
    );
}

pub async fn committing_the_last_part_completes_the_snapshot(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    seed_chunks(meta, &[1, 2, 3], 100).await;
    let snapshot = open_import(meta, &cluster, 100, &["rs-a", "rs-b"]).await;
    let stats = PartStats {
        file_count: 3,
        file_size_bytes: 300,
        data_size_bytes: 200,
        storage_size_bytes: 100,
    };
    let first = meta
        .commit_part(snapshot.id, "rs-a", stats, &[id(1), id(2)], "a.json")
        .await
        .unwrap();
    assert_eq!(first, PartCommit::Committed { complete: false });
    let half = get(meta, &snapshot).await.unwrap();
    assert!(!half.complete);
    let part = &half.parts[0];
    assert_eq!(part.replica_set_name, "rs-a");
    assert!(part.committed);
    assert_eq!(part.manifest_name.as_deref(), Some("a.json"));
    assert_eq!(
        (
            part.file_count,
            part.file_size_bytes,
            part.data_size_bytes,
            part.storage_size_bytes
        ),
        (3, 300, 200, 100)
    );
    assert!(!half.parts[1].committed);

    let last = commit(meta, &snapshot, "rs-b", &[id(2), id(3)]).await;
    assert_eq!(last, PartCommit::Committed { complete: true });
    let whole = get(meta, &snapshot).await.unwrap();
    assert!(whole.complete);
    assert!(whole.parts.iter().all(|p| p.committed));
    for n in [1, 2, 3] {
        assert!(is_referenced(meta, id(n)).await, "chunk {n}");
    }

    // Read again, as restores do (a backend may keep a complete snapshot's parts): the
    // parts are the same, and the snapshot's own fields are current.
    meta.set_snapshot_retention(snapshot.id, Some(9_000), true)
        .await
        .unwrap();
    let again = get(meta, &snapshot).await.unwrap();
    assert_eq!(again.parts, whole.parts);
    assert_eq!((again.expires, again.do_not_delete), (Some(9_000), true));
    assert!(meta.mark_snapshot_deleted(snapshot.id, 700).await.unwrap());
    let deleted = get(meta, &snapshot).await.unwrap();
    assert_eq!(
        (deleted.deleted_at, deleted.parts),
        (Some(700), whole.parts)
    );
}

pub async fn a_part_is_committed_once(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    seed_chunks(meta, &[1], 100).await;
    let snapshot = open_import(meta, &cluster, 100, &["rs0"]).await;
    assert_eq!(
        commit(meta, &snapshot, "rs0", &[id(1)]).await,
        PartCommit::Committed { complete: true }
    );
    assert_eq!(
        commit(meta, &snapshot, "rs0", &[id(1)]).await,
        PartCommit::AlreadyCommitted
    );
    // One reference was taken, not two: one release frees the chunk.
    assert!(meta.mark_snapshot_deleted(snapshot.id, 200).await.unwrap());
    meta.release_snapshot_refs(snapshot.id, &[id(1)], 200)
        .await
        .unwrap();
    assert!(!is_referenced(meta, id(1)).await);
}

pub async fn a_commit_naming_an_unindexed_chunk_changes_nothing(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let snapshot = open_import(meta, &cluster, 100, &["rs0"]).await;
    // More chunks than a backend binds into one statement, so the commit works in groups.
    let pack = PackId::of(b"many");
    let chunks: Vec<ChunkInfo> = (0..1_200u32)
        .map(|n| packed(ChunkId::of(&n.to_be_bytes()), pack, u64::from(n) * 62))
        .collect();
    index_pack(meta, pack, 1, &chunks, 10).await;
    let unknown = id(0xee);
    let mut ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    ids.push(unknown);
    ids.sort();

    assert_eq!(
        commit(meta, &snapshot, "rs0", &ids).await,
        PartCommit::UnknownChunk(unknown)
    );
    assert_eq!(
        collectable(meta, 11).await.len(),
        chunks.len(),
        "the refused commit took no reference"
    );
    let after = get(meta, &snapshot).await.unwrap();
    assert!(!after.complete && !after.parts[0].committed);

    ids.retain(|id| *id != unknown);
    assert_eq!(
        commit(meta, &snapshot, "rs0", &ids).await,
        PartCommit::Committed { complete: true }
    );
    assert!(collectable(meta, UnixSeconds::MAX).await.is_empty());
    assert_eq!(
        commit(meta, &snapshot, "rs0", &ids).await,
        PartCommit::AlreadyCommitted
    );
}

pub async fn a_pack_indexes_only_its_new_chunks(meta: &dyn MetaStore) {
    let (one, two, three) = (PackId::of(b"one"), PackId::of(b"two"), PackId::of(b"three"));
    let first = [packed(id(1), one, 0), packed(id(2), one, 62)];
    assert_eq!(index_pack(meta, one, 124, &first, 100).await, [true, true]);
    let second = [
        packed(id(2), two, 0),
        packed(id(3), two, 62),
        packed(id(3), two, 62),
    ];
    assert_eq!(
        index_pack(meta, two, 186, &second, 101).await,
        [false, true, false],
        "a chunk indexed by an earlier pack, or named twice, is not new"
    );
    let third = [packed(id(3), three, 0)];
    assert_eq!(index_pack(meta, three, 62, &third, 102).await, [false]);
    let known: BTreeSet<PackId> = meta
        .known_packs(&[one, two, three, PackId::of(b"never")])
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        known,
        BTreeSet::from([one, two, three]),
        "a pack with no new chunk keeps the row its writer claimed"
    );
    assert_eq!(
        meta.unsettled_packs(before(103), 10).await.unwrap(),
        vec![three],
        "… `writing`, for the orphan sweep once the claim is old"
    );
    let mut located = meta.locate_chunks(&[id(3), id(2), id(9)]).await.unwrap();
    located.sort_by_key(|c| c.id);
    assert_eq!(
        located,
        vec![first[1], second[1]],
        "each chunk where it was first stored"
    );
}

pub async fn finding_an_idle_chunk_restarts_its_idle_clock(meta: &dyn MetaStore) {
    seed_chunks(meta, &[1], 100).await;
    assert!(collectable(meta, 150).await.contains(&id(1)));
    let found = meta.find_chunks(&[id(1), id(9)], 200).await.unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), [id(1)]);
    assert!(
        !collectable(meta, 150).await.contains(&id(1)),
        "idle since 200 now"
    );
    assert!(!collectable(meta, 200).await.contains(&id(1)));
    assert!(collectable(meta, 201).await.contains(&id(1)));
}

pub async fn locating_a_chunk_leaves_its_idle_clock_alone(meta: &dyn MetaStore) {
    let pack = seed_chunks(meta, &[1], 100).await;
    let located = meta.locate_chunks(&[id(1), id(9)]).await.unwrap();
    assert_eq!(located, vec![packed(id(1), pack, 0)]);
    assert!(collectable(meta, 101).await.contains(&id(1)));
}

pub async fn chunks_are_listed_in_id_order_after_a_cursor(meta: &dyn MetaStore) {
    seed_chunks(meta, &[5, 1, 3], 100).await;
    seed_chunks(meta, &[2, 4], 100).await;
    let ids = |chunks: Vec<ChunkInfo>| chunks.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let list = |after, limit| async move { ids(meta.list_chunks(after, limit).await.unwrap()) };
    assert_eq!(list(None, 2).await, [id(1), id(2)]);
    assert_eq!(list(Some(id(2)), 2).await, [id(3), id(4)]);
    assert_eq!(list(Some(id(4)), 10).await, [id(5)]);
    assert_eq!(list(Some(id(5)), 10).await, Vec::<ChunkId>::new());
    assert_eq!(
        list(Some(id(0)), 10).await.len(),
        5,
        "a cursor need not be indexed"
    );
}

pub async fn expired_and_abandoned_snapshots_are_deleted(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let (now, abandoned_before) = (1_000, 500);
    let seed = |expires: Option<UnixSeconds>, do_not_delete, complete, recorded| {
        let cluster = &cluster;
        async move {
            let snapshot = SnapshotRecord {
                expires,
                do_not_delete,
                complete,
                recorded,
                ..snapshot_of(cluster, ts(recorded as u32, 1), &[])
            };
            meta.insert_snapshot(&snapshot).await.unwrap();
            snapshot
        }
    };
    let expired = seed(Some(900), false, true, 100).await;
    let not_yet = seed(Some(1_100), false, true, 100).await;
    let pinned = seed(Some(900), true, true, 100).await;
    let abandoned = seed(None, false, false, 400).await;
    let importing = seed(None, false, false, 600).await;
    let kept_forever = seed(None, false, true, 100).await;
    let gone = seed(Some(900), false, true, 100).await;
    assert!(meta.mark_snapshot_deleted(gone.id, 950).await.unwrap());

    let deleted: BTreeSet<SnapshotId> = meta
        .delete_expired_snapshots(now, abandoned_before)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(deleted, BTreeSet::from([expired.id, abandoned.id]));
    for snapshot in [&expired, &abandoned] {
        assert!(get(meta, snapshot).await.unwrap().deleted_at.is_some());
    }
    for snapshot in [&not_yet, &pinned, &importing, &kept_forever] {
        assert_eq!(get(meta, snapshot).await.unwrap().deleted_at, None);
    }
    assert_eq!(get(meta, &gone).await.unwrap().deleted_at, Some(950));
    assert!(
        meta.delete_expired_snapshots(now, abandoned_before)
            .await
            .unwrap()
            .is_empty(),
        "each is deleted once"
    );
}

pub async fn deleted_snapshots_hold_their_references_until_released(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    seed_chunks(meta, &[1, 2], 100).await;
    let doomed = open_import(meta, &cluster, 100, &["rs0"]).await;
    let keeper = open_import(meta, &cluster, 200, &["rs0"]).await;
    commit(meta, &doomed, "rs0", &[id(1), id(2)]).await;
    commit(meta, &keeper, "rs0", &[id(1)]).await;
    assert!(meta.snapshots_holding_refs().await.unwrap().is_empty());

    assert!(meta.mark_snapshot_deleted(doomed.id, 600).await.unwrap());
    let holding: Vec<SnapshotId> = meta
        .snapshots_holding_refs()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(holding, vec![doomed.id]);

    meta.release_snapshot_refs(doomed.id, &[id(1), id(2)], 700)
        .await
        .unwrap();
    assert!(meta.snapshots_holding_refs().await.unwrap().is_empty());
    assert!(
        is_referenced(meta, id(1)).await,
        "the keeper still holds it"
    );
    assert!(
        !collectable(meta, 700).await.contains(&id(2)),
        "idle from its release on"
    );
    assert!(collectable(meta, 701).await.contains(&id(2)));

    meta.release_snapshot_refs(doomed.id, &[id(1), id(2)], 800)
        .await
        .unwrap();
    assert!(
        is_referenced(meta, id(1)).await,
        "a second release dropped nothing"
    );
    assert!(collectable(meta, 701).await.contains(&id(2)));
}

pub async fn collectable_chunks_are_those_idle_long_enough(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    seed_chunks(meta, &[1, 2, 3, 4, 5], 100).await;
    let snapshot = open_import(meta, &cluster, 100, &["rs0"]).await;
    commit(meta, &snapshot, "rs0", &[id(5)]).await;
    assert!(
        collectable(meta, 100).await.is_empty(),
        "idle since 100, not before"
    );
    let all = collectable(meta, 101).await;
    assert_eq!(
        all,
        (1..=4).map(id).collect(),
        "a referenced chunk is never listed"
    );
    let some = meta.collectable_chunks(101, 3).await.unwrap();
    assert_eq!(some.len(), 3);
    assert!(some.iter().all(|c| all.contains(c)));
}

pub async fn forgetting_chunks_frees_the_packs_they_leave_empty(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let (one, two) = (PackId::of(b"one"), PackId::of(b"two"));
    let first = [packed(id(1), one, 0), packed(id(2), one, 62)];
    index_pack(meta, one, 124, &first, 100).await;
    let second = [packed(id(3), two, 0), packed(id(4), two, 62)];
    index_pack(meta, two, 124, &second, 101).await;
    let snapshot = open_import(meta, &cluster, 100, &["rs0"]).await;
    commit(meta, &snapshot, "rs0", &[id(4)]).await;
    let every = [id(1), id(2), id(3), id(4), id(9)];

    let deletion = ClaimToken::generate();
    let none = meta
        .forget_chunks(&every, 100, deletion, 500)
        .await
        .unwrap();
    assert_eq!(none, ForgottenChunks::default(), "nothing idle long enough");
    let some = meta
        .forget_chunks(&every, 101, deletion, 500)
        .await
        .unwrap();
    assert_eq!(
        some,
        ForgottenChunks {
            chunks: 2,
            loose: vec![],
            packs: vec![one],
        }
    );
    let rest = meta
        .forget_chunks(&every, 1_000, ClaimToken::generate(), 500)
        .await
        .unwrap();
    assert_eq!(
        rest,
        ForgottenChunks {
            chunks: 1,
            loose: vec![],
            packs: vec![],
        },
        "pack two still holds the referenced chunk 4"
    );
    let left: Vec<ChunkId> = meta
        .list_chunks(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, [id(4)]);
    let mut known = meta.known_packs(&[one, two]).await.unwrap();
    known.sort();
    let mut both = vec![one, two];
    both.sort();
    assert_eq!(
        known, both,
        "pack one's row stays while its object is deleted"
    );
    assert_eq!(
        meta.claim_pack(one, 124, ClaimToken::generate(), 501)
            .await
            .unwrap(),
        None,
        "a pack being deleted is not claimed"
    );
    assert_eq!(
        meta.unsettled_packs(before(500), 10).await.unwrap(),
        Vec::<PackId>::new()
    );
    assert_eq!(
        meta.unsettled_packs(before(501), 10).await.unwrap(),
        vec![one],
        "a deletion older than the lease is for a sweep to finish"
    );
    meta.finish_pack_deletion(one, deletion).await.unwrap();
    assert_eq!(meta.known_packs(&[one, two]).await.unwrap(), vec![two]);
    assert!(meta
        .claim_pack(one, 124, ClaimToken::generate(), 502)
        .await
        .unwrap()
        .is_some());
}

pub async fn writers_of_one_pack_share_its_claim_until_its_deletion_begins(meta: &dyn MetaStore) {
    let pack = PackId::of(b"shared");
    let chunks = [packed(id(1), pack, 0)];
    let first = ClaimToken::generate();
    assert_eq!(
        meta.claim_pack(pack, 62, first, 100).await.unwrap(),
        Some(first)
    );
    assert_eq!(
        meta.claim_pack(pack, 62, ClaimToken::generate(), 110)
            .await
            .unwrap(),
        Some(first),
        "a second writer holds the claim the row has"
    );
    assert_eq!(
        meta.record_pack(pack, 62, &chunks, ClaimToken::generate(), 111)
            .await
            .unwrap(),
        None,
        "a claim the row never had does not index"
    );
    let deletion = ClaimToken::generate();
    assert!(
        !meta
            .start_pack_deletion(pack, deletion, 120, before(110))
            .await
            .unwrap(),
        "renewed at 110, the claim is not abandoned before 110"
    );
    assert!(meta
        .start_pack_deletion(pack, deletion, 120, before(111))
        .await
        .unwrap());
    assert_eq!(
        meta.record_pack(pack, 62, &chunks, first, 121)
            .await
            .unwrap(),
        None,
        "a writer whose pack is being deleted does not index it"
    );
    assert!(meta.locate_chunks(&[id(1)]).await.unwrap().is_empty());
    assert_eq!(
        meta.claim_pack(pack, 62, ClaimToken::generate(), 121)
            .await
            .unwrap(),
        None
    );
    let takeover = ClaimToken::generate();
    assert!(
        !meta
            .start_pack_deletion(pack, takeover, 130, before(120))
            .await
            .unwrap(),
        "a deletion under way is not taken over"
    );
    assert!(meta
        .start_pack_deletion(pack, takeover, 130, before(121))
        .await
        .unwrap());
    meta.finish_pack_deletion(pack, deletion).await.unwrap();
    assert_eq!(
        meta.known_packs(&[pack]).await.unwrap(),
        vec![pack],
        "only the deletion holding the row removes it"
    );
    meta.finish_pack_deletion(pack, takeover).await.unwrap();
    assert!(meta.known_packs(&[pack]).await.unwrap().is_empty());

    let again = ClaimToken::generate();
    assert_eq!(
        meta.claim_pack(pack, 62, again, 140).await.unwrap(),
        Some(again),
        "a new row, a new claim"
    );
    assert_eq!(
        meta.record_pack(pack, 62, &chunks, first, 141)
            .await
            .unwrap(),
        None,
        "a claim from before the deletion does not hold the new row"
    );
    assert_eq!(
        meta.record_pack(pack, 62, &chunks, again, 141)
            .await
            .unwrap(),
        Some(vec![true])
    );
}

pub async fn only_packs_nobody_may_reference_are_moved_to_deleting(meta: &dyn MetaStore) {
    let live = seed_chunks(meta, &[1], 100).await;
    let deletion = ClaimToken::generate();
    assert!(
        !meta
            .start_pack_deletion(live, deletion, 200, before(UnixSeconds::MAX))
            .await
            .unwrap(),
        "a live pack goes only with its last chunk"
    );
    assert_eq!(
        meta.unsettled_packs(before(UnixSeconds::MAX), 10)
            .await
            .unwrap(),
        Vec::<PackId>::new()
    );
    let unknown = PackId::of(b"never claimed");
    assert!(
        meta.start_pack_deletion(unknown, deletion, 200, before(0))
            .await
            .unwrap(),
        "an object without a row is nobody's"
    );
    assert_eq!(
        meta.claim_pack(unknown, 62, ClaimToken::generate(), 201)
            .await
            .unwrap(),
        None
    );
    assert!(!meta
        .start_pack_deletion(unknown, ClaimToken::generate(), 201, before(200))
        .await
        .unwrap());
    meta.finish_pack_deletion(unknown, deletion).await.unwrap();
    assert!(meta.known_packs(&[unknown]).await.unwrap().is_empty());
    assert_eq!(meta.locate_chunks(&[id(1)]).await.unwrap().len(), 1);
}

mod tests {
    contract_tests!(
        a_snapshot_reads_back_deleted_or_not,
        live_snapshots_are_listed_newest_first_in_pages,
        retention_settings_are_stored,
        a_snapshot_is_deleted_once,
        committing_the_last_part_completes_the_snapshot,
        a_part_is_committed_once,
        a_commit_naming_an_unindexed_chunk_changes_nothing,
        a_pack_indexes_only_its_new_chunks,
        finding_an_idle_chunk_restarts_its_idle_clock,
        locating_a_chunk_leaves_its_idle_clock_alone,
        chunks_are_listed_in_id_order_after_a_cursor,
        expired_and_abandoned_snapshots_are_deleted,
        deleted_snapshots_hold_their_references_until_released,
        collectable_chunks_are_those_idle_long_enough,
        forgetting_chunks_frees_the_packs_they_leave_empty,
        writers_of_one_pack_share_its_claim_until_its_deletion_begins,
        only_packs_nobody_may_reference_are_moved_to_deleting,
    );
}
