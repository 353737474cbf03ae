-- Checkpoints of sharded clusters (FCV 4.0 or earlier): one row per (cluster, moment), the
-- moment an epoch-aligned multiple of the project's checkpoint interval, and one row per
-- replica set of the cluster with the newest oplog entry it holds at or before that moment.
-- The unique (cluster_id, timestamp_secs) makes recording idempotent across server nodes.

CREATE TABLE checkpoints (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id),
    cluster_id     TEXT NOT NULL REFERENCES clusters(id),
    timestamp_secs BIGINT NOT NULL,
    recorded       BIGINT NOT NULL,
    UNIQUE (cluster_id, timestamp_secs)
);

CREATE TABLE checkpoint_parts (
    checkpoint_id    TEXT NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
    position         BIGINT NOT NULL,
    replica_set_name TEXT NOT NULL,
    shard_name       TEXT,
    type_name        TEXT NOT NULL,
    token_secs       BIGINT NOT NULL,
    token_inc        BIGINT NOT NULL,
    PRIMARY KEY (checkpoint_id, position)
);

-- Backup settings gain the checkpoint interval. Every setting is now optional (a project
-- may set one and keep the other's default), so the table is rebuilt with nullable columns.
CREATE TABLE backup_settings_new (
    project_id                  TEXT PRIMARY KEY REFERENCES projects(id),
    point_in_time_window_hours  BIGINT,
    checkpoint_interval_minutes BIGINT
);
INSERT INTO backup_settings_new (project_id, point_in_time_window_hours)
    SELECT project_id, point_in_time_window_hours FROM backup_settings;
DROP TABLE backup_settings;
ALTER TABLE backup_settings_new RENAME TO backup_settings;
