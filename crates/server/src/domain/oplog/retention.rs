//! Retention: retiring the slices a restore inside the project's window can no longer need,
//! and deleting retired slices' objects (and those of pushes that never committed) after
//! the GC delay.

use crate::domain::block_error;
use crate::domain::{DomainResult, Services};
use crate::ids::{ClusterId, GroupId};
use crate::model::{OplogTs, UnixSeconds};
use crate::oplog::slice::slice_key;

/// Slice objects deleted per sweeper pass, so one pass never holds the GC lock for long.
const SLICES_COLLECTED_PER_PASS: u32 = 2000;

impl Services {
    /// Retention: retires each replica set's slices that a point-in-time restore inside the
    /// project's window can no longer need. Kept: everything from the window's start, and
    /// from the newest complete snapshot taken at or before it (a restore to the window's
    /// start replays from there), plus the slice holding that point, so the stored range
    /// still reaches back to it. Returns how many slices were retired; their objects are
    /// deleted after the GC delay by [`Self::collect_oplog_slices`].
    pub async fn retain_oplog(&self, now: UnixSeconds) -> DomainResult<u64> {
        let mut retired = 0;
        for (group, stream) in self.meta.oplog_streams().await? {
            let start = self.settings_of(group).await?.window_start(now);
            let window_start = OplogTs {
                secs: u32::try_from(start).unwrap_or(u32::MAX),
                inc: 0,
            };
            let mut keep_from = match self
                .newest_snapshot_at_or_before(group, stream.cluster, window_start)
                .await?
            {
                Some(created) => created.min(window_start),
                None => window_start,
            };
            // Restores to a moment still being prepared or downloaded read from their
            // snapshot on.
            if let Some(read_from) = self
                .meta
                .oldest_active_oplog_start(stream.cluster, now)
                .await?
            {
                keep_from = keep_from.min(read_from);
            }
            let lock = self.oplog_lock(&stream);
            let _serialized = lock.lock().await;
            let count = self
                .meta
                .retire_oplog_before(&stream, keep_from, now)
                .await?;
            if count > 0 {
                tracing::info!(
                    cluster.id = %stream.cluster,
                    replica_set = %stream.replica_set,
                    slices = count,
                    keep_from = %keep_from,
                    "oplog slices retired by retention"
                );
            }
            retired += count;
        }
        Ok(retired)
    }

    /// The `created` timestamp of the newest complete, live snapshot of `cluster` taken at
    /// or before `at`.
    async fn newest_snapshot_at_or_before(
        &self,
        group: GroupId,
        cluster: ClusterId,
        at: OplogTs,
    ) -> DomainResult<Option<OplogTs>> {
        let snapshots = self
            .complete_snapshots_at_or_before(group, cluster, at)
            .await?;
        Ok(snapshots.first().map(|s| s.created))
    }

