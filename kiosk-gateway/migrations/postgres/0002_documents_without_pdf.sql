-- The PDF bytes are kept once, in the issuer's registry (recorded in the transaction that
-- decided them); the gateway keeps each document's SHA-256 and checks a fetched copy against
-- it before an idempotent retry releases anything (`Flow::replay`).
ALTER TABLE documents DROP COLUMN pdf;
