-- Restore jobs. A job waiting for preparation has delivery_status NOT_STARTED or
-- IN_PROGRESS; workers lease it (lease_owner, lease_until) so a crashed worker's job is
-- picked up again once its lease runs out. resume_offset: where an interrupted transfer of
-- a download link stopped (NULL: none to resume); resent_bytes: how many bytes resumes have
-- sent again in all.

CREATE TABLE restore_jobs (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    batch_id            TEXT COLLATE "C",
    project_id          TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    cluster_id          TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    snapshot_id         TEXT COLLATE "C" NOT NULL REFERENCES snapshots(id),
    replica_set_name    TEXT COLLATE "C" NOT NULL,
    part_type           TEXT COLLATE "C" NOT NULL,
    created             BIGINT NOT NULL,
    status              TEXT COLLATE "C" NOT NULL,
    delivery_status     TEXT COLLATE "C" NOT NULL,
    method              TEXT COLLATE "C" NOT NULL,
    max_downloads       BIGINT,
    expiration_hours    BIGINT,
    target_group_id     TEXT COLLATE "C",
    target_cluster_id   TEXT COLLATE "C",
    expires             BIGINT,
    point_in_time       BOOLEAN NOT NULL,
    ts_secs             BIGINT NOT NULL,
    ts_inc              BIGINT NOT NULL,
    file_name           TEXT COLLATE "C" NOT NULL,
    archive_bytes       BIGINT,
    archive_sha1        TEXT COLLATE "C",
    downloads_started   BIGINT NOT NULL,
    downloads_completed BIGINT NOT NULL,
    finished_at         BIGINT,
    failure             TEXT COLLATE "C",
    attempts            BIGINT NOT NULL,
    lease_owner         TEXT COLLATE "C",
    lease_until         BIGINT,
    resume_offset       BIGINT,
    resent_bytes        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX restore_jobs_cluster ON restore_jobs(project_id, cluster_id, created);
CREATE INDEX restore_jobs_batch ON restore_jobs(batch_id);
CREATE INDEX restore_jobs_pending ON restore_jobs(delivery_status, lease_until);
CREATE INDEX restore_jobs_snapshot ON restore_jobs(snapshot_id);
-- Workers claim the oldest jobs waiting for preparation.
CREATE INDEX restore_jobs_waiting ON restore_jobs(created, id)
    WHERE status = 'IN_PROGRESS' AND delivery_status IN ('NOT_STARTED', 'IN_PROGRESS');
-- Open automated jobs, read by every agent poll and every monitor tick.
CREATE INDEX restore_jobs_automated_open ON restore_jobs(target_cluster_id)
    WHERE method = 'AUTOMATED_RESTORE' AND status = 'IN_PROGRESS';
