//! [`OplogMeta`](crate::meta::OplogMeta): slices, ranges of coverage, pushes, retention and
//! the collection of slice objects.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{race, seed_account, seed_cluster, seed_group, seed_replica_set, ts};
use crate::ids::{ClusterId, GroupId, OplogSliceId};
use crate::meta::oplog::{CollectableSlice, OplogCommit};
use crate::meta::MetaStore;
use crate::model::{
    ClusterRecord, OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs,
    UnixSeconds,
};

fn stream(cluster: &ClusterRecord, replica_set: &str) -> OplogStream {
    OplogStream {
        cluster: cluster.id,
        replica_set: replica_set.to_owned(),
    }
}

fn range(first: OplogTs, last: OplogTs) -> OplogRange {
    OplogRange { first, last }
}

/// A slice of `entries` entries from `first` to `last`, 100 bytes each, stored in a tenth.
fn slice(first: OplogTs, last: OplogTs, entries: u64) -> OplogSliceRecord {
    OplogSliceRecord {
        id: OplogSliceId::generate(),
        first,
        last,
        entry_count: entries,
        raw_bytes: entries * 100,
        stored_bytes: entries * 10,
        recorded: 0,
    }
}

/// One slice from second `from` to second `to` (increment 1), one entry per second.
fn seconds(from: u32, to: u32) -> OplogSliceRecord {
    slice(ts(from, 1), ts(to, 1), u64::from(to - from + 1))
}

/// Pushes `slices` the way the domain does: pending records first, then the commit.
async fn push(
    meta: &dyn MetaStore,
    stream: &OplogStream,
    commit: &OplogCommit,
    now: UnixSeconds,
) -> bool {
    let ids: Vec<OplogSliceId> = commit.slices.iter().map(|s| s.id).collect();
    meta.record_pending_slices(stream, &ids, now).await.unwrap();
    meta.commit_oplog_push(stream, commit, now).await.unwrap()
}

/// A first push onto an empty stream: its slices and one range from the first to the last.
fn first_push(slices: Vec<OplogSliceRecord>) -> OplogCommit {
    let covering = range(slices[0].first, slices[slices.len() - 1].last);
    OplogCommit {
        expected_ranges: vec![],
        slices,
        retired: vec![],
        ranges: vec![covering],
    }
}

async fn live_slices(meta: &dyn MetaStore, stream: &OplogStream) -> Vec<OplogSliceRecord> {
    meta.oplog_slices(stream, ts(0, 0), OplogTs::MAX)
        .await
        .unwrap()
}

