//! PostgreSQL implementation of [`AccountMeta`].

use async_trait::async_trait;
use sqlx::PgConnection;

use super::PostgresMetaStore;
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

impl PostgresMetaStore {
    async fn load_key_details(&self, mut key: ApiKeyRecord) -> MetaResult<ApiKeyRecord> {
        let id = key.id.to_hex();
        let roles = sqlx::query(
            "SELECT project_id, role_name FROM api_key_roles WHERE key_id = $1 ORDER BY position",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?;
        key.roles = roles.iter().map(role_from_row).collect::<MetaResult<_>>()?;
        let access = sqlx::query(
            "SELECT cidr, created FROM api_key_access WHERE key_id = $1 ORDER BY created, cidr",
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

    async fn keys_with_details(
        &self,
        rows: Vec<sqlx::postgres::PgRow>,
    ) -> MetaResult<Vec<ApiKeyRecord>> {
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(self.load_key_details(key_from_row(row)?).await?);
        }
        Ok(keys)
    }
}

async fn insert_key_tx(conn: &mut PgConnection, key: &ApiKeyRecord) -> MetaResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, public_key, description, digest_ha1, created) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id.to_hex())
    .bind(key.org_id.to_hex())
    .bind(&key.public_key)
    .bind(&key.desc)
    .bind(&key.digest_ha1)
    .bind(key.created)
    .execute(&mut *conn)
    .await?;
    // One statement for all the roles; `WITH ORDINALITY` keeps the order they were given in.
    let projects: Vec<Option<String>> = key
        .roles
        .iter()
        .map(|g| g.group_id.map(|id| id.to_hex()))
        .collect();
    let roles: Vec<&str> = key.roles.iter().map(|g| g.role.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_key_roles (key_id, project_id, role_name) \
         SELECT $1, project_id, role_name FROM UNNEST($2::TEXT[], $3::TEXT[]) WITH ORDINALITY \
         AS r(project_id, role_name, n) ORDER BY n",
    )
    .bind(key.id.to_hex())
    .bind(projects)
    .bind(roles)
    .execute(&mut *conn)
    .await?;
    insert_access_tx(conn, key.id, &key.access_list).await
}

