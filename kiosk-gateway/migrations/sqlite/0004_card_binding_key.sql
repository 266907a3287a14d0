-- Card bindings were keyed by the card CA's name as x509-parser prints it, a text no standard
-- tool reproduces, so a bindings file written from openssl's view of a card never matched.
-- They are keyed by the card certificate's authority key identifier (its keyIdentifier,
-- lowercase hex) and serial now: octet strings that compare exactly. The old rows cannot be
-- rekeyed without their certificates, and every one of them came from a bindings file that
-- is imported again at start, so they are dropped with the table.
--
-- A binding an operator replaced by a renewed certificate (`admin card-binding renew`) is
-- closed, not deleted: `closed_at` (Unix ms) and `renewed_to` (`<issuer_key_id>:<serial>` of
-- the renewal) say when and by what; only open bindings lead a card to a resident.
DROP TABLE card_bindings;
CREATE TABLE card_bindings (
    issuer_key_id TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    municipality_code TEXT NOT NULL,
    resident_ref TEXT NOT NULL,
    closed_at BIGINT,
    renewed_to TEXT,
    PRIMARY KEY (issuer_key_id, cert_serial)
);
CREATE INDEX card_bindings_by_resident ON card_bindings (municipality_code, resident_ref);
