-- The Digest replay ledger: one row per (nonce, nc) used, kept until the nonce expires.
-- The key leads with the expiry, so forgetting expired uses is one range of the index.
CREATE TABLE nonce_uses (
    expires     INTEGER NOT NULL,
    tag         INTEGER NOT NULL,
    nc          INTEGER NOT NULL,
    PRIMARY KEY (expires, tag, nc)
) WITHOUT ROWID;
