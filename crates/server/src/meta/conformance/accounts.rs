//! [`AccountMeta`](crate::meta::AccountMeta): secrets, bootstrap, projects, keys and their
//! access lists, clusters, backup settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{
    api_key, assert_conflict, bootstrap_records, group_record, page, race, replica_set,
    seed_account, seed_group, sharded_cluster, ALL,
};
use crate::ids::{ApiKeyId, ClusterId, GroupId, OrgId};
use crate::meta::{BootstrapRecords, GroupScope, MetaStore};
use crate::model::{AccessEntry, ApiKeyRecord, BackupSettingsRecord, Role, RoleGrant};

fn access(cidr: &str, created: i64) -> AccessEntry {
    AccessEntry {
        cidr: cidr.parse().expect("a CIDR block"),
        created,
    }
}

/// The key with its roles and access list in one canonical order: the trait promises
/// their contents, not the order a backend reads them back in.
fn canonical(mut key: ApiKeyRecord) -> ApiKeyRecord {
    key.roles
        .sort_by_key(|g| (g.group_id.map(|id| id.to_hex()), g.role.as_str()));
    key.access_list.sort_by_key(|e| e.cidr.to_string());
    key
}

async fn key_by_public(meta: &dyn MetaStore, public_key: &str) -> Option<ApiKeyRecord> {
    meta.get_api_key_by_public(public_key)
        .await
        .unwrap()
        .map(canonical)
}

fn scope(org_ids: Vec<OrgId>, group_ids: Vec<GroupId>) -> GroupScope {
    GroupScope { org_ids, group_ids }
}

pub async fn a_secret_keeps_the_value_it_was_first_created_with(meta: &dyn MetaStore) {
    let first = meta.secret("nonce", vec![1, 2, 3]).await.unwrap();
    assert_eq!(first, vec![1, 2, 3]);
    let again = meta.secret("nonce", vec![9, 9]).await.unwrap();
    assert_eq!(again, vec![1, 2, 3], "a later fresh value is ignored");
    let other = meta.secret("other", vec![7]).await.unwrap();
    assert_eq!(other, vec![7], "secrets are kept by name");
}

pub async fn racing_callers_of_a_secret_all_get_one_value(meta: Arc<dyn MetaStore>) {
    let values = race(&meta, 8, |meta, i| async move {
        meta.secret("shared", vec![i as u8; 16]).await.unwrap()
    })
    .await;
    let distinct: BTreeSet<_> = values.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "every caller got the same value: {values:?}"
    );
    assert_eq!(meta.secret("shared", vec![]).await.unwrap(), values[0]);
}

pub async fn bootstrap_writes_the_first_identity_and_nothing_after_it(meta: &dyn MetaStore) {
    let mut records = bootstrap_records("first");
    records.key.access_list = vec![access("127.0.0.1/32", 10), access("::1/128", 10)];
    assert!(meta.bootstrap(&records).await.unwrap());
    assert_eq!(
        meta.get_org(records.org.id).await.unwrap(),
        Some(records.org.clone())
    );
    assert_eq!(
        meta.get_group(records.group.id).await.unwrap(),
        Some(records.group.clone())
    );
    assert_eq!(
        key_by_public(meta, &records.key.public_key).await,
        Some(canonical(records.key.clone()))
    );

    let second = bootstrap_records("second");
    assert!(
        !meta.bootstrap(&second).await.unwrap(),
        "the store already holds an organization"
    );
    assert_eq!(meta.get_org(second.org.id).await.unwrap(), None);
    assert_eq!(meta.get_group(second.group.id).await.unwrap(), None);
    assert_eq!(key_by_public(meta, &second.key.public_key).await, None);
}