async fn live_ids(meta: &dyn MetaStore, stream: &OplogStream) -> Vec<OplogSliceId> {
    live_slices(meta, stream)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn collectable_ids(meta: &dyn MetaStore, before: UnixSeconds) -> BTreeSet<OplogSliceId> {
    meta.collectable_oplog_slices(before, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn summaries(meta: &dyn MetaStore, cluster: ClusterId) -> Vec<OplogStreamSummary> {
    let mut all = meta.oplog_summaries(cluster).await.unwrap();
    all.sort_by(|a, b| a.replica_set.cmp(&b.replica_set));
    all
}

/// What the summary of a stream holding exactly `slices` over `ranges` says.
fn summary_of(
    replica_set: &str,
    slices: &[OplogSliceRecord],
    ranges: Vec<OplogRange>,
) -> OplogStreamSummary {
    OplogStreamSummary {
        replica_set: replica_set.to_owned(),
        slices: slices.len() as u64,
        entries: slices.iter().map(|s| s.entry_count).sum(),
        raw_bytes: slices.iter().map(|s| s.raw_bytes).sum(),
        stored_bytes: slices.iter().map(|s| s.stored_bytes).sum(),
        ranges,
    }
}

pub async fn a_new_stream_has_no_oplog(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    assert!(meta.oplog_ranges(&rs).await.unwrap().is_empty());
    assert!(live_slices(meta, &rs).await.is_empty());
    assert!(meta.oplog_summaries(cluster.id).await.unwrap().is_empty());
    assert!(meta.oplog_streams().await.unwrap().is_empty());
}

pub async fn a_push_commits_its_slices_and_clears_their_pending_records(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let slices = vec![seconds(100, 199), seconds(200, 249)];
    let ids: Vec<OplogSliceId> = slices.iter().map(|s| s.id).collect();
    meta.record_pending_slices(&rs, &ids, 100).await.unwrap();
    assert_eq!(
        collectable_ids(meta, 101).await,
        ids.iter().copied().collect(),
        "pending slices are collectable until committed"
    );

    let commit = first_push(slices.clone());
    assert!(meta.commit_oplog_push(&rs, &commit, 100).await.unwrap());
    assert_eq!(meta.oplog_ranges(&rs).await.unwrap(), commit.ranges);
    assert_eq!(live_slices(meta, &rs).await, slices);
    assert!(
        collectable_ids(meta, UnixSeconds::MAX).await.is_empty(),
        "committed slices are no longer pending"
    );
    assert_eq!(
        summaries(meta, cluster.id).await,
        vec![summary_of("rs0", &slices, commit.ranges.clone())]
    );
}

pub async fn a_push_planned_against_stale_ranges_changes_nothing(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let first = first_push(vec![seconds(100, 199), seconds(200, 209)]);
    assert!(push(meta, &rs, &first, 100).await);

    // Planned before the first push landed: against no ranges at all.
    let stale = OplogCommit {
        expected_ranges: vec![],
        slices: vec![seconds(200, 299)],
        retired: vec![first.slices[1].id],
        ranges: vec![range(ts(100, 1), ts(299, 1))],
    };
    assert!(
        !push(meta, &rs, &stale, 200).await,
        "a push planned against ranges that changed is refused"
    );
    assert_eq!(meta.oplog_ranges(&rs).await.unwrap(), first.ranges);
    assert_eq!(
        live_slices(meta, &rs).await,
        first.slices,
        "nothing retired"
    );
    assert_eq!(
        collectable_ids(meta, UnixSeconds::MAX).await,
        BTreeSet::from([stale.slices[0].id]),
        "the refused slice stays pending, for the collector"
    );
}

pub async fn a_push_retires_the_slices_it_recuts(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let first = first_push(vec![seconds(100, 199), seconds(200, 201)]);
    assert!(push(meta, &rs, &first, 100).await);

    // The small last slice is cut again with what continues it: same start, later end.
    let recut = seconds(200, 299);
    let second = OplogCommit {
        expected_ranges: first.ranges.clone(),
        slices: vec![recut.clone()],
        retired: vec![first.slices[1].id],
        ranges: vec![range(ts(100, 1), ts(299, 1))],
    };
    assert!(push(meta, &rs, &second, 200).await);
    let live = vec![first.slices[0].clone(), recut];
    assert_eq!(live_slices(meta, &rs).await, live);
    assert_eq!(meta.oplog_ranges(&rs).await.unwrap(), second.ranges);
    assert_eq!(
        summaries(meta, cluster.id).await,
        vec![summary_of("rs0", &live, second.ranges.clone())],
        "a retired slice is not counted"
    );
    assert!(
        collectable_ids(meta, 200).await.is_empty(),
        "retired at 200"
    );
    assert_eq!(
        collectable_ids(meta, 201).await,
        BTreeSet::from([first.slices[1].id])
    );
}

pub async fn slices_holding_a_stretch_are_listed_oldest_first(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let (a, b, c) = (seconds(10, 20), seconds(21, 30), seconds(31, 40));
    // Committed out of order: the listing orders them.
    let commit = OplogCommit {
        expected_ranges: vec![],
        slices: vec![c.clone(), a.clone(), b.clone()],
        retired: vec![],
        ranges: vec![range(a.first, c.last)],
    };
    assert!(push(meta, &rs, &commit, 1).await);
    let rs = &rs;
    let listed = |from, to| async move {
        meta.oplog_slices(rs, from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(ts(0, 0), ts(100, 0)).await, [a.id, b.id, c.id]);
    assert_eq!(
        listed(ts(20, 1), ts(21, 1)).await,
        [a.id, b.id],
        "bounds included"
    );
    assert_eq!(listed(ts(25, 0), ts(25, 9)).await, [b.id]);
    assert_eq!(
        listed(ts(20, 2), ts(20, 9)).await,
        Vec::<OplogSliceId>::new()
    );
    assert_eq!(
        listed(ts(41, 0), ts(50, 0)).await,
        Vec::<OplogSliceId>::new()
    );
    assert_eq!(
        listed(ts(0, 0), ts(10, 0)).await,
        Vec::<OplogSliceId>::new()
    );
    let other = stream(&cluster, "rs1");
    assert!(meta
        .oplog_slices(&other, ts(0, 0), OplogTs::MAX)
        .await
        .unwrap()
        .is_empty());
}

pub async fn summaries_total_each_replica_set_of_a_cluster(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let other = seed_replica_set(meta, cluster.group_id, "other").await;
    let (a, b) = (stream(&cluster, "rs-a"), stream(&cluster, "rs-b"));
    let a_slices = vec![seconds(100, 199), seconds(200, 299)];
    let b_first = first_push(vec![seconds(100, 149)]);
    let b_second = OplogCommit {
        expected_ranges: b_first.ranges.clone(),
        slices: vec![seconds(400, 449)],
        retired: vec![],
        ranges: vec![b_first.ranges[0], range(ts(400, 1), ts(449, 1))],
    };
    assert!(push(meta, &a, &first_push(a_slices.clone()), 1).await);
    assert!(push(meta, &b, &b_first, 1).await);
    assert!(push(meta, &b, &b_second, 2).await);
    assert!(
        push(
            meta,
            &stream(&other, "rs-other"),
            &first_push(vec![seconds(1, 2)]),
            1
        )
        .await
    );

    let b_slices = vec![b_first.slices[0].clone(), b_second.slices[0].clone()];
    assert_eq!(
        summaries(meta, cluster.id).await,
        vec![
            summary_of("rs-a", &a_slices, vec![range(ts(100, 1), ts(299, 1))]),
            summary_of("rs-b", &b_slices, b_second.ranges.clone()),
        ],
        "ranges oldest first; other clusters apart"
    );
}

pub async fn streams_with_oplog_are_listed_with_their_project(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let first = seed_replica_set(meta, account.group.id, "first").await;
    let elsewhere = seed_group(meta, account.org.id, "elsewhere").await;
    let second = seed_replica_set(meta, elsewhere.id, "second").await;
    let idle = seed_replica_set(meta, elsewhere.id, "idle").await;
    for s in [
        stream(&first, "rs0"),
        stream(&first, "rs1"),
        stream(&second, "rs0"),
    ] {
        assert!(push(meta, &s, &first_push(vec![seconds(1, 9)]), 1).await);
    }
    meta.record_pending_slices(&stream(&idle, "rs0"), &[OplogSliceId::generate()], 1)
        .await
        .unwrap();

    let listed: BTreeSet<(GroupId, String, String)> = meta
        .oplog_streams()
        .await
        .unwrap()
        .into_iter()
        .map(|(g, s)| (g, s.cluster.to_hex(), s.replica_set))
        .collect();
    let expected: BTreeSet<(GroupId, String, String)> = [
        (account.group.id, &first, "rs0"),
        (account.group.id, &first, "rs1"),
        (elsewhere.id, &second, "rs0"),
    ]
    .into_iter()
    .map(|(g, c, rs)| (g, c.id.to_hex(), rs.to_owned()))
    .collect();
    assert_eq!(
        listed, expected,
        "a stream with only pending slices has none stored"
    );
}

/// A stream holding slices of seconds 100–199, 200–299 and 300–399 in one range.
async fn three_slices(meta: &dyn MetaStore) -> (OplogStream, Vec<OplogSliceRecord>) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let slices = vec![seconds(100, 199), seconds(200, 299), seconds(300, 399)];
    assert!(push(meta, &rs, &first_push(slices.clone()), 1).await);
    (rs, slices)
}

pub async fn retention_keeps_the_slice_holding_the_cutoff(meta: &dyn MetaStore) {
    let (rs, slices) = three_slices(meta).await;
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(50, 0), 10).await.unwrap(),
        0,
        "nothing ends before a cutoff ahead of all of it"
    );
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(250, 0), 10).await.unwrap(),
        1
    );
    assert_eq!(live_ids(meta, &rs).await, [slices[1].id, slices[2].id]);
    assert_eq!(
        meta.oplog_ranges(&rs).await.unwrap(),
        vec![range(ts(200, 1), ts(399, 1))],
        "coverage still reaches back to the cutoff"
    );
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(250, 0), 11).await.unwrap(),
        0
    );

    assert_eq!(
        meta.retire_oplog_before(&rs, ts(300, 1), 12).await.unwrap(),
        1
    );
    assert_eq!(live_ids(meta, &rs).await, [slices[2].id]);
    assert_eq!(
        meta.oplog_ranges(&rs).await.unwrap(),
        vec![range(ts(300, 1), ts(399, 1))]
    );
}

