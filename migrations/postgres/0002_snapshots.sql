-- Snapshots: one row per snapshot, one per replica-set part, and the chunk index with
-- reference counts (a chunk is collectable once unreferenced for longer than the GC delay).
-- The new chunks of each upload batch are stored as one object, a pack; a chunk without a
-- pack was stored alone before packs existed.

CREATE TABLE snapshots (
    id              TEXT COLLATE "C" PRIMARY KEY,
    project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    cluster_id      TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    created_secs    BIGINT NOT NULL,
    created_inc     BIGINT NOT NULL,
    last_oplog_secs BIGINT,
    last_oplog_inc  BIGINT,
    complete        BOOLEAN NOT NULL,
    expires         BIGINT,
    do_not_delete   BOOLEAN NOT NULL,
    deleted_at      BIGINT,
    refs_released   BOOLEAN NOT NULL,
    mongod_version  TEXT COLLATE "C" NOT NULL,
    storage_engine  TEXT COLLATE "C" NOT NULL,
    recorded        BIGINT NOT NULL
);
CREATE INDEX snapshots_cluster ON snapshots(cluster_id, created_secs, created_inc);

CREATE TABLE snapshot_parts (
    snapshot_id        TEXT COLLATE "C" NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    replica_set_name   TEXT COLLATE "C" NOT NULL,
    cluster_id         TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    type_name          TEXT COLLATE "C" NOT NULL,
    committed          BOOLEAN NOT NULL,
    file_count         BIGINT NOT NULL,
    file_size_bytes    BIGINT NOT NULL,
    data_size_bytes    BIGINT NOT NULL,
    storage_size_bytes BIGINT NOT NULL,
    -- The object name of the committed part's manifest, recorded in the transaction that
    -- commits the part.
    manifest_name      TEXT COLLATE "C",
    PRIMARY KEY (snapshot_id, replica_set_name)
);

CREATE TABLE packs (
    id      TEXT COLLATE "C" PRIMARY KEY,
    bytes   BIGINT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE chunks (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    raw_bytes          BIGINT NOT NULL,
    stored_bytes       BIGINT NOT NULL,
    is_deflate         BOOLEAN NOT NULL,
    refcount           BIGINT NOT NULL,
    unreferenced_since BIGINT,
    pack_id            TEXT COLLATE "C" REFERENCES packs(id),
    pack_offset        BIGINT,
    object_bytes       BIGINT
);
CREATE INDEX chunks_collectable ON chunks(unreferenced_since) WHERE refcount = 0;
CREATE INDEX chunks_pack ON chunks(pack_id);
