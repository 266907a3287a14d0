-- The change files (異動) `issuer import --changes` has applied, one row per change id,
-- committed in the same transaction as the change itself: re-running a file after a crash
-- skips what is here and applies the rest. `digest` (SHA-256 of the change line) tells a
-- re-run of the same change from a different change that reuses its id.
CREATE TABLE applied_changes (
    change_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
