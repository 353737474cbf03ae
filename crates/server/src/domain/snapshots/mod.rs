//! Snapshots: importing a cluster's data files chunk by chunk, committing per-replica-set
//! manifests, retention settings, deletion, and verification.
//!
//! The parts: [`import`] opens a snapshot and takes its chunks, [`manifest`] commits and
//! reads each replica set's manifest, `lifecycle` finds, lists, keeps and deletes
//! snapshots, `verify` re-reads their chunks. This module holds the checks they share.

pub mod import;
mod lifecycle;
pub mod manifest;
pub(crate) mod packs;
mod verify;

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::blocks::ChunkId;
use crate::ids::{ClusterId, GroupId};
use crate::model::ClusterRecord;

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::rejected(ErrorCode::InvalidAttribute, detail, vec![field.to_owned()])
}

fn parse_chunk_hex(text: &str) -> DomainResult<ChunkId> {
    ChunkId::parse_hex(text).ok_or_else(|| {
        invalid(
            "ids",
            format!("Invalid attribute ids specified: {text:?} is not a 64-hex chunk id."),
        )
    })
}

impl Services {
    async fn authorized_cluster(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        access: GroupAccess,
    ) -> DomainResult<ClusterRecord> {
        self.authorize_group(principal, group, access).await?;
        self.find_cluster(group, cluster).await
    }
}
