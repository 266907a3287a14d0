-- What `issuer municipality apply` changed, one row per change, written in the same
-- transaction as the change: who (the operating-system account the command ran under, not a
-- flag), when (UTC unix milliseconds), why (the operator's reason, refused if it holds a run
-- of six or more digits) and what (`change`, e.g. `fee RESIDENT_RECORD from 2027-04-01: 300
-- yen`). `seq` numbers a municipality's changes in order across runs. A table of its own
-- rather than `applied_changes`: those rows are keyed by a change file's id to skip re-runs,
-- these are an append-only history read by `issuer municipality show`.
CREATE TABLE municipality_changes (
    municipality_code TEXT NOT NULL,
    seq BIGINT NOT NULL,
    applied_at BIGINT NOT NULL,
    operator TEXT NOT NULL,
    reason TEXT NOT NULL,
    change TEXT NOT NULL,
    PRIMARY KEY (municipality_code, seq)
);
