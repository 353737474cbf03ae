//! SQLite implementation of [`AccountMeta`].

use async_trait::async_trait;

use super::SqliteMetaStore;
use crate::ids::{ApiKeyId, GroupId, OrgId};
use crate::meta::rows::{
    access_from_row, build_insert, cluster_from_row, cluster_row, corrupt, group_from_row,
    key_from_row, org_from_row, page_limit, role_from_row, settings_from_row, settings_upsert,
    settings_values, CLUSTER_INSERT, SETTINGS_COLUMNS,
};
use crate::meta::{AccountMeta, BootstrapRecords, GroupScope, MetaResult};
use crate::model::{
    AccessEntry, ApiKeyRecord, BackupSettingsRecord, ClusterRecord, GroupRecord, OrgRecord, PageOf,
    PageRequest,
};

impl SqliteMetaStore {
    async fn load_key_details(&self, mut key: ApiKeyRecord) -> MetaResult<ApiKeyRecord> {
        let id = key.id.to_hex();
        let roles = sqlx::query(
            "SELECT project_id, role_name FROM api_key_roles WHERE key_id = ? ORDER BY rowid",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        key.roles = roles.iter().map(role_from_row).collect::<MetaResult<_>>()?;
        let access = sqlx::query(
            "SELECT cidr, created FROM api_key_access WHERE key_id = ? ORDER BY created, cidr",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        key.access_list = access
            .iter()
            .map(access_from_row)
            .collect::<MetaResult<_>>()?;
        Ok(key)
    }
}

async fn insert_key_tx(tx: &mut sqlx::SqliteConnection, key: &ApiKeyRecord) -> MetaResult<()> {
    let id = key.id.to_hex();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, public_key, description, digest_ha1, created) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(key.org_id.to_hex())
    .bind(&key.public_key)
    .bind(&key.desc)
    .bind(&key.digest_ha1)
    .bind(key.created)
    .execute(&mut *tx)
    .await?;
    for grant in &key.roles {
        sqlx::query("INSERT INTO api_key_roles (key_id, project_id, role_name) VALUES (?, ?, ?)")
            .bind(&id)
            .bind(grant.group_id.map(|g| g.to_hex()))
            .bind(grant.role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    insert_access_tx(tx, key.id, &key.access_list).await
}

async fn insert_access_tx(
    tx: &mut sqlx::SqliteConnection,
    key: ApiKeyId,
    entries: &[AccessEntry],
) -> MetaResult<()> {
    for entry in entries {
        sqlx::query("INSERT INTO api_key_access (key_id, cidr, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(key.to_hex())
            .bind(entry.cidr.to_string())
            .bind(entry.created)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_group_tx(tx: &mut sqlx::SqliteConnection, group: &GroupRecord) -> MetaResult<()> {
    sqlx::query("INSERT INTO projects (id, org_id, name, created) VALUES (?, ?, ?, ?)")
        .bind(group.id.to_hex())
        .bind(group.org_id.to_hex())
        .bind(&group.name)
        .bind(group.created)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl AccountMeta for SqliteMetaStore {
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> MetaResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value_hex) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(hex::encode(&fresh))
        .execute(self.pool())
        .await?;
        let value: String =
            sqlx::query_scalar("SELECT value_hex FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(self.pool())
                .await?;
        hex::decode(&value).map_err(|_| corrupt("secret", name))
    }

    async fn bootstrap(&self, records: &BootstrapRecords) -> MetaResult<bool> {
        let mut tx = self.begin_write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO orgs (id, name, created) VALUES (?, ?, ?)")
            .bind(records.org.id.to_hex())
            .bind(&records.org.name)
            .bind(records.org.created)
            .execute(&mut *tx)
            .await?;
        insert_group_tx(&mut tx, &records.group).await?;
        insert_key_tx(&mut tx, &records.key).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_org(&self, id: OrgId) -> MetaResult<Option<OrgRecord>> {
        let row = sqlx::query("SELECT id, name, created FROM orgs WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn insert_group(&self, group: &GroupRecord) -> MetaResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_group_tx(&mut conn, group).await
    }

    async fn get_group(&self, id: GroupId) -> MetaResult<Option<GroupRecord>> {
        let row = sqlx::query("SELECT id, org_id, name, created FROM projects WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn list_groups(
        &self,
        scope: &GroupScope,
        page: PageRequest,
    ) -> MetaResult<PageOf<GroupRecord>> {
        // Scopes hold a handful of ids, so binding them into IN lists stays small.
        let orgs: Vec<String> = scope.org_ids.iter().map(|o| o.to_hex()).collect();
        let groups: Vec<String> = scope.group_ids.iter().map(|g| g.to_hex()).collect();
        let placeholders = |n: usize| {
            if n == 0 {
                "NULL".to_owned()
            } else {
                vec!["?"; n].join(", ")
            }
        };
        let filter = format!(
            "FROM projects WHERE org_id IN ({}) OR id IN ({})",
            placeholders(orgs.len()),
            placeholders(groups.len())
        );
        let count_sql = format!("SELECT COUNT(*) {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for v in orgs.iter().chain(&groups) {
            count = count.bind(v);
        }
        let total = count.fetch_one(self.pool()).await?;
        let list_sql =
            format!("SELECT id, org_id, name, created {filter} ORDER BY id LIMIT ? OFFSET ?");
        let mut list = sqlx::query(&list_sql);
        for v in orgs.iter().chain(&groups) {
            list = list.bind(v);
        }
        let (limit, offset) = page_limit(page);
        let rows = list.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        Ok(PageOf {
            items: rows.iter().map(group_from_row).collect::<MetaResult<_>>()?,
            total: total as u64,
        })
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_key_tx(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_api_key_by_public(&self, public_key: &str) -> MetaResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE public_key = ?")
            .bind(public_key)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok(Some(self.load_key_details(key_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = ? AND org_id = ?")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok(Some(self.load_key_details(key_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    async fn list_api_keys(
        &self,
        org: OrgId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ApiKeyRecord>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE org_id = ?")
            .bind(org.to_hex())
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE org_id = ? ORDER BY id LIMIT ? OFFSET ?")
                .bind(org.to_hex())
                .bind(limit)
                .bind(offset)
                .fetch_all(self.pool())
                .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.load_key_details(key_from_row(row)?).await?);
        }
        Ok(PageOf {
            items,
            total: total as u64,
        })
    }

    async fn delete_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND org_id = ?")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_access_entries(&self, key: ApiKeyId, entries: &[AccessEntry]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        insert_access_tx(&mut tx, key, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_access_entry(&self, key: ApiKeyId, cidr: &ipnet::IpNet) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_key_access WHERE key_id = ? AND cidr = ?")
            .bind(key.to_hex())
            .bind(cidr.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_clusters(&self, clusters: &[ClusterRecord]) -> MetaResult<()> {
        let mut tx = self.begin_write().await?;
        build_insert::<sqlx::Sqlite>(CLUSTER_INSERT, clusters.iter().map(cluster_row))
            .build()
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_clusters(
        &self,
        group: GroupId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ClusterRecord>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clusters WHERE project_id = ?")
            .bind(group.to_hex())
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows =
            sqlx::query("SELECT * FROM clusters WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?")
                .bind(group.to_hex())
                .bind(limit)
                .bind(offset)
                .fetch_all(self.pool())
                .await?;
        Ok(PageOf {
            items: rows
                .iter()
                .map(cluster_from_row)
                .collect::<MetaResult<_>>()?,
            total: total as u64,
        })
    }

    async fn backup_settings(&self, group: GroupId) -> MetaResult<BackupSettingsRecord> {
        let sql = format!(
            "SELECT {} FROM backup_settings WHERE project_id = ?",
            SETTINGS_COLUMNS.join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(group.to_hex())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref()
            .map(settings_from_row)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn update_backup_settings(
        &self,
        group: GroupId,
        change: &BackupSettingsRecord,
    ) -> MetaResult<BackupSettingsRecord> {
        // One statement: the upsert locks the row, so concurrent changes apply one after
        // the other, each over what the other left.
        let sql = settings_upsert(|_| "?".to_owned(), "s.");
        let mut query = sqlx::query(&sql).bind(group.to_hex());
        for value in settings_values(change) {
            query = query.bind(value);
        }
        let row = query.fetch_one(self.writer()).await?;
        settings_from_row(&row)
    }
}
