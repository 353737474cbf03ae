//! [`CheckpointMeta`](crate::meta::CheckpointMeta): the checkpoints of sharded clusters.

use std::sync::Arc;

use super::{page, race, seed_account, sharded_cluster, ts, ALL};
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::meta::MetaStore;
use crate::model::{CheckpointPartRecord, CheckpointRecord, ClusterRecord, ClusterType};

/// The top-level row of a sharded cluster, `first`, of a freshly bootstrapped project.
async fn seed_sharded(meta: &dyn MetaStore) -> ClusterRecord {
    let group = seed_account(meta).await.group.id;
    let rows = sharded_cluster(group, "first", 2);
    meta.insert_clusters(&rows).await.unwrap();
    rows[0].clone()
}

/// A second sharded cluster in the project of `first`.
async fn seed_another(meta: &dyn MetaStore, first: &ClusterRecord, name: &str) -> ClusterRecord {
    let rows = sharded_cluster(first.group_id, name, 1);
    meta.insert_clusters(&rows).await.unwrap();
    rows[0].clone()
}

/// A checkpoint of `cluster` at `timestamp`; `inc` tells apart the parts of candidates
/// recorded for the same moment by different nodes.
fn checkpoint(cluster: &ClusterRecord, timestamp: u32, inc: u32) -> CheckpointRecord {
    let part = |name: &str, shard: bool, inc| CheckpointPartRecord {
        replica_set_name: name.to_owned(),
        shard_name: shard.then(|| name.to_owned()),
        type_name: if shard {
            ClusterType::ReplicaSet
        } else {
            ClusterType::ConfigServerReplicaSet
        },
        token: ts(timestamp - 1, inc),
    };
    CheckpointRecord {
        id: CheckpointId::generate(),
        group_id: cluster.group_id,
        cluster_id: cluster.id,
        timestamp,
        recorded: i64::from(timestamp) + 5,
        // Not in name order: the parts keep the order they were recorded in.
        parts: vec![
            part("s-shard-1", true, inc),
            part("s-shard-0", true, inc + 1),
            part("s-config", false, inc + 2),
        ],
    }
}

pub async fn a_moment_is_recorded_once_whichever_node_records_it(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let first = checkpoint(&cluster, 1_800, 1);
    assert!(meta.insert_checkpoint(&first).await.unwrap());
    let other_node = checkpoint(&cluster, 1_800, 7);
    assert!(!meta.insert_checkpoint(&other_node).await.unwrap());
    assert_eq!(
        meta.get_checkpoint(cluster.group_id, cluster.id, other_node.id)
            .await
            .unwrap(),
        None,
        "the refused checkpoint wrote nothing"
    );
    assert_eq!(
        meta.get_checkpoint(cluster.group_id, cluster.id, first.id)
            .await
            .unwrap(),
        Some(first),
        "the recorded one keeps its parts, in order"
    );
    let other = seed_another(meta, &cluster, "second").await;
    assert!(
        meta.insert_checkpoint(&checkpoint(&other, 1_800, 1))
            .await
            .unwrap(),
        "the same moment of another cluster is another checkpoint"
    );
}

pub async fn racing_nodes_record_a_moment_once(meta: Arc<dyn MetaStore>) {
    let cluster = seed_sharded(meta.as_ref()).await;
    let candidates: Arc<Vec<CheckpointRecord>> =
        Arc::new((0..4).map(|i| checkpoint(&cluster, 900, i * 10)).collect());
    let racing = candidates.clone();
    let recorded = race(&meta, candidates.len(), move |meta, i| {
        let racing = racing.clone();
        async move { meta.insert_checkpoint(&racing[i]).await.unwrap() }
    })
    .await;
    assert_eq!(
        recorded.iter().filter(|r| **r).count(),
        1,
        "one node recorded it: {recorded:?}"
    );
    let winner = recorded.iter().position(|r| *r).unwrap_or_default();
    let listed = meta
        .list_checkpoints(cluster.group_id, cluster.id, ALL)
        .await
        .unwrap();
    assert_eq!(
        listed.items,
        vec![candidates[winner].clone()],
        "with the winner's parts only"
    );
}

pub async fn checkpoints_are_listed_newest_first_in_pages(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let other = seed_another(meta, &cluster, "second").await;
    let mut recorded = Vec::new();
    for at in [2_700, 900, 1_800] {
        let c = checkpoint(&cluster, at, 1);
        assert!(meta.insert_checkpoint(&c).await.unwrap());
        recorded.push(c);
    }
    assert!(meta
        .insert_checkpoint(&checkpoint(&other, 3_600, 1))
        .await
        .unwrap());
    let newest_first = vec![
        recorded[0].clone(),
        recorded[2].clone(),
        recorded[1].clone(),
    ];
    let listed = meta
        .list_checkpoints(cluster.group_id, cluster.id, ALL)
        .await
        .unwrap();
    assert_eq!((listed.total, listed.items), (3, newest_first.clone()));
    let second = meta
        .list_checkpoints(cluster.group_id, cluster.id, page(1, 1))
        .await
        .unwrap();
    assert_eq!(
        (second.total, second.items),
        (3, vec![newest_first[1].clone()])
    );
    let wrong_group = meta
        .list_checkpoints(GroupId::generate(), cluster.id, ALL)
        .await
        .unwrap();
    assert_eq!((wrong_group.total, wrong_group.items.len()), (0, 0));
}

