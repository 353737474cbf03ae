//! A project's backup settings: the point-in-time window, the checkpoint interval and the
//! rest of the snapshot schedule (retention, interval, reference time), kept as one record
//! with one read, one write and one set of rules. Rewind's own `backupSettings` and Cloud
//! Manager's `snapshotSchedule` of every cluster of the project are views of it.
//!
//! The store keeps only what a project set (an unset field is `None` there); the defaults
//! and the limits live here, so every reader of a setting sees the same value.

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::{ClusterId, GroupId};
use crate::model::{BackupSettingsRecord, ClusterType, UnixSeconds};

/// The point-in-time window of a project that never set one, in hours.
pub const DEFAULT_PIT_WINDOW_HOURS: u32 = 24;
/// Longest point-in-time window a project may set (30 days): the oplog kept grows with it.
pub const MAX_PIT_WINDOW_HOURS: u32 = 30 * 24;
/// The checkpoint interval of a project that never set one, in minutes.
pub const DEFAULT_CHECKPOINT_INTERVAL_MINUTES: u32 = 15;
/// The intervals a project may choose, in minutes (those Cloud Manager offers).
pub const CHECKPOINT_INTERVALS_MINUTES: [u32; 3] = [15, 30, 60];

/// Cloud Manager's retention defaults, which a project's retention takes for the periods it
/// did not set once it set any (days, days, weeks, months).
pub const DEFAULT_RETENTION: Retention = Retention {
    snapshot_days: 2,
    daily_days: 7,
    weekly_weeks: 4,
    monthly_months: 13,
};

/// How long imported snapshots are kept, by the periods they open (Cloud Manager's
/// `snapshotRetentionDays`, `dailySnapshotRetentionDays`, `weeklySnapshotRetentionWeeks`,
/// `monthlySnapshotRetentionMonths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub snapshot_days: u32,
    pub daily_days: u32,
    pub weekly_weeks: u32,
    pub monthly_months: u32,
}

impl Retention {
    /// When a snapshot taken at `created` and imported at `imported` expires, given when
    /// the cluster's other complete snapshots were taken: it is kept for the longest period
    /// it opens. Every snapshot is kept `snapshot_days`; the first of its UTC day (none of
    /// the others taken earlier that day) `daily_days`, of its ISO week `weekly_weeks`, of
    /// its month `monthly_months`. Counted from the import, so that an old snapshot imported
    /// now is not deleted the moment it arrives.
    pub fn expiry(
        &self,
        created: UnixSeconds,
        imported: UnixSeconds,
        others: &[UnixSeconds],
    ) -> UnixSeconds {
        use chrono::{DateTime, Datelike, Months};
        let day = |t: UnixSeconds| DateTime::from_timestamp(t, 0).map(|d| d.date_naive());
        let Some(taken) = day(created) else {
            return imported + i64::from(self.snapshot_days) * DAY_SECS;
        };
        let opens = |same: &dyn Fn(chrono::NaiveDate) -> bool| {
            !others
                .iter()
                .any(|t| *t < created && day(*t).is_some_and(same))
        };
        let mut keep = i64::from(self.snapshot_days) * DAY_SECS;
        if opens(&|d| d == taken) {
            keep = keep.max(i64::from(self.daily_days) * DAY_SECS);
        }
        if opens(&|d| d.iso_week() == taken.iso_week()) {
            keep = keep.max(i64::from(self.weekly_weeks) * 7 * DAY_SECS);
        }
        if opens(&|d| (d.year(), d.month()) == (taken.year(), taken.month())) {
            let months = DateTime::from_timestamp(imported, 0)
                .and_then(|at| at.checked_add_months(Months::new(self.monthly_months)))
                .map(|at| at.timestamp() - imported);
            keep = keep.max(months.unwrap_or(i64::from(self.monthly_months) * 31 * DAY_SECS));
        }
        imported + keep
    }
}

const DAY_SECS: i64 = 86_400;

/// A project's backup settings, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSettings {
    pub group: GroupId,
    pub pit_window_hours: u32,
    pub checkpoint_interval_minutes: u32,
    /// `None` until the project sets any retention period: snapshots then never expire on
    /// their own.
    pub retention: Option<Retention>,
    /// The rest of the schedule as set (stored and echoed: snapshots arrive by import).
    pub snapshot_interval_hours: Option<u32>,
    pub reference_hour_of_day: Option<u32>,
    pub reference_minute_of_hour: Option<u32>,
    pub reference_offset_minutes: Option<i32>,
}

