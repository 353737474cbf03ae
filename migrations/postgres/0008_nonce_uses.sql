-- The Digest replay ledger: one row per (nonce, nc) used, kept until the nonce expires.
-- The key leads with the expiry, so forgetting expired uses is one range of the index, and
-- a table of fixed-width columns keeps each row small (it takes one insert per request).
CREATE TABLE nonce_uses (
    expires     BIGINT NOT NULL,
    tag         BIGINT NOT NULL,
    nc          BIGINT NOT NULL,
    PRIMARY KEY (expires, tag, nc)
);
