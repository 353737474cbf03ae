-- Restore agents (`rewind agent`). agent_members: the members of each replica set that an
-- agent has announced (by heartbeat or poll). agent_restore_plans: when an automated job
-- was first seen ready and which replica set row it applies to. agent_restore_members:
-- one row per (job, member) expected to apply it, claimed by one agent at a time.

CREATE TABLE agent_members (
    cluster_id   TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    member_name  TEXT COLLATE "C" NOT NULL,
    agent_id     TEXT COLLATE "C" NOT NULL,
    last_seen    BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, member_name)
);

CREATE TABLE agent_restore_plans (
    job_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES restore_jobs(id),
    cluster_id   TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    planned_at   BIGINT NOT NULL
);

CREATE TABLE agent_restore_members (
    job_id         TEXT COLLATE "C" NOT NULL REFERENCES restore_jobs(id),
    member_name    TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    agent_id       TEXT COLLATE "C",
    progress_bytes BIGINT NOT NULL DEFAULT 0,
    failure        TEXT COLLATE "C",
    updated        BIGINT NOT NULL,
    PRIMARY KEY (job_id, member_name)
);
CREATE INDEX agent_restore_members_open ON agent_restore_members(job_id)
    WHERE state IN ('APPLYING', 'APPLIED');
