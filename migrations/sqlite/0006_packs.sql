-- Packs: the new chunks of each upload batch are stored as one object, `packs/ab/<id>`,
-- and the index records where in which pack each chunk lies. A chunk without a pack is one
-- stored alone under `chunks/` before packs existed. A pack row is written in the
-- transaction that indexes its first chunks, and removed, with its object, once no chunk
-- row names it any more.

CREATE TABLE packs (
    id      TEXT PRIMARY KEY,
    bytes   BIGINT NOT NULL,
    created BIGINT NOT NULL
);

ALTER TABLE chunks ADD COLUMN pack_id TEXT REFERENCES packs(id);
ALTER TABLE chunks ADD COLUMN pack_offset BIGINT;
ALTER TABLE chunks ADD COLUMN object_bytes BIGINT;
CREATE INDEX chunks_pack ON chunks(pack_id);
