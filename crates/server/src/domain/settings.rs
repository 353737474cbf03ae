//! A project's backup settings: the point-in-time window and the checkpoint interval, kept
//! as one record with one read, one write and one set of rules.
//!
//! The store keeps only what a project set (an unset field is `None` there); the defaults
//! and the limits live here, so every reader of a setting sees the same value.

use super::{DomainError, DomainResult, ErrorCode, GroupAccess, Principal, Services};
use crate::ids::GroupId;
use crate::model::{BackupSettingsRecord, UnixSeconds};

/// The point-in-time window of a project that never set one, in hours.
pub const DEFAULT_PIT_WINDOW_HOURS: u32 = 24;
/// Longest point-in-time window a project may set (30 days): the oplog kept grows with it.
pub const MAX_PIT_WINDOW_HOURS: u32 = 30 * 24;
/// The checkpoint interval of a project that never set one, in minutes.
pub const DEFAULT_CHECKPOINT_INTERVAL_MINUTES: u32 = 15;
/// The intervals a project may choose, in minutes (those Cloud Manager offers).
pub const CHECKPOINT_INTERVALS_MINUTES: [u32; 3] = [15, 30, 60];

/// A project's backup settings, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSettings {
    pub group: GroupId,
    pub pit_window_hours: u32,
    pub checkpoint_interval_minutes: u32,
}

impl BackupSettings {
    /// The settings a project has once `record` (what it set) is filled with the defaults.
    pub fn from_record(group: GroupId, record: &BackupSettingsRecord) -> Self {
        BackupSettings {
            group,
            pit_window_hours: record.pit_window_hours.unwrap_or(DEFAULT_PIT_WINDOW_HOURS),
            checkpoint_interval_minutes: record
                .checkpoint_interval_minutes
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MINUTES),
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

impl Services {
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
