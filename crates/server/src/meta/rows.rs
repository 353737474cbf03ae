//! What the SQL backends share: reading a row into a record, the text each enum is stored
//! as, and the few fragments of SQL that every dialect spells alike.
//!
//! Both schemas keep the same columns under the same names (TEXT ids, BIGINT seconds and
//! counts, BOOLEAN flags), so one function per record serves every backend; a backend's
//! own module keeps only its statements and its concurrency.

use std::collections::{HashMap, HashSet};

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::agents::{MemberState, RestoreMemberRecord};
use super::oplog::CollectableSlice;
use super::restore::{ClaimedJob, PreparationProgress};
use super::sessions::ConsoleSessionRecord;
use super::{LeaseToken, MetaError, MetaResult};
use crate::blocks::{ChunkId, PackId, Placement};
use crate::ids::SnapshotId;
use crate::ids::{ApiKeyId, BatchId, CheckpointId, ClusterId, GroupId, JobId, OplogSliceId, OrgId};
use crate::model::{
    AccessEntry, ApiKeyRecord, BackupSettingsRecord, CheckpointPartRecord, CheckpointRecord,
    ChunkInfo, ClusterRecord, ClusterType, DeliveryMethod, DeliveryStatus, GroupRecord, JobStatus,
    OplogRange, OplogSliceRecord, OplogStream, OplogStreamSummary, OplogTs, OrgRecord, PageRequest,
    RestoreJobRecord, Role, RoleGrant, SnapshotPartRecord, SnapshotRecord,
};

impl From<sqlx::Error> for MetaError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                MetaError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_storage_full(&c)) => {
                MetaError::StorageFull(err.to_string())
            }
            _ => MetaError::Backend(err.to_string()),
        }
    }
}

/// Whether a database error code says the disk is full: PostgreSQL's SQLSTATE `53100`
/// (`disk_full`; SQLSTATEs are always five characters) or SQLite's `SQLITE_FULL` (a number
/// of at most four digits; extended codes keep the primary code in the low byte). Either
/// rolls the statement or transaction back, so nothing was kept.
pub(crate) fn is_storage_full(code: &str) -> bool {
    const POSTGRES_DISK_FULL: &str = "53100";
    const SQLITE_FULL: i32 = 13;
    if code.len() == POSTGRES_DISK_FULL.len() {
        return code == POSTGRES_DISK_FULL;
    }
    code.parse::<i32>().is_ok_and(|c| c & 0xff == SQLITE_FULL)
}

pub(crate) fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Corrupt(format!("{what}: {value:?}"))
}

/// A pack's claim token as stored.
pub(crate) fn claim_token(hex: &str) -> MetaResult<crate::ids::ClaimToken> {
    crate::ids::ClaimToken::parse(hex).ok_or_else(|| corrupt("claim token", hex))
}

/// A page as the `LIMIT` and `OFFSET` of a statement.
pub(crate) fn page_limit(page: PageRequest) -> (i64, i64) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (clamp(page.limit), clamp(page.offset))
}

