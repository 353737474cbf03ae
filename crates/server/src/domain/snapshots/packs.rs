//! The writer's and the deleter's halves of the pack protocol several nodes sharing one
//! block store follow (see `domain::garbage` for the whole of it): a writer claims a pack's
//! row before its put and indexes it only while the claim holds; a deleter moves the row
//! to `deleting` before deleting the object, and removes the row after.

use std::time::Duration;

use crate::blocks::{BlockStore, ObjectKey, PackId};
use crate::domain::{block_error, Clock, DomainError, DomainResult, ErrorCode};
use crate::ids::ClaimToken;
use crate::meta::MetaStore;

/// How long a writer waits for a deletion of the pack it is about to write to finish
/// before its batch fails (to be sent again).
const DELETION_WAIT: Duration = Duration::from_secs(10);
/// Between two looks at a pack being deleted.
const DELETION_POLL: Duration = Duration::from_millis(100);

/// Claims `pack`'s row for a writer about to put its object (see
/// [`crate::meta::SnapshotMeta::claim_pack`]) and returns the claim it then holds. While
/// the pack is being deleted it waits for the deletion to finish (the object is then
/// written anew), for at most [`DELETION_WAIT`]; after that the batch is refused, to be
/// sent again.
pub(crate) async fn claim_pack(
    meta: &dyn MetaStore,
    clock: &dyn Clock,
    pack: PackId,
    pack_bytes: u64,
) -> DomainResult<ClaimToken> {
    let mut waited = Duration::ZERO;
    loop {
        let token = ClaimToken::generate();
        if let Some(held) = meta
            .claim_pack(pack, pack_bytes, token, clock.now())
            .await?
        {
            return Ok(held);
        }
        if waited >= DELETION_WAIT {
            return Err(DomainError::rejected(
                ErrorCode::StorageUnavailable,
                format!(
                    "The chunks of this batch lie in a pack the server is deleting, and that deletion did not finish \
                     within {} s. Nothing of this batch was stored; send it again.",
                    DELETION_WAIT.as_secs()
                ),
                vec![],
            ));
        }
        tokio::time::sleep(DELETION_POLL).await;
        waited += DELETION_POLL;
    }
}

/// The refusal of a batch whose pack claim was taken from it (its writer stalled past the
/// grace period and a sweep deleted the pack): nothing of it was indexed.
pub(crate) fn claim_lost(pack: PackId) -> DomainError {
    tracing::warn!(pack = %pack, "an upload's pack claim was swept before it was indexed");
    DomainError::rejected(
        ErrorCode::StorageUnavailable,
        "Storing this batch took longer than the garbage collector's grace period, which then deleted its pack. \
         Nothing of this batch was stored; send it again.",
        vec![],
    )
}

/// Deletes the object of a pack whose row is `deleting` under `deletion`, then the row. A
/// failure leaves the row `deleting`, for a later sweep to finish.
pub(crate) async fn delete_pack(
    meta: &dyn MetaStore,
    blocks: &dyn BlockStore,
    pack: PackId,
    deletion: ClaimToken,
) -> DomainResult<()> {
    blocks
        .delete_object(&ObjectKey::Pack(pack))
        .await
        .map_err(block_error)?;
    meta.finish_pack_deletion(pack, deletion).await?;
    Ok(())
}
