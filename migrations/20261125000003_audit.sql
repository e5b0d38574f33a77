-- Audit trail: who did what to which account, from where. Kept AUTHD_AUDIT_RETENTION.
CREATE TABLE auth_events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    -- login_succeeded, login_failed, logout, user_registered, refresh_token_reused,
    -- session_revoked, sessions_revoked, password_changed, user_disabled, user_enabled, roles_changed
    kind       text NOT NULL,
    -- the account the event is about (NULL: a failed login for an unknown email)
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    -- the session concerned; no FK, sessions are cleaned up long before events
    session_id uuid,
    -- who did it: the user themselves, an admin, NULL for the system
    actor_id   uuid,
    ip         text,
    user_agent text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX auth_events_user_idx ON auth_events (user_id, id DESC);
CREATE INDEX auth_events_at_idx ON auth_events (at);