    /// Deletes the objects of slices retired before `before`, and of pushes that recorded
    /// slices as pending before it and never committed them.
    pub async fn collect_oplog_slices(&self, before: UnixSeconds) -> DomainResult<usize> {
        let _exclusive = self.gc_lock.write().await;
        let collectable = self
            .meta
            .collectable_oplog_slices(before, SLICES_COLLECTED_PER_PASS)
            .await?;
        let mut collected = 0;
        for slice in &collectable {
            // Marked first, so a push on another node that is still writing this slice
            // cannot commit it once its object is gone.
            if !self
                .meta
                .start_slice_deletion(slice.id, before, self.clock.now())
                .await?
            {
                continue;
            }
            self.blocks
                .delete_object(&slice_key(&slice.stream, slice.id))
                .await
                .map_err(block_error)?;
            self.meta.forget_oplog_slice(slice.id).await?;
            collected += 1;
        }
        Ok(collected)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rewind_formats::oplog::entry::test_entries::{entry, run, ts};

    use super::super::test_fixture::Fixture;
    use super::*;
    use crate::domain::test_support::NOW;
    use crate::domain::Clock;
    use crate::ids::OplogSliceId;
    use crate::model::{ClusterType, PageRequest, SnapshotRecord};

    /// A finished point-in-time restore of `snapshot` whose link expires at `expires`.
    fn live_pit_job(
        f: &Fixture,
        snapshot: crate::ids::SnapshotId,
        expires: UnixSeconds,
    ) -> crate::model::RestoreJobRecord {
        use crate::model::{DeliveryMethod, DeliveryStatus, JobStatus};
        crate::model::RestoreJobRecord {
            id: crate::ids::JobId::generate(),
            batch_id: None,
            group_id: f.group,
            cluster_id: f.cluster,
            snapshot_id: snapshot,
            replica_set_name: "rs0".into(),
            part_type: ClusterType::ReplicaSet,
            created: NOW,
            status: JobStatus::Finished,
            delivery_status: DeliveryStatus::Ready,
            method: DeliveryMethod::Http {
                max_downloads: 1,
                expiration_hours: None,
            },
            expires: Some(expires),
            point_in_time: true,
            timestamp: ts(NOW as u32 - 100, 1),
            file_name: "rs0".into(),
            archive_bytes: Some(1),
            archive_sha1: Some("0".repeat(40)),
            downloads_started: 0,
            downloads_completed: 0,
            resume_offset: None,
            resent_bytes: 0,
            finished_at: Some(NOW),
            failure: None,
            attempts: 1,
        }
    }

    #[tokio::test]
    async fn retention_keeps_the_window_and_the_snapshot_before_it() {
        let f = Fixture::new().await;
        let hour = 3_600u32;
        let now = NOW as u32;
        // Three stretches: 30 h ago, from 2 h to 20 min ago (one push, a few slices), and
        // recent.
        f.push(run(now - 30 * hour, 10, "old"), None).await.unwrap();
        let payload = "q".repeat(3_000);
        let middle: Vec<u8> = (0..3_000u32)
            .flat_map(|i| entry(ts(now - 2 * hour + 2 * i, 1), &payload))
            .collect();
        f.push(middle, None).await.unwrap();
        f.push(run(now - 60, 10, "recent"), None).await.unwrap();
        let before = f.summary().await;
        assert_eq!(before.ranges.len(), 3);
        let middle_slices = before.slices - 2;
        assert!(middle_slices >= 2);

        // The default window (24 h) drops the oldest stretch only.
        assert_eq!(f.services.retain_oplog(NOW).await.unwrap(), 1);
        let after = f.summary().await;
        assert_eq!(after.ranges.len(), 2);
        assert_eq!(after.ranges[0].first, ts(now - 2 * hour, 1));

        // With a 1 h window, a snapshot taken before the window keeps the oplog from it.
        f.services
            .set_pit_window(&f.principal, f.group, 1)
            .await
            .unwrap();
        let snapshot_at = ts(now - 2 * hour + 200, 1);
        f.services
            .meta
            .insert_snapshot(&SnapshotRecord {
                id: crate::ids::SnapshotId::generate(),
                group_id: f.group,
                cluster_id: f.cluster,
                created: snapshot_at,
                last_oplog_applied: None,
                complete: true,
                expires: None,
                do_not_delete: false,
                deleted_at: None,
                mongod_version: "7.0.0".into(),
                storage_engine: "wiredTiger".into(),
                recorded: NOW,
                parts: vec![],
            })
            .await
            .unwrap();
        f.services.retain_oplog(f.clock.now()).await.unwrap();
        let kept = f.summary().await;
        assert_eq!(kept.ranges.len(), 2);
        assert!(kept.ranges[0].first <= snapshot_at, "{kept:?}");
        assert_eq!(kept.ranges[0].first, after.ranges[0].first);

        // A restore to a moment from that snapshot, whose link is live for one more
        // second, keeps the oplog from the snapshot on even once the snapshot is deleted.
        let snapshots = f
            .services
            .meta
            .list_snapshots(
                f.group,
                f.cluster,
                PageRequest {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        f.services
            .meta
            .insert_jobs(&[live_pit_job(&f, snapshots.items[0].id, NOW + 1)])
            .await
            .unwrap();
        f.services
            .meta
            .mark_snapshot_deleted(snapshots.items[0].id, NOW)
            .await
            .unwrap();
        assert_eq!(f.services.retain_oplog(NOW).await.unwrap(), 0);
        assert_eq!(f.summary().await.ranges[0].first, after.ranges[0].first);
        f.clock.set(NOW + 2);

        // Without that snapshot and that restore, the window stays, with the slice
        // holding its start.
        let retired = f.services.retain_oplog(f.clock.now()).await.unwrap();
        assert!(retired >= 1);
        let trimmed = f.summary().await;
        let window_start = ts(now - hour, 0);
        assert!(trimmed.ranges[0].first <= window_start, "{trimmed:?}");
        assert!(trimmed.ranges[0].first > snapshot_at, "{trimmed:?}");
        assert_eq!(trimmed.ranges[0].last, before.ranges[1].last);

        // Nothing retired is deleted before the GC delay; afterwards the objects go.
        let objects = f.object_count().await;
        let collected = f
            .services
            .collect_oplog_slices(f.clock.now() + 1)
            .await
            .unwrap();
        assert_eq!(f.object_count().await, objects - collected);
        assert_eq!(f.object_count().await as u64, trimmed.slices);
    }

    #[tokio::test]
    async fn pending_slices_of_a_push_that_never_committed_are_collected() {
        let f = Fixture::new().await;
        let id = OplogSliceId::generate();
        f.services
            .meta
            .record_pending_slices(&f.stream(), &[id], NOW)
            .await
            .unwrap();
        let key = slice_key(&f.stream(), id);
        f.services
            .blocks
            .put_object(&key, Bytes::from_static(b"half a push"))
            .await
            .unwrap();
        assert_eq!(f.services.collect_oplog_slices(NOW).await.unwrap(), 0);
        assert_eq!(f.services.collect_oplog_slices(NOW + 1).await.unwrap(), 1);
        assert_eq!(f.object_count().await, 0);
    }
}
