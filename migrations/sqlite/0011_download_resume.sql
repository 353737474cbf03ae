-- Where an interrupted transfer of a download link stopped (NULL: none to resume), and how
-- many bytes resumes have sent again in all: a resume may only continue from about where
-- the transfer stopped, within a per-link allowance.
ALTER TABLE restore_jobs ADD COLUMN resume_offset BIGINT;
ALTER TABLE restore_jobs ADD COLUMN resent_bytes BIGINT NOT NULL DEFAULT 0;