/// A byte count or offset as a signed BIGINT (archives stay far below 2^63).
pub(crate) fn byte_col(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// A restore job whose link still holds its data: it can be downloaded or resumed, or a
/// transfer of it has not ended.
pub(crate) const LIVE_DELIVERY: &str = "(delivery_status IN ('READY', 'INTERRUPTED') \
     OR downloads_started > downloads_completed OR resume_offset IS NOT NULL)";

/// How the delivery method of a restore job is stored.
const HTTP: &str = "HTTP";
const AUTOMATED: &str = "AUTOMATED_RESTORE";

/// Typed reads of a row's columns, for any backend whose rows decode the schema's types.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> MetaResult<String>;
    fn opt_text(&self, col: &str) -> MetaResult<Option<String>>;
    fn int(&self, col: &str) -> MetaResult<i64>;
    fn opt_int(&self, col: &str) -> MetaResult<Option<i64>>;
    fn flag(&self, col: &str) -> MetaResult<bool>;

    /// A column holding the text form of `T`; text `parse` refuses is corrupt.
    fn parsed<T>(&self, col: &str, parse: impl Fn(&str) -> Option<T>) -> MetaResult<T> {
        let text = self.text(col)?;
        parse(&text).ok_or_else(|| corrupt(col, &text))
    }

    fn opt_parsed<T>(&self, col: &str, parse: impl Fn(&str) -> Option<T>) -> MetaResult<Option<T>> {
        match self.opt_text(col)? {
            Some(text) => parse(&text).map(Some).ok_or_else(|| corrupt(col, &text)),
            None => Ok(None),
        }
    }

    /// A column that must fit a `u32` (seconds, increments, sizes, counters).
    fn small(&self, col: &str) -> MetaResult<u32> {
        let v = self.int(col)?;
        u32::try_from(v).map_err(|_| corrupt(col, &v.to_string()))
    }

    fn opt_small(&self, col: &str) -> MetaResult<Option<u32>> {
        self.opt_int(col)?
            .map(|v| u32::try_from(v).map_err(|_| corrupt(col, &v.to_string())))
            .transpose()
    }

    /// A byte count or offset, `None` when NULL; a negative one is corrupt.
    fn opt_bytes(&self, col: &str) -> MetaResult<Option<u64>> {
        self.opt_int(col)?
            .map(|v| u64::try_from(v).map_err(|_| corrupt(col, &v.to_string())))
            .transpose()
    }

    /// A tally (a count, a sum, progress): NULL, as a sum over no rows, is zero.
    fn count(&self, col: &str) -> MetaResult<u64> {
        Ok(self.opt_int(col)?.unwrap_or(0).max(0) as u64)
    }

    /// The timestamp in columns `{prefix}_secs` and `{prefix}_inc`.
    fn ts(&self, prefix: &str) -> MetaResult<OplogTs> {
        Ok(OplogTs {
            secs: self.small(&format!("{prefix}_secs"))?,
            inc: self.small(&format!("{prefix}_inc"))?,
        })
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database>,
    String: Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database>,
    i64: Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database>,
    bool: Type<R::Database>,
{
    fn text(&self, col: &str) -> MetaResult<String> {
        Ok(self.try_get(col)?)
    }

    fn opt_text(&self, col: &str) -> MetaResult<Option<String>> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> MetaResult<i64> {
        Ok(self.try_get(col)?)
    }

    fn opt_int(&self, col: &str) -> MetaResult<Option<i64>> {
        Ok(self.try_get(col)?)
    }

    fn flag(&self, col: &str) -> MetaResult<bool> {
        Ok(self.try_get(col)?)
    }
}

pub(crate) fn org_from_row(row: &impl Columns) -> MetaResult<OrgRecord> {
    Ok(OrgRecord {
        id: row.parsed("id", OrgId::parse)?,
        name: row.text("name")?,
        created: row.int("created")?,
    })
}

pub(crate) fn group_from_row(row: &impl Columns) -> MetaResult<GroupRecord> {
    Ok(GroupRecord {
        id: row.parsed("id", GroupId::parse)?,
        org_id: row.parsed("org_id", OrgId::parse)?,
        name: row.text("name")?,
        created: row.int("created")?,
    })
}

/// A key without its roles and access list (they are rows of their own tables).
pub(crate) fn key_from_row(row: &impl Columns) -> MetaResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.parsed("id", ApiKeyId::parse)?,
        org_id: row.parsed("org_id", OrgId::parse)?,
        public_key: row.text("public_key")?,
        desc: row.text("description")?,
        digest_ha1: row.text("digest_ha1")?,
        created: row.int("created")?,
        roles: Vec::new(),
        access_list: Vec::new(),
    })
}

pub(crate) fn role_from_row(row: &impl Columns) -> MetaResult<RoleGrant> {
    Ok(RoleGrant {
        group_id: row.opt_parsed("project_id", GroupId::parse)?,
        role: row.parsed("role_name", Role::parse)?,
    })
}

pub(crate) fn access_from_row(row: &impl Columns) -> MetaResult<AccessEntry> {
    Ok(AccessEntry {
        cidr: row.parsed("cidr", |text| text.parse().ok())?,
        created: row.int("created")?,
    })
}

pub(crate) fn cluster_from_row(row: &impl Columns) -> MetaResult<ClusterRecord> {
    Ok(ClusterRecord {
        id: row.parsed("id", ClusterId::parse)?,
        group_id: row.parsed("project_id", GroupId::parse)?,
        cluster_name: row.text("cluster_name")?,
        type_name: row.parsed("type_name", ClusterType::parse)?,
        replica_set_name: row.opt_text("replica_set_name")?,
        shard_name: row.opt_text("shard_name")?,
        parent_id: row.opt_parsed("parent_id", ClusterId::parse)?,
        fcv: row.text("fcv")?,
        last_heartbeat: row.opt_int("last_heartbeat")?,
        created: row.int("created")?,
    })
}

