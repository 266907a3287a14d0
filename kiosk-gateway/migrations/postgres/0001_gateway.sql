-- The gateway's own tables. Versions 1-999 belong to the gateway; the audit log's tables come
-- from the audit crate's migrations (1000-1999) in the same database.
CREATE TABLE terminals (
    terminal_id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    store TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'retired')),
    changed_at BIGINT NOT NULL
);

CREATE TABLE municipalities (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    suspended BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE card_bindings (
    cert_issuer TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    municipality_code TEXT NOT NULL,
    resident_ref TEXT NOT NULL,
    PRIMARY KEY (cert_issuer, cert_serial)
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    challenge BYTEA NOT NULL,
    challenge_expires_at BIGINT NOT NULL,
    challenge_used BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    municipality_code TEXT,
    resident_ref TEXT,
    -- Subject refs the menu offered (space-separated): what Issue may ask about and what
    -- a released page may name.
    allowed_subjects TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE issuances (
    issuance_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    client_request_id TEXT NOT NULL,
    request_digest BYTEA NOT NULL,
    municipality_code TEXT NOT NULL,
    resident_ref TEXT NOT NULL,
    state TEXT NOT NULL,
    total_fee_yen BIGINT NOT NULL,
    collected_yen BIGINT,
    refund_due_yen BIGINT,
    print_deadline BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (terminal_id, client_request_id)
);
CREATE INDEX issuances_open_deadline ON issuances (state, print_deadline);

CREATE TABLE documents (
    serial TEXT PRIMARY KEY,
    issuance_id TEXT NOT NULL,
    doc_index BIGINT NOT NULL,
    cert_type TEXT NOT NULL,
    page_count BIGINT NOT NULL,
    fee_yen BIGINT NOT NULL,
    pdf BYTEA NOT NULL,
    pdf_sha256 BYTEA NOT NULL,
    content_digest BYTEA NOT NULL,
    status TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX documents_by_issuance ON documents (issuance_id, doc_index);