impl BackupSettings {
    /// The settings a project has once `record` (what it set) is filled with the defaults.
    pub fn from_record(group: GroupId, record: &BackupSettingsRecord) -> Self {
        let periods = [
            record.snapshot_retention_days,
            record.daily_retention_days,
            record.weekly_retention_weeks,
            record.monthly_retention_months,
        ];
        let retention = periods.iter().any(Option::is_some).then(|| Retention {
            snapshot_days: periods[0].unwrap_or(DEFAULT_RETENTION.snapshot_days),
            daily_days: periods[1].unwrap_or(DEFAULT_RETENTION.daily_days),
            weekly_weeks: periods[2].unwrap_or(DEFAULT_RETENTION.weekly_weeks),
            monthly_months: periods[3].unwrap_or(DEFAULT_RETENTION.monthly_months),
        });
        BackupSettings {
            group,
            pit_window_hours: record.pit_window_hours.unwrap_or(DEFAULT_PIT_WINDOW_HOURS),
            checkpoint_interval_minutes: record
                .checkpoint_interval_minutes
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MINUTES),
            retention,
            snapshot_interval_hours: record.snapshot_interval_hours,
            reference_hour_of_day: record.reference_hour_of_day,
            reference_minute_of_hour: record.reference_minute_of_hour,
            reference_offset_minutes: record.reference_offset_minutes,
        }
    }

    /// The start of the point-in-time window at `now`, in seconds (never negative): the
    /// oldest moment a restore may target, and what retention and checkpoints keep.
    pub fn window_start(&self, now: UnixSeconds) -> UnixSeconds {
        (now - i64::from(self.pit_window_hours) * 3600).max(0)
    }

    /// The checkpoint interval in seconds.
    pub fn checkpoint_interval_secs(&self) -> u32 {
        self.checkpoint_interval_minutes * 60
    }
}

/// Changes to a project's backup settings, as requested (unchecked); `None` keeps a setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupSettingsChange {
    pub pit_window_hours: Option<i64>,
    pub checkpoint_interval_minutes: Option<i64>,
}

impl BackupSettingsChange {
    /// Checks every requested value; the answer holds only the fields to write.
    fn validate(&self) -> DomainResult<BackupSettingsRecord> {
        Ok(BackupSettingsRecord {
            pit_window_hours: self.pit_window_hours.map(pit_window).transpose()?,
            checkpoint_interval_minutes: self
                .checkpoint_interval_minutes
                .map(checkpoint_interval)
                .transpose()?,
            ..BackupSettingsRecord::default()
        })
    }
}

/// Checks a requested point-in-time window: 1 to [`MAX_PIT_WINDOW_HOURS`] hours.
pub fn pit_window(hours: i64) -> DomainResult<u32> {
    let field = "pointInTimeWindowHours";
    if hours < 1 {
        return Err(DomainError::rejected(
            ErrorCode::AttributeNegativeOrZero,
            format!("Invalid attribute {field} specified: it must be at least 1."),
            vec![field.into()],
        ));
    }
    u32::try_from(hours)
        .ok()
        .filter(|h| *h <= MAX_PIT_WINDOW_HOURS)
        .ok_or_else(|| {
            DomainError::rejected(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute {field} specified: it must be at most {MAX_PIT_WINDOW_HOURS} hours."),
                vec![field.into()],
            )
        })
}

/// Checks a requested checkpoint interval: one of [`CHECKPOINT_INTERVALS_MINUTES`].
pub fn checkpoint_interval(minutes: i64) -> DomainResult<u32> {
    CHECKPOINT_INTERVALS_MINUTES
        .into_iter()
        .find(|m| i64::from(*m) == minutes)
        .ok_or_else(|| {
            let field = "checkpointIntervalMinutes";
            DomainError::rejected(
                ErrorCode::InvalidAttribute,
                format!("Invalid attribute {field} specified: it must be 15, 30 or 60."),
                vec![field.into()],
            )
        })
}