pub(crate) fn settings_from_row(row: &impl Columns) -> MetaResult<BackupSettingsRecord> {
    let offset = row
        .opt_int("reference_time_zone_offset_minutes")?
        .map(|v| {
            i32::try_from(v)
                .map_err(|_| corrupt("reference_time_zone_offset_minutes", &v.to_string()))
        })
        .transpose()?;
    Ok(BackupSettingsRecord {
        pit_window_hours: row.opt_small("point_in_time_window_hours")?,
        checkpoint_interval_minutes: row.opt_small("checkpoint_interval_minutes")?,
        snapshot_interval_hours: row.opt_small("snapshot_interval_hours")?,
        snapshot_retention_days: row.opt_small("snapshot_retention_days")?,
        daily_retention_days: row.opt_small("daily_snapshot_retention_days")?,
        weekly_retention_weeks: row.opt_small("weekly_snapshot_retention_weeks")?,
        monthly_retention_months: row.opt_small("monthly_snapshot_retention_months")?,
        reference_hour_of_day: row.opt_small("reference_hour_of_day")?,
        reference_minute_of_hour: row.opt_small("reference_minute_of_hour")?,
        reference_offset_minutes: offset,
    })
}

/// The settings record's columns after the project id, in the order
/// [`settings_values`] gives their values: both backends' upserts are built from these.
pub(crate) const SETTINGS_COLUMNS: [&str; 10] = [
    "point_in_time_window_hours",
    "checkpoint_interval_minutes",
    "snapshot_interval_hours",
    "snapshot_retention_days",
    "daily_snapshot_retention_days",
    "weekly_snapshot_retention_weeks",
    "monthly_snapshot_retention_months",
    "reference_hour_of_day",
    "reference_minute_of_hour",
    "reference_time_zone_offset_minutes",
];

/// The values of a settings change, in [`SETTINGS_COLUMNS`] order (`None`: keep).
pub(crate) fn settings_values(r: &BackupSettingsRecord) -> [Option<i64>; 10] {
    let small = |v: Option<u32>| v.map(i64::from);
    [
        small(r.pit_window_hours),
        small(r.checkpoint_interval_minutes),
        small(r.snapshot_interval_hours),
        small(r.snapshot_retention_days),
        small(r.daily_retention_days),
        small(r.weekly_retention_weeks),
        small(r.monthly_retention_months),
        small(r.reference_hour_of_day),
        small(r.reference_minute_of_hour),
        r.reference_offset_minutes.map(i64::from),
    ]
}

/// The upsert of a settings change: every column given (`$2`… or `?`) replaces the stored
/// one, `NULL` keeps it; the record as stored afterwards is returned.
pub(crate) fn settings_upsert(placeholder: impl Fn(usize) -> String, keep: &str) -> String {
    let columns = SETTINGS_COLUMNS.join(", ");
    let values: Vec<String> = (1..=SETTINGS_COLUMNS.len() + 1).map(&placeholder).collect();
    let sets: Vec<String> = SETTINGS_COLUMNS
        .iter()
        .map(|c| format!("{c} = COALESCE(excluded.{c}, {keep}{c})"))
        .collect();
    format!(
        "INSERT INTO backup_settings AS s (project_id, {columns}) VALUES ({}) \
         ON CONFLICT (project_id) DO UPDATE SET {} RETURNING {columns}",
        values.join(", "),
        sets.join(", ")
    )
}

pub(crate) fn member_from_row(row: &impl Columns) -> MetaResult<RestoreMemberRecord> {
    Ok(RestoreMemberRecord {
        job_id: row.parsed("job_id", JobId::parse)?,
        member_name: row.text("member_name")?,
        state: row.parsed("state", MemberState::parse)?,
        agent_id: row.opt_text("agent_id")?,
        progress_bytes: row.count("progress_bytes")?,
        failure: row.opt_text("failure")?,
        updated: row.int("updated")?,
    })
}

/// A checkpoint without its parts (rows of their own table).
pub(crate) fn checkpoint_from_row(row: &impl Columns) -> MetaResult<CheckpointRecord> {
    Ok(CheckpointRecord {
        id: row.parsed("id", CheckpointId::parse)?,
        group_id: row.parsed("project_id", GroupId::parse)?,
        cluster_id: row.parsed("cluster_id", ClusterId::parse)?,
        timestamp: row.small("timestamp_secs")?,
        recorded: row.int("recorded")?,
        parts: Vec::new(),
    })
}

pub(crate) fn checkpoint_part_from_row(row: &impl Columns) -> MetaResult<CheckpointPartRecord> {
    Ok(CheckpointPartRecord {
        replica_set_name: row.text("replica_set_name")?,
        shard_name: row.opt_text("shard_name")?,
        type_name: row.parsed("type_name", ClusterType::parse)?,
        token: row.ts("token")?,
    })
}

/// A project and cluster pair, as the lists of work per cluster return them.
pub(crate) fn group_and_cluster_from_row(row: &impl Columns) -> MetaResult<(GroupId, ClusterId)> {
    Ok((
        row.parsed("project_id", GroupId::parse)?,
        row.parsed("cluster_id", ClusterId::parse)?,
    ))
}

