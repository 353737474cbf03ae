-- Restore jobs. A job waiting for preparation has delivery_status NOT_STARTED or
-- IN_PROGRESS; workers lease it (lease_owner, lease_until) so a crashed worker's job is
-- picked up again once its lease runs out.

CREATE TABLE restore_jobs (
    id                  TEXT PRIMARY KEY,
    batch_id            TEXT,
    project_id          TEXT NOT NULL REFERENCES projects(id),
    cluster_id          TEXT NOT NULL REFERENCES clusters(id),
    snapshot_id         TEXT NOT NULL REFERENCES snapshots(id),
    replica_set_name    TEXT NOT NULL,
    part_type           TEXT NOT NULL,
    created             BIGINT NOT NULL,
    status              TEXT NOT NULL,
    delivery_status     TEXT NOT NULL,
    method              TEXT NOT NULL,
    max_downloads       BIGINT,
    expiration_hours    BIGINT,
    target_group_id     TEXT,
    target_cluster_id   TEXT,
    expires             BIGINT,
    point_in_time       BOOLEAN NOT NULL,
    ts_secs             BIGINT NOT NULL,
    ts_inc              BIGINT NOT NULL,
    file_name           TEXT NOT NULL,
    archive_bytes       BIGINT,
    archive_sha1        TEXT,
    downloads_started   BIGINT NOT NULL,
    downloads_completed BIGINT NOT NULL,
    finished_at         BIGINT,
    failure             TEXT,
    attempts            BIGINT NOT NULL,
    lease_owner         TEXT,
    lease_until         BIGINT
);
CREATE INDEX restore_jobs_cluster ON restore_jobs(project_id, cluster_id, created);
CREATE INDEX restore_jobs_batch ON restore_jobs(batch_id);
CREATE INDEX restore_jobs_pending ON restore_jobs(delivery_status, lease_until);
CREATE INDEX restore_jobs_snapshot ON restore_jobs(snapshot_id);