async fn insert_access_tx(
    conn: &mut PgConnection,
    key: ApiKeyId,
    entries: &[AccessEntry],
) -> MetaResult<()> {
    let cidrs: Vec<String> = entries.iter().map(|e| e.cidr.to_string()).collect();
    let created: Vec<i64> = entries.iter().map(|e| e.created).collect();
    sqlx::query(
        "INSERT INTO api_key_access (key_id, cidr, created) \
         SELECT $1, cidr, created FROM UNNEST($2::TEXT[], $3::BIGINT[]) AS e(cidr, created) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key.to_hex())
    .bind(cidrs)
    .bind(created)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_group_tx(conn: &mut PgConnection, group: &GroupRecord) -> MetaResult<()> {
    sqlx::query("INSERT INTO projects (id, org_id, name, created) VALUES ($1, $2, $3, $4)")
        .bind(group.id.to_hex())
        .bind(group.org_id.to_hex())
        .bind(&group.name)
        .bind(group.created)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl AccountMeta for PostgresMetaStore {
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> MetaResult<Vec<u8>> {
        // A racing insert of the same name waits for the first to commit, then does nothing;
        // the read that follows, a statement of its own, sees the committed value.
        sqlx::query(
            "INSERT INTO server_secrets (name, value_hex) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(hex::encode(&fresh))
        .execute(self.pool())
        .await?;
        let value: String =
            sqlx::query_scalar("SELECT value_hex FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(self.pool())
                .await?;
        hex::decode(&value).map_err(|_| corrupt("secret", name))
    }

    async fn bootstrap(&self, records: &BootstrapRecords) -> MetaResult<bool> {
        let mut tx = self.pool().begin().await?;
        // "No organization yet" holds until commit only if no other bootstrap can insert
        // one meanwhile: this lock mode excludes itself (and writes), not readers.
        sqlx::query("LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let existing: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orgs)")
            .fetch_one(&mut *tx)
            .await?;
        if existing {
            return Ok(false);
        }
        sqlx::query("INSERT INTO orgs (id, name, created) VALUES ($1, $2, $3)")
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
        let row = sqlx::query("SELECT id, name, created FROM orgs WHERE id = $1")
            .bind(id.to_hex())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn insert_group(&self, group: &GroupRecord) -> MetaResult<()> {
        let mut conn = self.pool().acquire().await?;
        insert_group_tx(&mut conn, group).await
    }

    async fn get_group(&self, id: GroupId) -> MetaResult<Option<GroupRecord>> {
        let row = sqlx::query("SELECT id, org_id, name, created FROM projects WHERE id = $1")
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
        let orgs: Vec<String> = scope.org_ids.iter().map(|o| o.to_hex()).collect();
        let groups: Vec<String> = scope.group_ids.iter().map(|g| g.to_hex()).collect();
        let filter = "FROM projects WHERE org_id = ANY($1) OR id = ANY($2)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {filter}"))
            .bind(&orgs)
            .bind(&groups)
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows = sqlx::query(&format!(
            "SELECT id, org_id, name, created {filter} ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(&orgs)
        .bind(&groups)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        Ok(PageOf {
            items: rows.iter().map(group_from_row).collect::<MetaResult<_>>()?,
            total: total as u64,
        })
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> MetaResult<()> {
        let mut tx = self.pool().begin().await?;
        insert_key_tx(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_api_key_by_public(&self, public_key: &str) -> MetaResult<Option<ApiKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE public_key = $1")
            .bind(public_key)
            .fetch_all(self.pool())
            .await?;
        Ok(self.keys_with_details(rows).await?.pop())
    }

    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<Option<ApiKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE id = $1 AND org_id = $2")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .fetch_all(self.pool())
            .await?;
        Ok(self.keys_with_details(rows).await?.pop())
    }

    async fn list_api_keys(
        &self,
        org: OrgId,
        page: PageRequest,
    ) -> MetaResult<PageOf<ApiKeyRecord>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE org_id = $1")
            .bind(org.to_hex())
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows =
            sqlx::query("SELECT * FROM api_keys WHERE org_id = $1 ORDER BY id LIMIT $2 OFFSET $3")
                .bind(org.to_hex())
                .bind(limit)
                .bind(offset)
                .fetch_all(self.pool())
                .await?;
        Ok(PageOf {
            items: self.keys_with_details(rows).await?,
            total: total as u64,
        })
    }

    async fn delete_api_key(&self, org: OrgId, id: ApiKeyId) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND org_id = $2")
            .bind(id.to_hex())
            .bind(org.to_hex())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_access_entries(&self, key: ApiKeyId, entries: &[AccessEntry]) -> MetaResult<()> {
        let mut conn = self.pool().acquire().await?;
        insert_access_tx(&mut conn, key, entries).await
    }

    async fn delete_access_entry(&self, key: ApiKeyId, cidr: &ipnet::IpNet) -> MetaResult<bool> {
        let done = sqlx::query("DELETE FROM api_key_access WHERE key_id = $1 AND cidr = $2")
            .bind(key.to_hex())
            .bind(cidr.to_string())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_clusters(&self, clusters: &[ClusterRecord]) -> MetaResult<()> {
        let mut tx = self.pool().begin().await?;
        build_insert::<sqlx::Postgres>(CLUSTER_INSERT, clusters.iter().map(cluster_row))
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
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clusters WHERE project_id = $1")
            .bind(group.to_hex())
            .fetch_one(self.pool())
            .await?;
        let (limit, offset) = page_limit(page);
        let rows = sqlx::query(
            "SELECT * FROM clusters WHERE project_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
        )
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
            "SELECT {} FROM backup_settings WHERE project_id = $1",
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
        let sql = settings_upsert(|i| format!("${i}"), "s.");
        let mut query = sqlx::query(&sql).bind(group.to_hex());
        for value in settings_values(change) {
            query = query.bind(value);
        }
        let row = query.fetch_one(self.pool()).await?;
        settings_from_row(&row)
    }
}
