//! Console sessions: who is signed in to the web console, until when. Shared by every node.
//!
//! A session lives in the metadata store rather than in one node's memory, so that a
//! browser signed in through one node stays signed in whichever node its next request
//! reaches, and a sign-out on one node ends the session on all of them.

use async_trait::async_trait;

use super::MetaResult;
use crate::ids::ApiKeyId;
use crate::model::UnixSeconds;

/// One signed-in console session. The store keeps only a hash of the cookie's secret, so a
/// copy of the database signs nobody in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRecord {
    /// SHA-256 of the session cookie's secret, lowercase hex (64 chars).
    pub id_hash: String,
    pub key_id: ApiKeyId,
    /// The CSRF token every state-changing form of this session carries.
    pub csrf_token: String,
    pub created: UnixSeconds,
    pub expires: UnixSeconds,
}

/// The console's sessions. A session belongs to its API key: deleting the key ends every
/// session signed in with it, in the same statement.
#[async_trait]
pub trait ConsoleSessionMeta: Send + Sync + 'static {
    /// Stores a new session. Another session with the same `id_hash` is `MetaError::Conflict`.
    /// The key must exist (a session of no key is refused as a backend error).
    async fn insert_console_session(&self, session: &ConsoleSessionRecord) -> MetaResult<()>;
    /// The session with this hash, if it exists and `expires > now`: a session is over at
    /// its `expires` second, whether or not it has been purged yet.
    async fn find_console_session(
        &self,
        id_hash: &str,
        now: UnixSeconds,
    ) -> MetaResult<Option<ConsoleSessionRecord>>;
    /// Ends a session (sign-out). Returns whether one existed.
    async fn delete_console_session(&self, id_hash: &str) -> MetaResult<bool>;
    /// Forgets the sessions with `expires <= now`; returns how many.
    async fn purge_console_sessions(&self, now: UnixSeconds) -> MetaResult<u64>;
}