pub async fn racing_bootstraps_create_exactly_one_identity(meta: Arc<dyn MetaStore>) {
    let candidates: Arc<Vec<BootstrapRecords>> =
        Arc::new((0..4).map(|i| bootstrap_records(&i.to_string())).collect());
    let racing = candidates.clone();
    let won = race(&meta, candidates.len(), move |meta, i| {
        let racing = racing.clone();
        async move { meta.bootstrap(&racing[i]).await.unwrap() }
    })
    .await;
    assert_eq!(
        won.iter().filter(|w| **w).count(),
        1,
        "exactly one bootstrap wrote: {won:?}"
    );
    let every_org: Vec<OrgId> = candidates.iter().map(|a| a.org.id).collect();
    let mut orgs = 0;
    for (candidate, won) in candidates.iter().zip(&won) {
        let org = meta.get_org(candidate.org.id).await.unwrap();
        let group = meta.get_group(candidate.group.id).await.unwrap();
        let key = meta
            .get_api_key_by_public(&candidate.key.public_key)
            .await
            .unwrap();
        assert_eq!(org.is_some(), *won, "{candidate:?}");
        assert_eq!(group.is_some(), *won, "{candidate:?}");
        assert_eq!(key.is_some(), *won, "{candidate:?}");
        orgs += usize::from(org.is_some());
    }
    assert_eq!(orgs, 1);
    let groups = meta
        .list_groups(&scope(every_org.clone(), vec![]), ALL)
        .await
        .unwrap();
    assert_eq!(groups.total, 1, "one project: {groups:?}");
    let mut keys = 0;
    for org in every_org {
        keys += meta.list_api_keys(org, ALL).await.unwrap().total;
    }
    assert_eq!(keys, 1, "one key");
}

pub async fn unknown_ids_are_not_found(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    assert_eq!(meta.get_org(OrgId::generate()).await.unwrap(), None);
    assert_eq!(meta.get_group(GroupId::generate()).await.unwrap(), None);
    assert_eq!(meta.get_api_key_by_public("nobody").await.unwrap(), None);
    assert_eq!(
        meta.get_api_key(account.org.id, ApiKeyId::generate())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        meta.get_api_key(OrgId::generate(), account.key.id)
            .await
            .unwrap(),
        None,
        "a key is found only in its own organization"
    );
}

pub async fn a_project_name_is_unique_within_its_organization(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let first = seed_group(meta, account.org.id, "prod").await;
    assert_eq!(meta.get_group(first.id).await.unwrap(), Some(first.clone()));
    let twin = group_record(account.org.id, "prod");
    assert_conflict(
        meta.insert_group(&twin).await,
        "a second project named prod",
    );
    assert_eq!(meta.get_group(twin.id).await.unwrap(), None);
    let bootstrap_twin = group_record(account.org.id, &account.group.name);
    assert_conflict(
        meta.insert_group(&bootstrap_twin).await,
        "a project named as the bootstrap one",
    );
}

pub async fn projects_are_listed_by_organization_and_by_id_in_pages(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let a = seed_group(meta, account.org.id, "a").await;
    let b = seed_group(meta, account.org.id, "b").await;

    let by_org = meta
        .list_groups(&scope(vec![account.org.id], vec![]), ALL)
        .await
        .unwrap();
    assert_eq!(by_org.total, 3);
    let ids: BTreeSet<GroupId> = by_org.items.iter().map(|g| g.id).collect();
    assert_eq!(ids, BTreeSet::from([account.group.id, a.id, b.id]));

    let by_id = meta
        .list_groups(&scope(vec![], vec![b.id]), ALL)
        .await
        .unwrap();
    assert_eq!((by_id.total, by_id.items), (1, vec![b.clone()]));

    let both = meta
        .list_groups(&scope(vec![account.org.id], vec![a.id]), ALL)
        .await
        .unwrap();
    assert_eq!(both.total, 3, "a project in both parts is listed once");
    assert_eq!(both.items.len(), 3);

    let nothing = meta.list_groups(&scope(vec![], vec![]), ALL).await.unwrap();
    assert_eq!((nothing.total, nothing.items.len()), (0, 0));
    let elsewhere = meta
        .list_groups(
            &scope(vec![OrgId::generate()], vec![GroupId::generate()]),
            ALL,
        )
        .await
        .unwrap();
    assert_eq!((elsewhere.total, elsewhere.items.len()), (0, 0));

    // Pages follow one order: together they hold each project once.
    let org_scope = scope(vec![account.org.id], vec![]);
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let one = meta.list_groups(&org_scope, page(offset, 2)).await.unwrap();
        assert_eq!(one.total, 3, "the total counts every page");
        paged.extend(one.items);
    }
    assert_eq!(paged, by_org.items);
}

