-- The garbage-collection protocol for several nodes sharing one block store (see
-- docs/decisions.md, "The block store on S3"). Each pack row has a state: `writing` (a
-- writer claimed it before its put; `claim_token` names the claim, `claimed_at` its last
-- renewal), `live` (its chunks are indexed) or `deleting` (a collector or the orphan sweep
-- is deleting the object; `claim_token` and `claimed_at` then name that deletion). Rows
-- written before this migration are live.
ALTER TABLE packs ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'live';
ALTER TABLE packs ADD COLUMN claim_token TEXT COLLATE "C" NOT NULL DEFAULT '000000000000000000000000';
ALTER TABLE packs ADD COLUMN claimed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX packs_unsettled ON packs(claimed_at) WHERE state <> 'live';

-- A pending slice the collector has begun deleting: its push can no longer commit it.
ALTER TABLE oplog_pending_slices ADD COLUMN deleting_since BIGINT;