pub async fn retention_in_a_gap_retires_everything_before_the_cutoff(meta: &dyn MetaStore) {
    let cluster = seed_cluster(meta).await;
    let rs = stream(&cluster, "rs0");
    let (early, late) = (seconds(100, 199), seconds(300, 399));
    let commit = OplogCommit {
        expected_ranges: vec![],
        slices: vec![early.clone(), late.clone()],
        retired: vec![],
        ranges: vec![range(early.first, early.last), range(late.first, late.last)],
    };
    assert!(push(meta, &rs, &commit, 1).await);
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(250, 0), 10).await.unwrap(),
        1
    );
    assert_eq!(live_ids(meta, &rs).await, [late.id]);
    assert_eq!(
        meta.oplog_ranges(&rs).await.unwrap(),
        vec![range(late.first, late.last)],
        "the range left without slices is gone"
    );
}

pub async fn collectable_slices_are_the_retired_and_the_never_committed(meta: &dyn MetaStore) {
    let (rs, slices) = three_slices(meta).await;
    let never = OplogSliceId::generate();
    meta.record_pending_slices(&rs, &[never], 100)
        .await
        .unwrap();
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(250, 0), 200)
            .await
            .unwrap(),
        1
    );
    let retired = slices[0].id;

    assert!(collectable_ids(meta, 100).await.is_empty());
    assert_eq!(collectable_ids(meta, 101).await, BTreeSet::from([never]));
    let mut all = meta.collectable_oplog_slices(201, 10).await.unwrap();
    all.sort_by_key(|c| c.id);
    let mut expected = vec![
        CollectableSlice {
            stream: rs.clone(),
            id: never,
        },
        CollectableSlice {
            stream: rs.clone(),
            id: retired,
        },
    ];
    expected.sort_by_key(|c| c.id);
    assert_eq!(all, expected, "each with its stream; live slices never");
    assert_eq!(
        meta.collectable_oplog_slices(201, 1).await.unwrap().len(),
        1
    );
}