pub(crate) fn range_from_row(row: &impl Columns) -> MetaResult<OplogRange> {
    Ok(OplogRange {
        first: row.ts("first")?,
        last: row.ts("last")?,
    })
}

pub(crate) fn slice_from_row(row: &impl Columns) -> MetaResult<OplogSliceRecord> {
    Ok(OplogSliceRecord {
        id: row.parsed("id", OplogSliceId::parse)?,
        first: row.ts("first")?,
        last: row.ts("last")?,
        entry_count: row.count("entry_count")?,
        raw_bytes: row.count("raw_bytes")?,
        stored_bytes: row.count("stored_bytes")?,
        recorded: row.int("recorded")?,
    })
}

pub(crate) fn stream_from_row(row: &impl Columns) -> MetaResult<OplogStream> {
    Ok(OplogStream {
        cluster: row.parsed("cluster_id", ClusterId::parse)?,
        replica_set: row.text("replica_set_name")?,
    })
}

/// A stream with the project of its cluster.
pub(crate) fn group_and_stream_from_row(row: &impl Columns) -> MetaResult<(GroupId, OplogStream)> {
    Ok((
        row.parsed("project_id", GroupId::parse)?,
        stream_from_row(row)?,
    ))
}

/// A cluster's oplog summaries from the rows of its totals per replica set (columns
/// `replica_set_name`, `slices`, `entries`, `raw_bytes`, `stored_bytes`) and of its ranges,
/// both in replica set order.
pub(crate) fn summaries_from_rows<R: Columns>(
    totals: &[R],
    ranges: &[R],
) -> MetaResult<Vec<OplogStreamSummary>> {
    let mut out = Vec::with_capacity(totals.len());
    for row in totals {
        let replica_set = row.text("replica_set_name")?;
        let mut own = Vec::new();
        for r in ranges {
            if r.text("replica_set_name")? == replica_set {
                own.push(range_from_row(r)?);
            }
        }
        out.push(OplogStreamSummary {
            slices: row.count("slices")?,
            entries: row.count("entries")?,
            raw_bytes: row.count("raw_bytes")?,
            stored_bytes: row.count("stored_bytes")?,
            ranges: own,
            replica_set,
        });
    }
    Ok(out)
}

/// Binding the values oplog statements share.
pub(crate) trait BindOplog {
    /// The stream's cluster id, then its replica set name.
    fn bind_stream(self, stream: &OplogStream) -> Self;
    /// A timestamp as its seconds, then its increment.
    fn bind_ts(self, ts: OplogTs) -> Self;
}

impl<'q, DB> BindOplog for Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    fn bind_stream(self, stream: &OplogStream) -> Self {
        self.bind(stream.cluster.to_hex())
            .bind(stream.replica_set.clone())
    }

    fn bind_ts(self, ts: OplogTs) -> Self {
        self.bind(i64::from(ts.secs)).bind(i64::from(ts.inc))
    }
}

pub(crate) fn collectable_slice_from_row(row: &impl Columns) -> MetaResult<CollectableSlice> {
    Ok(CollectableSlice {
        id: row.parsed("id", OplogSliceId::parse)?,
        stream: stream_from_row(row)?,
    })
}

pub(crate) fn job_from_row(row: &impl Columns) -> MetaResult<RestoreJobRecord> {
    let method = match row.text("method")?.as_str() {
        HTTP => DeliveryMethod::Http {
            max_downloads: row.small("max_downloads")?,
            expiration_hours: row.opt_small("expiration_hours")?,
        },
        AUTOMATED => DeliveryMethod::Automated {
            target_group: row.parsed("target_group_id", GroupId::parse)?,
            target_cluster: row.parsed("target_cluster_id", ClusterId::parse)?,
        },
        other => return Err(corrupt("method", other)),
    };
    Ok(RestoreJobRecord {
        id: row.parsed("id", JobId::parse)?,
        batch_id: row.opt_parsed("batch_id", BatchId::parse)?,
        group_id: row.parsed("project_id", GroupId::parse)?,
        cluster_id: row.parsed("cluster_id", ClusterId::parse)?,
        snapshot_id: row.parsed("snapshot_id", SnapshotId::parse)?,
        replica_set_name: row.text("replica_set_name")?,
        part_type: row.parsed("part_type", ClusterType::parse)?,
        created: row.int("created")?,
        status: row.parsed("status", JobStatus::parse)?,
        delivery_status: row.parsed("delivery_status", DeliveryStatus::parse)?,
        method,
        expires: row.opt_int("expires")?,
        point_in_time: row.flag("point_in_time")?,
        timestamp: row.ts("ts")?,
        file_name: row.text("file_name")?,
        archive_bytes: row.opt_bytes("archive_bytes")?,
        archive_sha1: row.opt_text("archive_sha1")?,
        downloads_started: row.small("downloads_started")?,
        downloads_completed: row.small("downloads_completed")?,
        resume_offset: row.opt_bytes("resume_offset")?,
        resent_bytes: row.opt_bytes("resent_bytes")?.unwrap_or(0),
        finished_at: row.opt_int("finished_at")?,
        failure: row.opt_text("failure")?,
        attempts: row.small("attempts")?,
    })
}

