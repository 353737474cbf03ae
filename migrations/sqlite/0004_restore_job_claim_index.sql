-- The worker claims the oldest job waiting for preparation; this partial index lets that
-- read one row however many jobs are waiting, while it holds the write lock.
CREATE INDEX restore_jobs_waiting ON restore_jobs(created, id)
    WHERE status = 'IN_PROGRESS' AND delivery_status IN ('NOT_STARTED', 'IN_PROGRESS');