pub async fn a_key_reads_back_with_its_roles_and_access_list(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let other = seed_group(meta, account.org.id, "other").await;
    let mut key = api_key(account.org.id, "reader");
    key.roles = vec![
        RoleGrant {
            group_id: Some(account.group.id),
            role: Role::GroupOwner,
        },
        RoleGrant {
            group_id: Some(other.id),
            role: Role::GroupReadOnly,
        },
        RoleGrant {
            group_id: None,
            role: Role::OrgReadOnly,
        },
    ];
    key.access_list = vec![access("10.0.0.0/8", 5), access("192.168.1.7/32", 6)];
    meta.insert_api_key(&key).await.unwrap();
    let expected = Some(canonical(key.clone()));
    assert_eq!(key_by_public(meta, "reader").await, expected);
    assert_eq!(
        meta.get_api_key(account.org.id, key.id)
            .await
            .unwrap()
            .map(canonical),
        expected
    );
}

pub async fn a_public_key_belongs_to_one_key(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let first = api_key(account.org.id, "taken");
    meta.insert_api_key(&first).await.unwrap();
    let mut twin = api_key(account.org.id, "taken");
    twin.roles = vec![RoleGrant {
        group_id: None,
        role: Role::OrgOwner,
    }];
    assert_conflict(meta.insert_api_key(&twin).await, "a second key named taken");
    assert_eq!(
        meta.get_api_key(account.org.id, twin.id).await.unwrap(),
        None
    );
    assert_eq!(
        key_by_public(meta, "taken").await,
        Some(canonical(first)),
        "the first key is untouched"
    );
}

pub async fn an_organizations_keys_are_listed_in_pages(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    for name in ["k1", "k2", "k3", "k4"] {
        meta.insert_api_key(&api_key(account.org.id, name))
            .await
            .unwrap();
    }
    let all = meta.list_api_keys(account.org.id, ALL).await.unwrap();
    assert_eq!(all.total, 5, "the bootstrap key and four more");
    let names: BTreeSet<&str> = all.items.iter().map(|k| k.public_key.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["k1", "k2", "k3", "k4", account.key.public_key.as_str()])
    );
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let one = meta
            .list_api_keys(account.org.id, page(offset, 2))
            .await
            .unwrap();
        assert_eq!(one.total, 5);
        paged.extend(one.items);
    }
    assert_eq!(paged, all.items, "pages follow one order");
    let none = meta.list_api_keys(OrgId::generate(), ALL).await.unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
}

pub async fn deleting_a_key_reports_whether_it_was_there(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let mut key = api_key(account.org.id, "doomed");
    key.access_list = vec![access("10.1.0.0/16", 1)];
    meta.insert_api_key(&key).await.unwrap();
    assert!(
        !meta
            .delete_api_key(OrgId::generate(), key.id)
            .await
            .unwrap(),
        "not from another organization"
    );
    assert!(meta.delete_api_key(account.org.id, key.id).await.unwrap());
    assert!(!meta.delete_api_key(account.org.id, key.id).await.unwrap());
    assert_eq!(
        meta.get_api_key(account.org.id, key.id).await.unwrap(),
        None
    );
    assert_eq!(key_by_public(meta, "doomed").await, None);
    let reborn = api_key(account.org.id, "doomed");
    meta.insert_api_key(&reborn).await.unwrap();
    assert_eq!(
        key_by_public(meta, "doomed").await,
        Some(reborn),
        "a deleted key's public key is free again"
    );
}

pub async fn access_entries_are_added_without_disturbing_existing_ones(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let key = account.key.id;
    meta.add_access_entries(key, &[access("10.0.0.1/32", 100)])
        .await
        .unwrap();
    meta.add_access_entries(
        key,
        &[access("10.0.0.1/32", 200), access("10.0.0.2/32", 200)],
    )
    .await
    .unwrap();
    meta.add_access_entries(key, &[]).await.unwrap();
    let stored = key_by_public(meta, &account.key.public_key)
        .await
        .unwrap()
        .access_list;
    assert_eq!(
        stored,
        vec![access("10.0.0.1/32", 100), access("10.0.0.2/32", 200)],
        "a re-added entry is kept as it was"
    );
}

