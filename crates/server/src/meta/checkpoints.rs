//! The metadata of sharded-cluster checkpoints.

use async_trait::async_trait;

use super::MetaResult;
use crate::ids::{CheckpointId, ClusterId, GroupId};
use crate::model::{CheckpointRecord, PageOf, PageRequest};

#[async_trait]
pub trait CheckpointMeta: Send + Sync + 'static {
    /// Records a checkpoint with its parts, in one transaction. Returns `false`, writing
    /// nothing, when the cluster already has a checkpoint at that moment (recorded by an
    /// earlier pass or by another node).
    async fn insert_checkpoint(&self, checkpoint: &CheckpointRecord) -> MetaResult<bool>;
    /// A cluster's checkpoints, newest first.
    async fn list_checkpoints(
        &self,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> MetaResult<PageOf<CheckpointRecord>>;
    async fn get_checkpoint(
        &self,
        group: GroupId,
        cluster: ClusterId,
        id: CheckpointId,
    ) -> MetaResult<Option<CheckpointRecord>>;
    /// The moments (seconds) of a cluster's checkpoints, ascending.
    async fn checkpoint_timestamps(&self, cluster: ClusterId) -> MetaResult<Vec<u32>>;
    /// Every cluster that has checkpoints, with its project.
    async fn checkpointed_clusters(&self) -> MetaResult<Vec<(GroupId, ClusterId)>>;
    /// Deletes a cluster's checkpoints of moments before `before`; returns how many.
    async fn delete_checkpoints_before(&self, cluster: ClusterId, before: u32) -> MetaResult<u64>;
}
