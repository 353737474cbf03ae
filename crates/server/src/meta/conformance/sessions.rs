//! [`ConsoleSessionMeta`](crate::meta::ConsoleSessionMeta): the web console's signed-in
//! sessions, shared by every node.

use super::{api_key, assert_conflict, seed_account};
use crate::ids::ApiKeyId;
use crate::meta::{ConsoleSessionRecord, MetaStore};
use crate::model::UnixSeconds;

/// A session numbered `n` of `key`, from second 100 until `expires`. The hash has the
/// shape of a real one (64 lowercase hex digits), different for each `n`.
fn session(n: u64, key: ApiKeyId, expires: UnixSeconds) -> ConsoleSessionRecord {
    ConsoleSessionRecord {
        id_hash: format!("{n:064x}"),
        key_id: key,
        csrf_token: format!("csrf-{n}"),
        created: 100,
        expires,
    }
}

/// Whether a session with `id_hash` is stored at all, expired or not.
async fn is_stored(meta: &dyn MetaStore, id_hash: &str) -> bool {
    meta.find_console_session(id_hash, UnixSeconds::MIN)
        .await
        .unwrap()
        .is_some()
}

pub async fn a_stored_console_session_is_found_until_it_expires(meta: &dyn MetaStore) {
    let key = seed_account(meta).await.key.id;
    let stored = session(1, key, 1_000);
    meta.insert_console_session(&stored).await.unwrap();
    for now in [100, 999] {
        assert_eq!(
            meta.find_console_session(&stored.id_hash, now)
                .await
                .unwrap(),
            Some(stored.clone()),
            "at second {now}, before its expiry"
        );
    }
    for now in [1_000, 1_001] {
        assert_eq!(
            meta.find_console_session(&stored.id_hash, now)
                .await
                .unwrap(),
            None,
            "at second {now}, at or after its expiry"
        );
    }
    assert_eq!(
        meta.find_console_session(&session(2, key, 1_000).id_hash, 500)
            .await
            .unwrap(),
        None,
        "a hash never stored"
    );
}

pub async fn a_second_console_session_with_the_same_hash_is_a_conflict(meta: &dyn MetaStore) {
    let key = seed_account(meta).await.key.id;
    let first = session(1, key, 1_000);
    meta.insert_console_session(&first).await.unwrap();
    let again = ConsoleSessionRecord {
        csrf_token: "another token".to_owned(),
        expires: 2_000,
        ..first.clone()
    };
    assert_conflict(
        meta.insert_console_session(&again).await,
        "a second session under one hash",
    );
    assert_eq!(
        meta.find_console_session(&first.id_hash, 500)
            .await
            .unwrap(),
        Some(first),
        "the first session is untouched"
    );
}

pub async fn a_deleted_console_session_is_gone(meta: &dyn MetaStore) {
    let key = seed_account(meta).await.key.id;
    let stored = session(1, key, 1_000);
    meta.insert_console_session(&stored).await.unwrap();
    assert!(meta.delete_console_session(&stored.id_hash).await.unwrap());
    assert!(
        !meta.delete_console_session(&stored.id_hash).await.unwrap(),
        "already ended"
    );
    assert_eq!(
        meta.find_console_session(&stored.id_hash, 500)
            .await
            .unwrap(),
        None
    );
    assert!(
        !meta
            .delete_console_session(&session(2, key, 1_000).id_hash)
            .await
            .unwrap(),
        "a hash never stored"
    );
}

pub async fn purging_forgets_exactly_the_expired_console_sessions(meta: &dyn MetaStore) {
    let key = seed_account(meta).await.key.id;
    let sessions = [
        session(1, key, 200),
        session(2, key, 300),
        session(3, key, 300),
        session(4, key, 400),
    ];
    for s in &sessions {
        meta.insert_console_session(s).await.unwrap();
    }
    assert_eq!(meta.purge_console_sessions(199).await.unwrap(), 0);
    assert_eq!(
        meta.purge_console_sessions(300).await.unwrap(),
        3,
        "those expiring at or before second 300"
    );
    assert_eq!(
        meta.purge_console_sessions(300).await.unwrap(),
        0,
        "nothing left to forget"
    );
    for s in &sessions[..3] {
        assert!(!is_stored(meta, &s.id_hash).await, "{} purged", s.id_hash);
    }
    assert_eq!(
        meta.find_console_session(&sessions[3].id_hash, 300)
            .await
            .unwrap(),
        Some(sessions[3].clone()),
        "the live one stays"
    );
}

pub async fn deleting_an_api_key_ends_its_console_sessions(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let doomed = api_key(account.org.id, "doomed");
    meta.insert_api_key(&doomed).await.unwrap();
    let of_doomed = [session(1, doomed.id, 1_000), session(2, doomed.id, 2_000)];
    let of_other = session(3, account.key.id, 1_000);
    for s in of_doomed.iter().chain([&of_other]) {
        meta.insert_console_session(s).await.unwrap();
    }
    assert!(meta
        .delete_api_key(account.org.id, doomed.id)
        .await
        .unwrap());
    for s in &of_doomed {
        assert!(!is_stored(meta, &s.id_hash).await, "{} ended", s.id_hash);
        assert!(!meta.delete_console_session(&s.id_hash).await.unwrap());
    }
    assert_eq!(
        meta.find_console_session(&of_other.id_hash, 500)
            .await
            .unwrap(),
        Some(of_other),
        "another key's session stays"
    );
}

pub async fn two_console_sessions_of_one_key_are_independent(meta: &dyn MetaStore) {
    let key = seed_account(meta).await.key.id;
    let (a, b, c) = (
        session(1, key, 1_000),
        session(2, key, 1_000),
        session(3, key, 2_000),
    );
    for s in [&a, &b, &c] {
        meta.insert_console_session(s).await.unwrap();
    }
    assert!(meta.delete_console_session(&a.id_hash).await.unwrap());
    assert_eq!(
        meta.find_console_session(&b.id_hash, 500).await.unwrap(),
        Some(b.clone()),
        "signing out of one session leaves the other"
    );
    assert_eq!(meta.purge_console_sessions(1_000).await.unwrap(), 1, "b");
    assert_eq!(
        meta.find_console_session(&c.id_hash, 1_000).await.unwrap(),
        Some(c),
        "b's expiry is not c's"
    );
}

mod tests {
    contract_tests!(
        a_stored_console_session_is_found_until_it_expires,
        a_second_console_session_with_the_same_hash_is_a_conflict,
        a_deleted_console_session_is_gone,
        purging_forgets_exactly_the_expired_console_sessions,
        deleting_an_api_key_ends_its_console_sessions,
        two_console_sessions_of_one_key_are_independent,
    );
}
