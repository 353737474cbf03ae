-- Checkpoints of sharded clusters (FCV 4.0 or earlier): one row per (cluster, moment), the
-- moment an epoch-aligned multiple of the project's checkpoint interval, and one row per
-- replica set of the cluster with the newest oplog entry it holds at or before that moment.
-- The unique (cluster_id, timestamp_secs) makes recording idempotent across server nodes.

CREATE TABLE checkpoints (
    id             TEXT COLLATE "C" PRIMARY KEY,
    project_id     TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    cluster_id     TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    timestamp_secs BIGINT NOT NULL,
    recorded       BIGINT NOT NULL,
    UNIQUE (cluster_id, timestamp_secs)
);

CREATE TABLE checkpoint_parts (
    checkpoint_id    TEXT COLLATE "C" NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
    position         BIGINT NOT NULL,
    replica_set_name TEXT COLLATE "C" NOT NULL,
    shard_name       TEXT COLLATE "C",
    type_name        TEXT COLLATE "C" NOT NULL,
    token_secs       BIGINT NOT NULL,
    token_inc        BIGINT NOT NULL,
    PRIMARY KEY (checkpoint_id, position)
);
