-- The object name of each committed part's manifest, recorded in the same transaction
-- that commits the part: the manifest that counts is the one whose chunks were referenced,
-- even if a concurrent commit of the same part wrote another object.
ALTER TABLE snapshot_parts ADD COLUMN manifest_name TEXT;
