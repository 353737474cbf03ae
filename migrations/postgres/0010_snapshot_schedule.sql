-- The rest of a cluster's snapshot schedule as Cloud Manager exposes it, kept with the
-- point-in-time window and the checkpoint interval in the project's one settings record
-- (NULL: not set). Retention gives imported snapshots their expiry; the interval and the
-- reference time are stored and echoed, since snapshots arrive by import.
ALTER TABLE backup_settings ADD COLUMN snapshot_interval_hours BIGINT;
ALTER TABLE backup_settings ADD COLUMN snapshot_retention_days BIGINT;
ALTER TABLE backup_settings ADD COLUMN daily_snapshot_retention_days BIGINT;
ALTER TABLE backup_settings ADD COLUMN weekly_snapshot_retention_weeks BIGINT;
ALTER TABLE backup_settings ADD COLUMN monthly_snapshot_retention_months BIGINT;
ALTER TABLE backup_settings ADD COLUMN reference_hour_of_day BIGINT;
ALTER TABLE backup_settings ADD COLUMN reference_minute_of_hour BIGINT;
-- Minutes east of UTC ("+0530" is 330).
ALTER TABLE backup_settings ADD COLUMN reference_time_zone_offset_minutes BIGINT;
