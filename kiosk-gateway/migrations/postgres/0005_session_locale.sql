-- The kiosk's language from OpenSessionRequest.locale (empty: ja-JP): an error on the
-- session lists its LocalizedMessage in this language first (errors.proto).
ALTER TABLE sessions ADD COLUMN locale TEXT NOT NULL DEFAULT '';
