//! Finding, listing, keeping and deleting snapshots.

use super::invalid;
use crate::domain::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId, SnapshotId};
use crate::model::{OplogTs, PageOf, PageRequest, SnapshotRecord, UnixSeconds};

fn snapshot_not_found(id: SnapshotId, cluster: ClusterId) -> DomainError {
    DomainError::rejected(
        ErrorCode::SnapshotNotFound,
        format!("No snapshot with ID {id} exists for cluster {cluster}."),
        vec![id.to_hex(), cluster.to_hex()],
    )
}

impl Services {
    /// Loads a live snapshot of a cluster the caller may read.
    pub async fn get_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<SnapshotRecord> {
        self.live_snapshot(principal, group, cluster, id, GroupAccess::Read)
            .await
    }

    /// A snapshot that is not deleted, of a cluster the caller may act on as `access` says.
    async fn live_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
        access: GroupAccess,
    ) -> DomainResult<SnapshotRecord> {
        self.authorized_cluster(principal, group, cluster, access)
            .await?;
        match self.meta.get_snapshot(group, cluster, id).await? {
            Some(s) if s.deleted_at.is_none() => Ok(s),
            _ => Err(snapshot_not_found(id, cluster)),
        }
    }

    pub async fn list_snapshots(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        page: PageRequest,
    ) -> DomainResult<PageOf<SnapshotRecord>> {
        self.authorized_cluster(principal, group, cluster, GroupAccess::Read)
            .await?;
        Ok(self.meta.list_snapshots(group, cluster, page).await?)
    }

    /// A live snapshot the caller may change (backup administration).
    pub(super) async fn get_snapshot_for_write(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<SnapshotRecord> {
        self.live_snapshot(principal, group, cluster, id, GroupAccess::BackupAdmin)
            .await
    }

    /// `PATCH …/snapshots/{S}`: `doNotDelete` true clears `expires`; an expiry already in the
    /// past cannot be edited, and a new one must lie in the future.
    pub async fn update_snapshot_retention(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
        expires: Option<UnixSeconds>,
        do_not_delete: Option<bool>,
    ) -> DomainResult<SnapshotRecord> {
        let record = self
            .get_snapshot_for_write(principal, group, cluster, id)
            .await?;
        let now = self.clock.now();
        if expires.is_some() && record.expires.is_some_and(|e| e < now) {
            return Err(invalid("expires", "Invalid attribute expires specified: this snapshot's expiry has passed and cannot be edited."));
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(invalid(
                "expires",
                "Invalid attribute expires specified: it must lie in the future.",
            ));
        }
        let do_not_delete = do_not_delete.unwrap_or(record.do_not_delete);
        let expires = if do_not_delete {
            None
        } else {
            expires.or(record.expires)
        };
        self.meta
            .set_snapshot_retention(id, expires, do_not_delete)
            .await?;
        self.get_snapshot(principal, group, cluster, id).await
    }

    /// The complete, live snapshots of a cluster taken at or before `at`, newest first.
    pub async fn complete_snapshots_at_or_before(
        &self,
        group: GroupId,
        cluster: ClusterId,
        at: OplogTs,
    ) -> DomainResult<Vec<SnapshotRecord>> {
        // Large pages: the stores page with OFFSET, whose cost grows with each page.
        const PAGE: u64 = 2_000;
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .meta
                .list_snapshots(
                    group,
                    cluster,
                    PageRequest {
                        offset,
                        limit: PAGE,
                    },
                )
                .await?;
            let full = page.items.len() as u64 == PAGE;
            found.extend(
                page.items
                    .into_iter()
                    .filter(|s| s.complete && s.deleted_at.is_none() && s.created <= at),
            );
            if !full {
                // The stores list newest first already; the order is made sure of here
                // because `ClusterCoverage::base_snapshot` bisects it.
                found.sort_by_key(|s| std::cmp::Reverse(s.created));
                return Ok(found);
            }
            offset += PAGE;
        }
    }

    /// Deletes a snapshot. Its chunks are released by the sweeper once no restore reads
    /// them, and collected only after the GC delay.
    pub async fn delete_snapshot(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        id: SnapshotId,
    ) -> DomainResult<()> {
        let record = self
            .get_snapshot_for_write(principal, group, cluster, id)
            .await?;
        if record.do_not_delete {
            return Err(DomainError::rejected(
                ErrorCode::SnapshotMarkedDoNotDelete,
                format!("Snapshot {id} is marked doNotDelete; clear that flag first."),
                vec![id.to_hex()],
            ));
        }
        self.meta
            .mark_snapshot_deleted(id, self.clock.now())
            .await?;
        tracing::info!(snapshot.id = %id, "snapshot deleted");
        Ok(())
    }
}