/// Changes to a cluster's snapshot schedule as Cloud Manager names them (unchecked); `None`
/// keeps a setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleChange {
    pub pit_window_hours: Option<i64>,
    pub checkpoint_interval_minutes: Option<i64>,
    pub snapshot_interval_hours: Option<i64>,
    pub snapshot_retention_days: Option<i64>,
    pub daily_retention_days: Option<i64>,
    pub weekly_retention_weeks: Option<i64>,
    pub monthly_retention_months: Option<i64>,
    pub reference_hour_of_day: Option<i64>,
    pub reference_minute_of_hour: Option<i64>,
    pub reference_offset: Option<String>,
}

/// Checks `value` of `field` lies in `allowed`, else refuses with Cloud Manager's `code`.
fn schedule_value(
    value: Option<i64>,
    field: &str,
    allowed: impl Fn(i64) -> bool,
    code: ErrorCode,
    rule: &str,
) -> DomainResult<Option<u32>> {
    match value {
        None => Ok(None),
        Some(v) if allowed(v) => Ok(u32::try_from(v).ok()),
        Some(v) => Err(DomainError::rejected(
            code,
            format!("Invalid attribute {field} specified: {v}; {rule}."),
            vec![field.to_owned()],
        )),
    }
}

/// Parses an ISO-8601 time offset as Cloud Manager writes it (`+0000`, `-0530`) into minutes
/// east of UTC.
pub fn parse_offset(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i32 = text[1..3].parse().ok()?;
    let minutes: i32 = text[3..5].parse().ok()?;
    (hours <= 18 && minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// Minutes east of UTC written as Cloud Manager does (`+0530`).
pub fn format_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

impl ScheduleChange {
    /// Checks every requested value with Cloud Manager's limits and error codes; the answer
    /// holds only the fields to write. `sharded` tells whether the cluster may have a
    /// checkpoint interval.
    fn validate(&self, sharded: bool) -> DomainResult<BackupSettingsRecord> {
        use ErrorCode::*;
        let interval_field = "clusterCheckpointIntervalMin";
        let checkpoint_interval_minutes = match self.checkpoint_interval_minutes {
            Some(_) if !sharded => {
                return Err(DomainError::rejected(
                    CannotSetClusterCheckpointIntervalForReplicaSet,
                    "Cluster checkpoint interval can only be set for sharded clusters, not replica sets.",
                    vec![interval_field.to_owned()],
                ))
            }
            value => schedule_value(
                value,
                interval_field,
                |m| CHECKPOINT_INTERVALS_MINUTES.iter().any(|i| i64::from(*i) == m),
                InvalidClusterCheckpointInterval,
                "the cluster checkpoint interval must be 15, 30, or 60 minutes",
            )?,
        };
        let offset = match &self.reference_offset {
            None => None,
            Some(text) => Some(parse_offset(text).ok_or_else(|| {
                DomainError::rejected(
                    InvalidReferenceTimezoneOffset,
                    format!("Invalid attribute referenceTimeZoneOffset specified: {text:?}; the snapshot schedule timezone offset must conform to ISO-8601 time offset format, such as \"+0000\"."),
                    vec!["referenceTimeZoneOffset".to_owned()],
                )
            })?),
        };
        Ok(BackupSettingsRecord {
            pit_window_hours: self.pit_window_hours.map(pit_window).transpose()?,
            checkpoint_interval_minutes,
            snapshot_interval_hours: schedule_value(
                self.snapshot_interval_hours,
                "snapshotIntervalHours",
                |h| [6, 8, 12, 24].contains(&h),
                InvalidSnapshotInterval,
                "the snapshot interval must be 6, 8, 12, or 24 hours",
            )?,
            snapshot_retention_days: schedule_value(
                self.snapshot_retention_days,
                "snapshotRetentionDays",
                |d| (1..=5).contains(&d),
                InvalidSnapshotRetentionPeriod,
                "the snapshot retention period must be between 1 and 5 days",
            )?,
            daily_retention_days: schedule_value(
                self.daily_retention_days,
                "dailySnapshotRetentionDays",
                |d| (1..=365).contains(&d),
                InvalidDailySnapshotRetentionPeriod,
                "the daily snapshot retention period must be between 1 and 365 days",
            )?,
            weekly_retention_weeks: schedule_value(
                self.weekly_retention_weeks,
                "weeklySnapshotRetentionWeeks",
                |w| (1..=52).contains(&w),
                InvalidWeeklySnapshotRetentionPeriod,
                "the weekly snapshot retention period must be between 1 and 52 weeks",
            )?,
            monthly_retention_months: schedule_value(
                self.monthly_retention_months,
                "monthlySnapshotRetentionMonths",
                |m| (1..=36).contains(&m),
                InvalidMonthlySnapshotRetentionPeriod,
                "the monthly snapshot retention period must be between 1 and 36 months",
            )?,
            reference_hour_of_day: schedule_value(
                self.reference_hour_of_day,
                "referenceHourOfDay",
                |h| (0..=23).contains(&h),
                InvalidReferenceHourOfDay,
                "the snapshot schedule reference hour must be between 0 and 23, inclusive",
            )?,
            reference_minute_of_hour: schedule_value(
                self.reference_minute_of_hour,
                "referenceMinuteOfHour",
                |m| (0..=59).contains(&m),
                InvalidReferenceMinuteOfHour,
                "the snapshot schedule reference minute must be between 0 and 59, inclusive",
            )?,
            reference_offset_minutes: offset,
        })
    }
}

/// A cluster's snapshot schedule: the project's settings, and whether the cluster is
/// sharded (only then does it show a checkpoint interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSchedule {
    pub cluster: ClusterId,
    pub sharded: bool,
    pub settings: BackupSettings,
}

impl Services {
    /// The snapshot schedule of a cluster (`GET …/backupConfigs/{C}/snapshotSchedule`).
    pub async fn snapshot_schedule(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
    ) -> DomainResult<SnapshotSchedule> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        let record = self.find_cluster(group, cluster).await?;
        Ok(SnapshotSchedule {
            cluster,
            sharded: record.type_name == ClusterType::ShardedReplicaSet,
            settings: self.settings_of(group).await?,
        })
    }

    /// Changes a cluster's snapshot schedule, all or none: every value is checked before the
    /// project's settings record is written, in one write (every cluster of the project
    /// shares it).
    pub async fn update_snapshot_schedule(
        &self,
        principal: &Principal,
        group: GroupId,
        cluster: ClusterId,
        change: &ScheduleChange,
    ) -> DomainResult<SnapshotSchedule> {
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let record = self.find_cluster(group, cluster).await?;
        let sharded = record.type_name == ClusterType::ShardedReplicaSet;
        let patch = change.validate(sharded)?;
        let stored = self.meta.update_backup_settings(group, &patch).await?;
        tracing::info!(group.id = %group, cluster.id = %cluster, "snapshot schedule changed");
        Ok(SnapshotSchedule {
            cluster,
            sharded,
            settings: BackupSettings::from_record(group, &stored),
        })
    }

    /// A project's backup settings, defaults applied (no authorization: for the domain's
    /// own rules and background work).
    pub async fn settings_of(&self, group: GroupId) -> DomainResult<BackupSettings> {
        let record = self.meta.backup_settings(group).await?;
        Ok(BackupSettings::from_record(group, &record))
    }

    /// A project's backup settings, for a caller with any role in it.
    pub async fn backup_settings(
        &self,
        principal: &Principal,
        group: GroupId,
    ) -> DomainResult<BackupSettings> {
        self.authorize_group(principal, group, GroupAccess::Read)
            .await?;
        self.settings_of(group).await
    }

    /// Sets the project's point-in-time window: 1 to [`MAX_PIT_WINDOW_HOURS`] hours. A
    /// shorter window lets the next sweeper pass retire the oplog that falls out of it.
    pub async fn set_pit_window(
        &self,
        principal: &Principal,
        group: GroupId,
        hours: i64,
    ) -> DomainResult<BackupSettings> {
        let change = BackupSettingsChange {
            pit_window_hours: Some(hours),
            ..BackupSettingsChange::default()
        };
        self.update_backup_settings(principal, group, change).await
    }

    /// Changes the settings given in `change`, all or none: every value is checked before
    /// the record is written, in one write. Without changes this is a read (any role may
    /// make it).
    pub async fn update_backup_settings(
        &self,
        principal: &Principal,
        group: GroupId,
        change: BackupSettingsChange,
    ) -> DomainResult<BackupSettings> {
        if change == BackupSettingsChange::default() {
            return self.backup_settings(principal, group).await;
        }
        self.authorize_group(principal, group, GroupAccess::BackupAdmin)
            .await?;
        let patch = change.validate()?;
        let stored = self.meta.update_backup_settings(group, &patch).await?;
        let settings = BackupSettings::from_record(group, &stored);
        tracing::info!(
            group.id = %group,
            window_hours = settings.pit_window_hours,
            interval_minutes = settings.checkpoint_interval_minutes,
            "backup settings changed"
        );
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clusters::ClusterSpec;
    use crate::domain::test_support::TestProject;

    #[test]
    fn the_interval_is_15_30_or_60_minutes() {
        for ok in [15, 30, 60] {
            assert_eq!(checkpoint_interval(ok).unwrap(), ok as u32);
        }
        for bad in [0, -15, 1, 20, 45, 90, 120, i64::MAX] {
            assert_eq!(
                checkpoint_interval(bad).unwrap_err().code(),
                ErrorCode::InvalidAttribute,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_snapshot_is_kept_for_the_longest_period_it_opens() {
        let keep = Retention {
            snapshot_days: 2,
            daily_days: 7,
            weekly_weeks: 4,
            monthly_months: 13,
        };
        // Wednesday 2026-12-16 10:00 UTC; the import a day later.
        let created = 1_797_415_200;
        let imported = created + DAY_SECS;
        let day = |d: i64| imported + d * DAY_SECS;
        let months_13 = chrono::DateTime::from_timestamp(imported, 0)
            .unwrap()
            .checked_add_months(chrono::Months::new(13))
            .unwrap()
            .timestamp();
        assert_eq!(
            keep.expiry(created, imported, &[]),
            months_13,
            "first of its month"
        );
        let same_month = [created - 3 * DAY_SECS]; // Sunday: another ISO week
        assert_eq!(
            keep.expiry(created, imported, &same_month),
            day(28),
            "first of its week"
        );
        let same_week = [created - DAY_SECS];
        assert_eq!(
            keep.expiry(created, imported, &same_week),
            day(7),
            "first of its day"
        );
        let same_day = [created - 3600];
        assert_eq!(keep.expiry(created, imported, &same_day), day(2));
        assert_eq!(
            keep.expiry(created, imported, &[created + 3600]),
            months_13,
            "a later snapshot of the same day does not take its place"
        );
    }

    #[test]
    fn retention_is_off_until_a_period_is_set_then_the_others_take_cloud_managers_defaults() {
        let group = GroupId::generate();
        assert_eq!(
            BackupSettings::from_record(group, &Default::default()).retention,
            None
        );
        let record = BackupSettingsRecord {
            weekly_retention_weeks: Some(8),
            ..Default::default()
        };
        assert_eq!(
            BackupSettings::from_record(group, &record).retention,
            Some(Retention {
                weekly_weeks: 8,
                ..DEFAULT_RETENTION
            })
        );
    }

    #[test]
    fn offsets_read_and_write_as_cloud_manager_spells_them() {
        assert_eq!(parse_offset("+0000"), Some(0));
        assert_eq!(parse_offset("-0530"), Some(-330));
        assert_eq!(parse_offset("+1400"), Some(840));
        for bad in [
            "0000", "+000", "+00:00", "+2400", "+0060", "UTC", "", "+00000", "+-100",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
        assert_eq!(format_offset(-330), "-0530");
        assert_eq!(format_offset(0), "+0000");
    }

    #[test]
    fn unset_settings_take_their_defaults_and_the_window_start_is_never_negative() {
        let settings = BackupSettings::from_record(GroupId::generate(), &Default::default());
        assert_eq!(settings.pit_window_hours, DEFAULT_PIT_WINDOW_HOURS);
        assert_eq!(
            settings.checkpoint_interval_minutes,
            DEFAULT_CHECKPOINT_INTERVAL_MINUTES
        );
        assert_eq!(settings.window_start(100), 0);
        assert_eq!(settings.window_start(100_000), 100_000 - 24 * 3600);
    }

    #[tokio::test]
    async fn the_window_is_bounded() {
        let f = TestProject::start(ClusterSpec {
            name: "rs0".into(),
            shards: None,
            fcv: None,
        })
        .await;
        let set = |h| f.services.set_pit_window(&f.principal, f.group, h);
        assert_eq!(
            set(0).await.unwrap_err().code(),
            ErrorCode::AttributeNegativeOrZero
        );
        assert_eq!(
            set(721).await.unwrap_err().code(),
            ErrorCode::InvalidAttribute
        );
        assert_eq!(set(48).await.unwrap().pit_window_hours, 48);
        assert_eq!(
            f.services
                .settings_of(f.group)
                .await
                .unwrap()
                .pit_window_hours,
            48
        );
    }
}
