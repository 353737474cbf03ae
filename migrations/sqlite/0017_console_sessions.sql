-- The web console's signed-in sessions, shared by every node of the store. Only a hash of
-- the cookie's secret is kept. A session goes with its key (foreign keys are enforced on
-- every connection), and the index on the expiry lets the purge read one range.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created     BIGINT NOT NULL,
    expires     BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions(expires);
-- Deleting a key finds its sessions through this index instead of reading the whole table.
CREATE INDEX console_sessions_key ON console_sessions(key_id);