pub async fn forgetting_a_slice_drops_only_a_retired_or_pending_record(meta: &dyn MetaStore) {
    let (rs, slices) = three_slices(meta).await;
    let never = OplogSliceId::generate();
    meta.record_pending_slices(&rs, &[never], 100)
        .await
        .unwrap();
    assert_eq!(
        meta.retire_oplog_before(&rs, ts(250, 0), 100)
            .await
            .unwrap(),
        1
    );
    let before = summaries(meta, rs.cluster).await;

    meta.forget_oplog_slice(never).await.unwrap();
    meta.forget_oplog_slice(slices[0].id).await.unwrap();
    assert!(collectable_ids(meta, UnixSeconds::MAX).await.is_empty());
    meta.forget_oplog_slice(slices[1].id).await.unwrap();
    assert_eq!(
        live_ids(meta, &rs).await,
        [slices[1].id, slices[2].id],
        "a live slice is not forgotten"
    );
    assert_eq!(summaries(meta, rs.cluster).await, before);
    meta.forget_oplog_slice(OplogSliceId::generate())
        .await
        .unwrap();
}

pub async fn a_push_whose_slices_are_being_deleted_does_not_commit(meta: &dyn MetaStore) {
    let (rs, slices) = three_slices(meta).await;
    let late = seconds(400, 499);
    meta.record_pending_slices(&rs, &[late.id], 100)
        .await
        .unwrap();
    assert!(
        !meta.start_slice_deletion(late.id, 100, 300).await.unwrap(),
        "recorded at 100, the push is not abandoned before 100"
    );
    assert!(meta.start_slice_deletion(late.id, 101, 300).await.unwrap());
    assert!(
        meta.start_slice_deletion(late.id, 101, 301).await.unwrap(),
        "a deletion left unfinished is started again"
    );
    assert_eq!(collectable_ids(meta, 101).await, BTreeSet::from([late.id]));
    let ranges = meta.oplog_ranges(&rs).await.unwrap();
    let commit = OplogCommit {
        expected_ranges: ranges.clone(),
        slices: vec![late],
        retired: vec![],
        ranges: vec![range(ranges[0].first, ts(499, 1))],
    };
    assert!(
        !meta.commit_oplog_push(&rs, &commit, 302).await.unwrap(),
        "its objects may be gone"
    );
    assert_eq!(meta.oplog_ranges(&rs).await.unwrap(), ranges);
    assert_eq!(live_ids(meta, &rs).await.len(), slices.len());

    assert!(
        !meta
            .start_slice_deletion(slices[0].id, UnixSeconds::MAX, 303)
            .await
            .unwrap(),
        "a live slice is never deleted"
    );
    meta.retire_oplog_before(&rs, ts(250, 0), 304)
        .await
        .unwrap();
    assert!(!meta
        .start_slice_deletion(slices[0].id, 304, 305)
        .await
        .unwrap());
    assert!(meta
        .start_slice_deletion(slices[0].id, 305, 305)
        .await
        .unwrap());
}

