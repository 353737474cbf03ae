-- How far the preparation of a job's archive got, for operators watching it: the bytes read
-- and verified so far, and the archive's size as laid out when preparation began.
ALTER TABLE restore_jobs ADD COLUMN prepared_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE restore_jobs ADD COLUMN planned_bytes BIGINT;
