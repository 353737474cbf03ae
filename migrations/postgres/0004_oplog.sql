-- The oplog store. Per replica set (a cluster id plus a replica set name): the slices that
-- hold its entries, and the ranges of oplog known to be stored completely (gaps lie between
-- them). Timestamps are kept as (seconds, increment) pairs and compared as row values.

CREATE TABLE oplog_slices (
    id               TEXT COLLATE "C" PRIMARY KEY,
    cluster_id       TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    replica_set_name TEXT COLLATE "C" NOT NULL,
    first_secs       BIGINT NOT NULL,
    first_inc        BIGINT NOT NULL,
    last_secs        BIGINT NOT NULL,
    last_inc         BIGINT NOT NULL,
    entry_count      BIGINT NOT NULL,
    raw_bytes        BIGINT NOT NULL,
    stored_bytes     BIGINT NOT NULL,
    recorded         BIGINT NOT NULL,
    -- Set when retention (or a re-cut of a small last slice) retires the slice; the object
    -- is deleted once this is older than the GC delay, then the row.
    dropped_at       BIGINT
);
CREATE UNIQUE INDEX oplog_slices_live ON oplog_slices(cluster_id, replica_set_name, first_secs, first_inc)
    WHERE dropped_at IS NULL;
CREATE INDEX oplog_slices_dropped ON oplog_slices(dropped_at) WHERE dropped_at IS NOT NULL;

CREATE TABLE oplog_ranges (
    cluster_id       TEXT COLLATE "C" NOT NULL REFERENCES clusters(id),
    replica_set_name TEXT COLLATE "C" NOT NULL,
    first_secs       BIGINT NOT NULL,
    first_inc        BIGINT NOT NULL,
    last_secs        BIGINT NOT NULL,
    last_inc         BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, replica_set_name, first_secs, first_inc)
);

-- Slice objects a push is writing: recorded before the objects are written and removed in
-- the transaction that records the slices, so objects of a push that never committed (a
-- crash, a lost race) are found and deleted after the GC delay.
CREATE TABLE oplog_pending_slices (
    id               TEXT COLLATE "C" PRIMARY KEY,
    cluster_id       TEXT COLLATE "C" NOT NULL,
    replica_set_name TEXT COLLATE "C" NOT NULL,
    recorded         BIGINT NOT NULL
);
