-- OpenSession counts a terminal's sessions that are neither closed nor expired, against the
-- per-terminal limit (`max_open_sessions_per_terminal`), and the sweep deletes sessions long
-- expired. Both read by terminal and expiry.
CREATE INDEX sessions_by_terminal ON sessions (terminal_id, expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
