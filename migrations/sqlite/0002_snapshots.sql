-- Snapshots: one row per snapshot, one per replica-set part, and the chunk index with
-- reference counts (a chunk is collectable once unreferenced for longer than the GC delay).

CREATE TABLE snapshots (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    cluster_id      TEXT NOT NULL REFERENCES clusters(id),
    created_secs    BIGINT NOT NULL,
    created_inc     BIGINT NOT NULL,
    last_oplog_secs BIGINT,
    last_oplog_inc  BIGINT,
    complete        BOOLEAN NOT NULL,
    expires         BIGINT,
    do_not_delete   BOOLEAN NOT NULL,
    deleted_at      BIGINT,
    refs_released   BOOLEAN NOT NULL,
    mongod_version  TEXT NOT NULL,
    storage_engine  TEXT NOT NULL,
    recorded        BIGINT NOT NULL
);
CREATE INDEX snapshots_cluster ON snapshots(cluster_id, created_secs, created_inc);

CREATE TABLE snapshot_parts (
    snapshot_id        TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    replica_set_name   TEXT NOT NULL,
    cluster_id         TEXT NOT NULL REFERENCES clusters(id),
    type_name          TEXT NOT NULL,
    committed          BOOLEAN NOT NULL,
    file_count         BIGINT NOT NULL,
    file_size_bytes    BIGINT NOT NULL,
    data_size_bytes    BIGINT NOT NULL,
    storage_size_bytes BIGINT NOT NULL,
    PRIMARY KEY (snapshot_id, replica_set_name)
);

CREATE TABLE chunks (
    id                 TEXT PRIMARY KEY,
    raw_bytes          BIGINT NOT NULL,
    stored_bytes       BIGINT NOT NULL,
    is_deflate         BOOLEAN NOT NULL,
    refcount           BIGINT NOT NULL,
    unreferenced_since BIGINT
);
CREATE INDEX chunks_collectable ON chunks(unreferenced_since) WHERE refcount = 0;
