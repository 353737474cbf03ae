//! The read side: what a replica set's stored oplog holds (summaries for the status
//! endpoints) and where in it a moment falls.

use std::collections::HashMap;

use crate::domain::{DomainError, DomainResult, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId};
use crate::model::{OplogStream, OplogStreamSummary, OplogTs};
use crate::oplog::coverage;

fn empty_summary(replica_set: &str) -> OplogStreamSummary {
    OplogStreamSummary {
        replica_set: replica_set.to_owned(),
        slices: 0,
        entries: 0,
        raw_bytes: 0,
        stored_bytes: 0,
        ranges: Vec::new(),
    }
}

impl Services {
    /// The stored oplog of one replica set (zeros when there is none).
    pub(super) async fn stream_summary(
        &self,
        stream: &OplogStream,
    ) -> DomainResult<OplogStreamSummary> {
        let summaries = self.meta.oplog_summaries(stream.cluster).await?;
        Ok(summaries
            .into_iter()
            .find(|s| s.replica_set == stream.replica_set)
            .unwrap_or_else(|| empty_summary(&stream.replica_set)))
    }

    /// The stored oplog of every replica set of a cluster, in member order.
    pub async fn oplog_status(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
    ) -> DomainResult<Vec<OplogStreamSummary>> {
        let names = self
            .oplog_replica_sets(principal, group, cluster, GroupAccess::Read)
            .await?;
        let mut stored: HashMap<String, OplogStreamSummary> = self
            .meta
            .oplog_summaries(cluster)
            .await?
            .into_iter()
            .map(|s| (s.replica_set.clone(), s))
            .collect();
        Ok(names
            .iter()
            .map(|n| stored.remove(n).unwrap_or_else(|| empty_summary(n)))
            .collect())
    }

    /// The stored oplog of one replica set.
    pub async fn replica_set_oplog_status(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        replica_set: &str,
    ) -> DomainResult<OplogStreamSummary> {
        let stream = self
            .oplog_stream(principal, group, cluster, replica_set, GroupAccess::Read)
            .await?;
        self.stream_summary(&stream).await
    }

    /// The ts of the newest stored entry of `stream` at or before `at`, when a stored range
    /// holds `at` (outside every range the answer would not be known to be the newest).
    /// Reads at most one slice: only when `at` falls inside one.
    pub(crate) async fn last_stored_entry_at_or_before(
        &self,
        stream: &OplogStream,
        at: OplogTs,
    ) -> DomainResult<Option<OplogTs>> {
        let ranges = self.meta.oplog_ranges(stream).await?;
        let Some(range) = coverage::range_containing(&ranges, at) else {
            return Ok(None);
        };
        let Some(newest) = self.meta.oplog_slices(stream, range.first, at).await?.pop() else {
            return Ok(None);
        };
        if newest.last <= at {
            return Ok(Some(newest.last));
        }
        let (_, entries) = self
            .load_slices(stream, vec![newest])
            .await?
            .pop()
            .ok_or_else(|| DomainError::Internal("a loaded slice vanished".into()))?;
        Ok(entries
            .marks
            .iter()
            .rev()
            .map(|m| m.ts)
            .find(|ts| *ts <= at))
    }
}