/// Grants or renews a task's lease (`$1` task, `$2` holder, `$3` until, `$4` now): the
/// holder's own lease or one that ran out is taken, under the next token; nothing returns
/// while another holder's lease lasts. One statement, atomic in both backends (SQLite's
/// write lock; PostgreSQL's row lock, under which a racing grant checks the row again).
/// Numbered placeholders in the order they first appear read alike in both.
pub(crate) const HOLD_TASK_LEASE: &str = "INSERT INTO task_leases (task, holder, token, until) \
     VALUES ($1, $2, 1, $3) \
     ON CONFLICT (task) DO UPDATE SET holder = excluded.holder, until = excluded.until, \
     token = task_leases.token + 1 \
     WHERE task_leases.holder = excluded.holder OR task_leases.until < $4 \
     RETURNING token";

/// Ends a grant of a task's lease (`$1` task, `$2` holder, `$3` token): it ran out at the
/// epoch, so anyone may take it, and the token goes on growing.
pub(crate) const RELEASE_TASK_LEASE: &str =
    "UPDATE task_leases SET until = 0 WHERE task = $1 AND holder = $2 AND token = $3";

/// The console sessions' statements ([`console_session_meta`]), numbered placeholders alike
/// in both backends.
/// `$1` id hash, `$2` key, `$3` CSRF token, `$4` created, `$5` expires.
pub(crate) const INSERT_CONSOLE_SESSION: &str = "INSERT INTO console_sessions \
     (id_hash, key_id, csrf_token, created, expires) VALUES ($1, $2, $3, $4, $5)";
/// `$1` id hash, `$2` now: a session is over at its expiry second.
pub(crate) const FIND_CONSOLE_SESSION: &str = "SELECT id_hash, key_id, csrf_token, created, \
     expires FROM console_sessions WHERE id_hash = $1 AND expires > $2";
pub(crate) const DELETE_CONSOLE_SESSION: &str = "DELETE FROM console_sessions WHERE id_hash = $1";
pub(crate) const PURGE_CONSOLE_SESSIONS: &str = "DELETE FROM console_sessions WHERE expires <= $1";

pub(crate) fn console_session_from_row(row: &impl Columns) -> MetaResult<ConsoleSessionRecord> {
    Ok(ConsoleSessionRecord {
        id_hash: row.text("id_hash")?,
        key_id: row.parsed("key_id", ApiKeyId::parse)?,
        csrf_token: row.text("csrf_token")?,
        created: row.int("created")?,
        expires: row.int("expires")?,
    })
}