pub async fn deleting_an_access_entry_reports_whether_it_was_there(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let key = account.key.id;
    let (kept, dropped) = (access("10.0.0.1/32", 1), access("10.0.0.2/32", 1));
    meta.add_access_entries(key, &[kept.clone(), dropped.clone()])
        .await
        .unwrap();
    assert!(meta.delete_access_entry(key, &dropped.cidr).await.unwrap());
    assert!(!meta.delete_access_entry(key, &dropped.cidr).await.unwrap());
    assert!(!meta
        .delete_access_entry(ApiKeyId::generate(), &kept.cidr)
        .await
        .unwrap());
    let stored = key_by_public(meta, &account.key.public_key)
        .await
        .unwrap()
        .access_list;
    assert_eq!(stored, vec![kept]);
}

pub async fn a_cluster_name_is_unique_within_its_project(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let group = account.group.id;
    let sharded = sharded_cluster(group, "big", 2);
    meta.insert_clusters(&sharded).await.unwrap();

    // The whole second registration is refused, members and all.
    let twin = sharded_cluster(group, "big", 1);
    assert_conflict(
        meta.insert_clusters(&twin).await,
        "a second cluster named big",
    );
    let plain_twin = replica_set(group, "big");
    assert_conflict(
        meta.insert_clusters(std::slice::from_ref(&plain_twin))
            .await,
        "a replica set named as the sharded cluster",
    );
    let listed = meta.list_clusters(group, ALL).await.unwrap();
    let ids: BTreeSet<ClusterId> = listed.items.iter().map(|c| c.id).collect();
    assert_eq!(ids, sharded.iter().map(|c| c.id).collect::<BTreeSet<_>>());

    let elsewhere = seed_group(meta, account.org.id, "elsewhere").await;
    let same_name = sharded_cluster(elsewhere.id, "big", 1);
    meta.insert_clusters(&same_name).await.unwrap();
}

pub async fn a_projects_clusters_are_listed_in_pages(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let group = account.group.id;
    let mut rows = sharded_cluster(group, "big", 1);
    rows.push(replica_set(group, "small"));
    meta.insert_clusters(&rows).await.unwrap();
    let other = seed_group(meta, account.org.id, "other").await;
    meta.insert_clusters(&[replica_set(other.id, "theirs")])
        .await
        .unwrap();

    let all = meta.list_clusters(group, ALL).await.unwrap();
    assert_eq!(
        all.total, 4,
        "the rows of the sharded cluster and the replica set"
    );
    let mut listed = all.items.clone();
    listed.sort_by_key(|c| c.id);
    rows.sort_by_key(|c| c.id);
    assert_eq!(listed, rows, "rows read back as written");
    let mut paged = Vec::new();
    for offset in [0, 3] {
        let one = meta.list_clusters(group, page(offset, 3)).await.unwrap();
        assert_eq!(one.total, 4);
        paged.extend(one.items);
    }
    assert_eq!(paged, all.items, "pages follow one order");
    let none = meta.list_clusters(GroupId::generate(), ALL).await.unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
}

pub async fn each_backup_setting_is_kept_apart_from_the_other(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let group = account.group.id;
    let other = seed_group(meta, account.org.id, "other").await.id;
    let nothing = BackupSettingsRecord::default();
    assert_eq!(meta.backup_settings(group).await.unwrap(), nothing);

    let interval = BackupSettingsRecord {
        checkpoint_interval_minutes: Some(30),
        ..nothing
    };
    let stored = meta.update_backup_settings(group, &interval).await.unwrap();
    assert_eq!(stored, interval, "the window is still unset");
    let window = BackupSettingsRecord {
        pit_window_hours: Some(48),
        ..nothing
    };
    let both = BackupSettingsRecord {
        pit_window_hours: Some(48),
        checkpoint_interval_minutes: Some(30),
        ..nothing
    };
    assert_eq!(
        meta.update_backup_settings(group, &window).await.unwrap(),
        both,
        "setting the window keeps the interval"
    );
    let new_interval = BackupSettingsRecord {
        checkpoint_interval_minutes: Some(60),
        ..nothing
    };
    let after = BackupSettingsRecord {
        checkpoint_interval_minutes: Some(60),
        ..both
    };
    assert_eq!(
        meta.update_backup_settings(group, &new_interval)
            .await
            .unwrap(),
        after,
        "changing the interval keeps the window"
    );
    assert_eq!(
        meta.update_backup_settings(group, &nothing).await.unwrap(),
        after,
        "an empty change changes nothing"
    );
    assert_eq!(meta.backup_settings(group).await.unwrap(), after);
    assert_eq!(
        meta.backup_settings(other).await.unwrap(),
        nothing,
        "settings are per project"
    );
}