pub async fn a_checkpoint_is_found_only_in_its_cluster(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let c = checkpoint(&cluster, 1_800, 1);
    assert!(meta.insert_checkpoint(&c).await.unwrap());
    let get = |group, cluster, id| async move { meta.get_checkpoint(group, cluster, id).await };
    assert_eq!(
        get(cluster.group_id, cluster.id, c.id).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        get(GroupId::generate(), cluster.id, c.id).await.unwrap(),
        None
    );
    assert_eq!(
        get(cluster.group_id, ClusterId::generate(), c.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        get(cluster.group_id, cluster.id, CheckpointId::generate())
            .await
            .unwrap(),
        None
    );
}

pub async fn checkpoint_moments_are_listed_ascending_per_cluster(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let other = seed_another(meta, &cluster, "second").await;
    for at in [2_700, 900, 1_800] {
        assert!(meta
            .insert_checkpoint(&checkpoint(&cluster, at, 1))
            .await
            .unwrap());
    }
    assert!(meta
        .insert_checkpoint(&checkpoint(&other, 3_600, 1))
        .await
        .unwrap());
    assert_eq!(
        meta.checkpoint_timestamps(cluster.id).await.unwrap(),
        vec![900, 1_800, 2_700]
    );
    assert_eq!(
        meta.checkpoint_timestamps(other.id).await.unwrap(),
        vec![3_600]
    );
    assert!(meta
        .checkpoint_timestamps(ClusterId::generate())
        .await
        .unwrap()
        .is_empty());
}

pub async fn checkpointed_clusters_are_those_with_checkpoints(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let other = seed_another(meta, &cluster, "second").await;
    seed_another(meta, &cluster, "never").await;
    assert!(meta.checkpointed_clusters().await.unwrap().is_empty());
    for (c, at) in [(&cluster, 900), (&cluster, 1_800), (&other, 900)] {
        assert!(meta.insert_checkpoint(&checkpoint(c, at, 1)).await.unwrap());
    }
    let mut listed = meta.checkpointed_clusters().await.unwrap();
    listed.sort_by_key(|(_, c)| *c);
    let mut expected = vec![(cluster.group_id, cluster.id), (other.group_id, other.id)];
    expected.sort_by_key(|(_, c)| *c);
    assert_eq!(listed, expected, "each once, with its project");
}

pub async fn checkpoints_before_a_moment_are_deleted_with_their_parts(meta: &dyn MetaStore) {
    let cluster = seed_sharded(meta).await;
    let other = seed_another(meta, &cluster, "second").await;
    for at in [900, 1_800, 2_700] {
        assert!(meta
            .insert_checkpoint(&checkpoint(&cluster, at, 1))
            .await
            .unwrap());
    }
    assert!(meta
        .insert_checkpoint(&checkpoint(&other, 900, 1))
        .await
        .unwrap());
    assert_eq!(
        meta.delete_checkpoints_before(cluster.id, 1_800)
            .await
            .unwrap(),
        1,
        "strictly before the moment"
    );
    assert_eq!(
        meta.checkpoint_timestamps(cluster.id).await.unwrap(),
        vec![1_800, 2_700]
    );
    assert_eq!(
        meta.checkpoint_timestamps(other.id).await.unwrap(),
        vec![900],
        "other clusters keep theirs"
    );
    assert_eq!(
        meta.delete_checkpoints_before(cluster.id, 1_800)
            .await
            .unwrap(),
        0
    );
    // The moment is free again, and nothing of the deleted checkpoint's parts comes back.
    let again = checkpoint(&cluster, 900, 50);
    assert!(meta.insert_checkpoint(&again).await.unwrap());
    assert_eq!(
        meta.get_checkpoint(cluster.group_id, cluster.id, again.id)
            .await
            .unwrap(),
        Some(again)
    );
}

mod tests {
    contract_tests!(
        a_moment_is_recorded_once_whichever_node_records_it,
        checkpoints_are_listed_newest_first_in_pages,
        a_checkpoint_is_found_only_in_its_cluster,
        checkpoint_moments_are_listed_ascending_per_cluster,
        checkpointed_clusters_are_those_with_checkpoints,
        checkpoints_before_a_moment_are_deleted_with_their_parts,
    );
    contract_tests!(concurrent: racing_nodes_record_a_moment_once);
}