pub async fn racing_pushes_over_the_same_range_leave_one_coverage(meta: Arc<dyn MetaStore>) {
    let cluster = seed_cluster(meta.as_ref()).await;
    let rs = stream(&cluster, "rs0");
    let mut expected_ranges: Vec<OplogRange> = Vec::new();
    let mut winners: Vec<OplogSliceRecord> = Vec::new();
    let mut losers = BTreeSet::new();
    for round in 1..=5u32 {
        let (from, to) = (round * 1_000, round * 1_000 + 500);
        // The same stretch, cut differently by each pusher (and begun at a different entry
        // of its first second), so that a store accepting two pushes would hold
        // overlapping live slices rather than fail on a duplicate start.
        let commits: Arc<Vec<OplogCommit>> = Arc::new(
            (0..4)
                .map(|i| {
                    let head = slice(ts(from, 1 + i), ts(from + 100 + i, 1), 101);
                    let mut ranges = expected_ranges.clone();
                    ranges.push(range(head.first, ts(to, 1)));
                    OplogCommit {
                        expected_ranges: expected_ranges.clone(),
                        slices: vec![head, seconds(from + 101 + i, to)],
                        retired: vec![],
                        ranges,
                    }
                })
                .collect(),
        );
        let (racing, stream) = (commits.clone(), rs.clone());
        let committed = race(&meta, commits.len(), move |meta, i| {
            let (racing, stream) = (racing.clone(), stream.clone());
            async move { push(meta.as_ref(), &stream, &racing[i], UnixSeconds::from(round)).await }
        })
        .await;
        assert_eq!(
            committed.iter().filter(|c| **c).count(),
            1,
            "round {round}: one push committed: {committed:?}"
        );
        for (commit, won) in commits.iter().zip(&committed) {
            if *won {
                winners.extend(commit.slices.iter().cloned());
                expected_ranges = commit.ranges.clone();
            } else {
                losers.extend(commit.slices.iter().map(|s| s.id));
            }
        }

        let live = live_slices(meta.as_ref(), &rs).await;
        assert_eq!(
            live, winners,
            "round {round}: the winners' slices and no other"
        );
        assert!(
            live.windows(2).all(|w| w[0].last < w[1].first),
            "round {round}: live slices overlap: {live:?}"
        );
        assert_eq!(meta.oplog_ranges(&rs).await.unwrap(), expected_ranges);
        assert_eq!(
            summaries(meta.as_ref(), cluster.id).await,
            vec![summary_of("rs0", &winners, expected_ranges.clone())],
            "round {round}: nothing counted twice"
        );
    }
    assert_eq!(
        collectable_ids(meta.as_ref(), UnixSeconds::MAX).await,
        losers,
        "the refused pushes' slices are left to the collector"
    );
}

mod tests {
    contract_tests!(
        a_new_stream_has_no_oplog,
        a_push_commits_its_slices_and_clears_their_pending_records,
        a_push_planned_against_stale_ranges_changes_nothing,
        a_push_retires_the_slices_it_recuts,
        slices_holding_a_stretch_are_listed_oldest_first,
        summaries_total_each_replica_set_of_a_cluster,
        streams_with_oplog_are_listed_with_their_project,
        retention_keeps_the_slice_holding_the_cutoff,
        retention_in_a_gap_retires_everything_before_the_cutoff,
        collectable_slices_are_the_retired_and_the_never_committed,
        forgetting_a_slice_drops_only_a_retired_or_pending_record,
        a_push_whose_slices_are_being_deleted_does_not_commit,
    );
    contract_tests!(concurrent: racing_pushes_over_the_same_range_leave_one_coverage);
}
