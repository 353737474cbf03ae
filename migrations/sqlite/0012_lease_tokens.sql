-- Fencing tokens and task leases, for several nodes on one metadata store.
--
-- lease_token: counts the claims of a restore job. A claim hands the new value to its
-- holder, and every state change the holder makes is conditional on it, so a node whose
-- lease lapsed and was claimed again writes nothing.
ALTER TABLE restore_jobs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;

-- One row per periodic background task (the retention sweeper, the checkpointer, the agent
-- monitor): the node holding it runs the task until `until`, unless it renews. `token`
-- grows with every grant, so a holder's release names the grant it releases.
CREATE TABLE task_leases (
    task   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token  BIGINT NOT NULL,
    until  BIGINT NOT NULL
);