pub async fn the_snapshot_schedule_is_kept_in_the_same_record(meta: &dyn MetaStore) {
    let account = seed_account(meta).await;
    let group = account.group.id;
    let window = BackupSettingsRecord {
        pit_window_hours: Some(36),
        ..BackupSettingsRecord::default()
    };
    meta.update_backup_settings(group, &window).await.unwrap();
    let schedule = BackupSettingsRecord {
        snapshot_interval_hours: Some(6),
        snapshot_retention_days: Some(2),
        daily_retention_days: Some(7),
        weekly_retention_weeks: Some(4),
        monthly_retention_months: Some(13),
        reference_hour_of_day: Some(23),
        reference_minute_of_hour: Some(59),
        reference_offset_minutes: Some(-330),
        ..BackupSettingsRecord::default()
    };
    let stored = meta.update_backup_settings(group, &schedule).await.unwrap();
    let expected = BackupSettingsRecord {
        pit_window_hours: Some(36),
        ..schedule
    };
    assert_eq!(
        stored, expected,
        "the window is kept, every schedule field stored"
    );
    assert_eq!(meta.backup_settings(group).await.unwrap(), expected);
    let daily = BackupSettingsRecord {
        daily_retention_days: Some(30),
        reference_offset_minutes: Some(0),
        ..BackupSettingsRecord::default()
    };
    assert_eq!(
        meta.update_backup_settings(group, &daily).await.unwrap(),
        BackupSettingsRecord {
            daily_retention_days: Some(30),
            reference_offset_minutes: Some(0),
            ..expected
        },
        "one field changes, the others stay"
    );
}

pub async fn concurrent_changes_to_different_settings_both_survive(meta: Arc<dyn MetaStore>) {
    let account = seed_account(meta.as_ref()).await;
    let group = account.group.id;
    for round in 1..=20u32 {
        race(&meta, 2, move |meta, i| async move {
            let change = if i == 0 {
                BackupSettingsRecord {
                    pit_window_hours: Some(round),
                    ..BackupSettingsRecord::default()
                }
            } else {
                BackupSettingsRecord {
                    checkpoint_interval_minutes: Some(round * 15),
                    ..BackupSettingsRecord::default()
                }
            };
            meta.update_backup_settings(group, &change).await.unwrap()
        })
        .await;
        assert_eq!(
            meta.backup_settings(group).await.unwrap(),
            BackupSettingsRecord {
                pit_window_hours: Some(round),
                checkpoint_interval_minutes: Some(round * 15),
                ..BackupSettingsRecord::default()
            },
            "round {round}: neither write undid the other"
        );
    }
}

mod tests {
    contract_tests!(
        a_secret_keeps_the_value_it_was_first_created_with,
        the_snapshot_schedule_is_kept_in_the_same_record,
        bootstrap_writes_the_first_identity_and_nothing_after_it,
        unknown_ids_are_not_found,
        a_project_name_is_unique_within_its_organization,
        projects_are_listed_by_organization_and_by_id_in_pages,
        a_key_reads_back_with_its_roles_and_access_list,
        a_public_key_belongs_to_one_key,
        an_organizations_keys_are_listed_in_pages,
        deleting_a_key_reports_whether_it_was_there,
        access_entries_are_added_without_disturbing_existing_ones,
        deleting_an_access_entry_reports_whether_it_was_there,
        a_cluster_name_is_unique_within_its_project,
        a_projects_clusters_are_listed_in_pages,
        each_backup_setting_is_kept_apart_from_the_other,
    );
    contract_tests!(
        concurrent: racing_callers_of_a_secret_all_get_one_value,
        racing_bootstraps_create_exactly_one_identity,
        concurrent_changes_to_different_settings_both_survive,
    );
}
