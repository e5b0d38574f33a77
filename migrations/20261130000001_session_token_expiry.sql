-- When the last access token issued for a session expires (LEAST(issue time + the issuing
-- instance's AUTHD_ACCESS_TTL, absolute_expires_at), the latest of all issued). A revoked
-- session's tokens must be denied until then, whatever TTL the instance that denies them has
-- configured, and its row (or a tombstone) must outlive them.
ALTER TABLE sessions ADD COLUMN access_expires_at timestamptz NOT NULL DEFAULT now();
-- Sessions from before this column: their tokens can live at most until the session's end.
UPDATE sessions SET access_expires_at = absolute_expires_at;
