-- Change notifications, so every authd instance updates its in-memory state at once, whatever
-- made the change (HTTP API, CLI, a manual UPDATE).

-- A session was revoked: payload is its id.
CREATE FUNCTION authd_notify_session_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_revoked', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_revoked_notify
    AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION authd_notify_session_revoked();

-- Signing keys changed (rotation): instances reload their key set.
CREATE FUNCTION authd_notify_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_keys', '');
    RETURN NULL;
END $$;

CREATE TRIGGER signing_keys_notify
    AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT
    EXECUTE FUNCTION authd_notify_keys();

-- A user changed (disabled, roles, password, email): payload is the user id.
CREATE FUNCTION authd_notify_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_users', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER users_changed_notify
    AFTER UPDATE ON users
    FOR EACH ROW
    EXECUTE FUNCTION authd_notify_user_changed();

-- Cleanup scans for sessions past their idle expiry.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