/// Implements [`ConsoleSessionMeta`](crate::meta::ConsoleSessionMeta) for a backend's store
/// that reads through `self.$read()` and writes through `self.$write()`: the statements and
/// rows are alike in both dialects, only the connections differ (SQLite's single writer).
macro_rules! console_session_meta {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::meta::ConsoleSessionMeta for $store {
            async fn insert_console_session(
                &self,
                session: &$crate::meta::ConsoleSessionRecord,
            ) -> $crate::meta::MetaResult<()> {
                sqlx::query($crate::meta::rows::INSERT_CONSOLE_SESSION)
                    .bind(&session.id_hash)
                    .bind(session.key_id.to_hex())
                    .bind(&session.csrf_token)
                    .bind(session.created)
                    .bind(session.expires)
                    .execute(self.$write())
                    .await?;
                Ok(())
            }

            async fn find_console_session(
                &self,
                id_hash: &str,
                now: $crate::model::UnixSeconds,
            ) -> $crate::meta::MetaResult<Option<$crate::meta::ConsoleSessionRecord>> {
                let row = sqlx::query($crate::meta::rows::FIND_CONSOLE_SESSION)
                    .bind(id_hash)
                    .bind(now)
                    .fetch_optional(self.$read())
                    .await?;
                row.as_ref()
                    .map($crate::meta::rows::console_session_from_row)
                    .transpose()
            }

            async fn delete_console_session(
                &self,
                id_hash: &str,
            ) -> $crate::meta::MetaResult<bool> {
                let done = sqlx::query($crate::meta::rows::DELETE_CONSOLE_SESSION)
                    .bind(id_hash)
                    .execute(self.$write())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn purge_console_sessions(
                &self,
                now: $crate::model::UnixSeconds,
            ) -> $crate::meta::MetaResult<u64> {
                let done = sqlx::query($crate::meta::rows::PURGE_CONSOLE_SESSIONS)
                    .bind(now)
                    .execute(self.$write())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use console_session_meta;

/// A job id read back from a statement's `RETURNING id`.
pub(crate) fn parse_job_id(text: &str) -> MetaResult<JobId> {
    JobId::parse(text).ok_or_else(|| corrupt("restore job id", text))
}

/// A job a claim returned, with the fencing token the claim stored.
pub(crate) fn claimed_job_from_row(row: &impl Columns) -> MetaResult<ClaimedJob> {
    Ok(ClaimedJob {
        job: job_from_row(row)?,
        token: LeaseToken(row.int("lease_token")?),
    })
}

/// Claimed jobs, oldest first (as a claim picks them: `RETURNING` follows no order).
pub(crate) fn claimed_jobs_from_rows<R: Columns>(rows: &[R]) -> MetaResult<Vec<ClaimedJob>> {
    let mut jobs = rows
        .iter()
        .map(claimed_job_from_row)
        .collect::<MetaResult<Vec<_>>>()?;
    jobs.sort_by_key(|claimed| (claimed.job.created, claimed.job.id.to_hex()));
    Ok(jobs)
}

pub(crate) fn preparation_from_row(row: &impl Columns) -> MetaResult<PreparationProgress> {
    Ok(PreparationProgress {
        prepared_bytes: row.count("prepared_bytes")?,
        planned_bytes: row.opt_bytes("planned_bytes")?,
    })
}

/// One value of a new row, bound alike by every backend.
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Flag(bool),
}

fn text(value: impl Into<String>) -> Value {
    Value::Text(Some(value.into()))
}

fn int(value: impl Into<i64>) -> Value {
    Value::Int(Some(value.into()))
}

/// `head` (`INSERT INTO table (columns) `) followed by `VALUES (…), (…)` binding `rows`, each
/// with the values of the head's columns in order.
pub(crate) fn build_insert<'a, DB>(
    head: &'a str,
    rows: impl IntoIterator<Item = Vec<Value>>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Type<DB>,
    Option<String>: Encode<'a, DB>,
    i64: Type<DB>,
    Option<i64>: Encode<'a, DB>,
    bool: Encode<'a, DB> + Type<DB>,
{
    let mut insert = QueryBuilder::new(head);
    insert.push_values(rows, |mut row, values| {
        for value in values {
            match value {
                Value::Text(v) => row.push_bind(v),
                Value::Int(v) => row.push_bind(v),
                Value::Flag(v) => row.push_bind(v),
            };
        }
    });
    insert
}

pub(crate) const CLUSTER_INSERT: &str = "INSERT INTO clusters (id, project_id, cluster_name, \
     type_name, replica_set_name, shard_name, parent_id, fcv, last_heartbeat, created) ";

pub(crate) fn cluster_row(c: &ClusterRecord) -> Vec<Value> {
    vec![
        text(c.id.to_hex()),
        text(c.group_id.to_hex()),
        text(c.cluster_name.as_str()),
        text(c.type_name.as_str()),
        Value::Text(c.replica_set_name.clone()),
        Value::Text(c.shard_name.clone()),
        Value::Text(c.parent_id.map(|p| p.to_hex())),
        text(c.fcv.as_str()),
        Value::Int(c.last_heartbeat),
        int(c.created),
    ]
}

pub(crate) const SNAPSHOT_INSERT: &str = "INSERT INTO snapshots (id, project_id, cluster_id, \
     created_secs, created_inc, last_oplog_secs, last_oplog_inc, complete, expires, do_not_delete, \
     deleted_at, refs_released, mongod_version, storage_engine, recorded) ";

/// A new snapshot's row: it holds no references yet.
pub(crate) fn snapshot_row(s: &SnapshotRecord) -> Vec<Value> {
    vec![
        text(s.id.to_hex()),
        text(s.group_id.to_hex()),
        text(s.cluster_id.to_hex()),
        int(s.created.secs),
        int(s.created.inc),
        Value::Int(s.last_oplog_applied.map(|t| i64::from(t.secs))),
        Value::Int(s.last_oplog_applied.map(|t| i64::from(t.inc))),
        Value::Flag(s.complete),
        Value::Int(s.expires),
        Value::Flag(s.do_not_delete),
        Value::Int(s.deleted_at),
        Value::Flag(false),
        text(s.mongod_version.as_str()),
        text(s.storage_engine.as_str()),
        int(s.recorded),
    ]
}

pub(crate) const SNAPSHOT_PART_INSERT: &str = "INSERT INTO snapshot_parts (snapshot_id, \
     replica_set_name, cluster_id, type_name, committed, file_count, file_size_bytes, \
     data_size_bytes, storage_size_bytes) ";

pub(crate) fn snapshot_part_row(snapshot: SnapshotId, p: &SnapshotPartRecord) -> Vec<Value> {
    vec![
        text(snapshot.to_hex()),
        text(p.replica_set_name.as_str()),
        text(p.cluster_id.to_hex()),
        text(p.type_name.as_str()),
        Value::Flag(p.committed),
        int(byte_col(p.file_count)),
        int(byte_col(p.file_size_bytes)),
        int(byte_col(p.data_size_bytes)),
        int(byte_col(p.storage_size_bytes)),
    ]
}

pub(crate) const JOB_INSERT: &str = "INSERT INTO restore_jobs (id, batch_id, project_id, \
     cluster_id, snapshot_id, replica_set_name, part_type, created, status, delivery_status, \
     method, max_downloads, expiration_hours, target_group_id, target_cluster_id, expires, \
     point_in_time, ts_secs, ts_inc, file_name, archive_bytes, archive_sha1, downloads_started, \
     downloads_completed, finished_at, failure, attempts, lease_owner, lease_until) ";

/// The values of each row of [`JOB_INSERT`].
pub(crate) const JOB_COLUMNS: usize = 29;

/// A new job's row: it has no archive, no download, no attempt and no lease yet.
pub(crate) fn job_row(j: &RestoreJobRecord) -> Vec<Value> {
    let (method, max_downloads, hours, target_group, target_cluster) = match &j.method {
        DeliveryMethod::Http {
            max_downloads,
            expiration_hours,
        } => (
            HTTP,
            Some(i64::from(*max_downloads)),
            expiration_hours.map(i64::from),
            None,
            None,
        ),
        DeliveryMethod::Automated {
            target_group,
            target_cluster,
        } => (
            AUTOMATED,
            None,
            None,
            Some(target_group.to_hex()),
            Some(target_cluster.to_hex()),
        ),
    };
    vec![
        text(j.id.to_hex()),
        Value::Text(j.batch_id.map(|b| b.to_hex())),
        text(j.group_id.to_hex()),
        text(j.cluster_id.to_hex()),
        text(j.snapshot_id.to_hex()),
        text(j.replica_set_name.as_str()),
        text(j.part_type.as_str()),
        int(j.created),
        text(j.status.as_str()),
        text(j.delivery_status.as_str()),
        text(method),
        Value::Int(max_downloads),
        Value::Int(hours),
        Value::Text(target_group),
        Value::Text(target_cluster),
        Value::Int(j.expires),
        Value::Flag(j.point_in_time),
        int(j.timestamp.secs),
        int(j.timestamp.inc),
        text(j.file_name.as_str()),
        // archive_bytes, archive_sha1, downloads_started, downloads_completed, finished_at,
        // failure, attempts, lease_owner, lease_until
        Value::Int(None),
        Value::Text(None),
        int(0),
        int(0),
        Value::Int(None),
        Value::Text(None),
        int(0),
        Value::Text(None),
        Value::Int(None),
    ]
}

/// A snapshot without its parts (rows of their own table).
pub(crate) fn snapshot_from_row(row: &impl Columns) -> MetaResult<SnapshotRecord> {
    let last_oplog_applied = match (
        row.opt_int("last_oplog_secs")?,
        row.opt_int("last_oplog_inc")?,
    ) {
        (Some(_), Some(_)) => Some(row.ts("last_oplog")?),
        _ => None,
    };
    Ok(SnapshotRecord {
        id: row.parsed("id", SnapshotId::parse)?,
        group_id: row.parsed("project_id", GroupId::parse)?,
        cluster_id: row.parsed("cluster_id", ClusterId::parse)?,
        created: row.ts("created")?,
        last_oplog_applied,
        complete: row.flag("complete")?,
        expires: row.opt_int("expires")?,
        do_not_delete: row.flag("do_not_delete")?,
        deleted_at: row.opt_int("deleted_at")?,
        mongod_version: row.text("mongod_version")?,
        storage_engine: row.text("storage_engine")?,
        recorded: row.int("recorded")?,
        parts: Vec::new(),
    })
}

pub(crate) fn snapshot_part_from_row(row: &impl Columns) -> MetaResult<SnapshotPartRecord> {
    Ok(SnapshotPartRecord {
        cluster_id: row.parsed("cluster_id", ClusterId::parse)?,
        replica_set_name: row.text("replica_set_name")?,
        type_name: row.parsed("type_name", ClusterType::parse)?,
        committed: row.flag("committed")?,
        manifest_name: row.opt_text("manifest_name")?,
        file_count: row.count("file_count")?,
        file_size_bytes: row.count("file_size_bytes")?,
        data_size_bytes: row.count("data_size_bytes")?,
        storage_size_bytes: row.count("storage_size_bytes")?,
    })
}

pub(crate) fn chunk_from_row(row: &impl Columns) -> MetaResult<ChunkInfo> {
    let id = row.text("id")?;
    let placement = match row.opt_parsed("pack_id", PackId::parse_hex)? {
        None => Placement::Loose,
        Some(pack) => match (
            row.opt_bytes("pack_offset")?,
            row.opt_small("object_bytes")?,
        ) {
            (Some(offset), Some(len)) => Placement::Packed { pack, offset, len },
            _ => return Err(corrupt("chunk location", &id)),
        },
    };
    Ok(ChunkInfo {
        id: ChunkId::parse_hex(&id).ok_or_else(|| corrupt("chunk id", &id))?,
        raw_bytes: row.small("raw_bytes")?,
        stored_bytes: row.small("stored_bytes")?,
        is_deflate: row.flag("is_deflate")?,
        placement,
    })
}

/// The pack columns of a chunk row: `(pack_id, pack_offset, object_bytes)`.
pub(crate) fn placement_columns(
    placement: Placement,
) -> (Option<String>, Option<i64>, Option<i64>) {
    match placement {
        Placement::Loose => (None, None, None),
        Placement::Packed { pack, offset, len } => (
            Some(pack.to_hex()),
            Some(byte_col(offset)),
            Some(i64::from(len)),
        ),
    }
}

/// For each chunk of a recorded batch, whether it was new: its id is among `inserted` (the
/// ids the insert wrote) and it is the first of the batch to name it.
pub(crate) fn new_chunk_flags(chunks: &[ChunkInfo], inserted: &HashSet<String>) -> Vec<bool> {
    let mut seen = HashSet::new();
    chunks
        .iter()
        .map(|c| {
            let hex = c.id.to_hex();
            inserted.contains(&hex) && seen.insert(hex)
        })
        .collect()
}

/// Gives each checkpoint its parts, from rows of `checkpoint_parts` in position order.
pub(crate) fn attach_checkpoint_parts<R: Columns>(
    checkpoints: &mut [CheckpointRecord],
    part_rows: Vec<R>,
) -> MetaResult<()> {
    let mut parts = group_by_owner(part_rows, "checkpoint_id")?;
    for checkpoint in checkpoints {
        let rows = parts.remove(&checkpoint.id.to_hex()).unwrap_or_default();
        checkpoint.parts = rows
            .iter()
            .map(checkpoint_part_from_row)
            .collect::<MetaResult<_>>()?;
    }
    Ok(())
}

/// Gives each snapshot its parts, from rows of `snapshot_parts` in the order to keep.
pub(crate) fn attach_snapshot_parts<'a, R: Columns>(
    snapshots: impl IntoIterator<Item = &'a mut SnapshotRecord>,
    part_rows: Vec<R>,
) -> MetaResult<()> {
    let mut parts = group_by_owner(part_rows, "snapshot_id")?;
    for snapshot in snapshots {
        let rows = parts.remove(&snapshot.id.to_hex()).unwrap_or_default();
        snapshot.parts = rows
            .iter()
            .map(snapshot_part_from_row)
            .collect::<MetaResult<_>>()?;
    }
    Ok(())
}

/// Rows of a child table by the value of their `owner` column, each group in the order of
/// `rows`.
fn group_by_owner<R: Columns>(rows: Vec<R>, owner: &str) -> MetaResult<HashMap<String, Vec<R>>> {
    let mut groups: HashMap<String, Vec<R>> = HashMap::new();
    for row in rows {
        groups.entry(row.text(owner)?).or_default().push(row);
    }
    Ok(groups)
}

// Rows written and read back are checked for every backend by the conformance suite.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_by_its_result_code() {
        // SQLITE_FULL, and an extended code built on it; SQLITE_IOERR_WRITE is not.
        assert!(is_storage_full("13"));
        assert!(is_storage_full(&(13 | (1 << 8)).to_string()));
        assert!(!is_storage_full("778"));
        assert!(!is_storage_full("5"));
        // PostgreSQL's disk_full; a SQLSTATE whose number happens to end in SQLite's is not.
        assert!(is_storage_full("53100"));
        assert!(!is_storage_full("22029"));
        assert!(!is_storage_full("23505"));
    }

    #[test]
    fn the_job_insert_binds_as_many_values_as_it_names_columns() {
        assert_eq!(JOB_COLUMNS, JOB_INSERT.matches(',').count() + 1);
    }
}
