-- The audit log (audit crate, versions 1000-1999). Node hashes are stored so that appends and
-- proofs read O(log n) rows; see audit/README.md.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    frontier BLOB NOT NULL
);
INSERT INTO audit_head (id, tree_size, frontier) VALUES (1, 0, x'');

CREATE TABLE audit_event (
    idx BIGINT PRIMARY KEY,
    recorded_at BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    terminal_id TEXT,
    municipality_code TEXT,
    session_id TEXT,
    issuance_id TEXT,
    resident_pseudonym TEXT,
    reason TEXT,
    canonical BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX audit_event_time ON audit_event (recorded_at);

CREATE TABLE audit_node (
    lvl BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (lvl, idx)
);

CREATE TABLE audit_checkpoint (
    tree_size BIGINT PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note TEXT NOT NULL,
    signed_at BIGINT NOT NULL
);

CREATE TABLE audit_anomaly (
    anomaly_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    opened_event_index BIGINT NOT NULL,
    terminal_id TEXT,
    municipality_code TEXT,
    issuance_id TEXT,
    certificate_type TEXT,
    resolution TEXT,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolved_event_index BIGINT
);
CREATE INDEX audit_anomaly_open ON audit_anomaly (resolved_at);
