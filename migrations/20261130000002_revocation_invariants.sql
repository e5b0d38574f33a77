-- Invariant: an access token of a revoked or deleted session is rejected by every instance
-- within 1 s, for as long as the token could otherwise be valid (until the session's
-- access_expires_at plus the verification leeway), whatever any instance's AUTHD_ACCESS_TTL or
-- AUTHD_CLEANUP_RETENTION, across restarts and listener reconnects.
--
-- For that, every instance must learn, for each such session, WHEN its tokens stop mattering,
-- and the facts must stay in the database until then (a reconnecting listener reloads them):
-- - revocation NOTIFYs carry access_expires_at;
-- - deleting a session row whose tokens may still be alive leaves a tombstone and, if the
--   session was not revoked (so nobody was told yet), NOTIFYs like a revocation.

-- Revocations: 'authd_revoked_until' carries '<session id> <unix seconds of access_expires_at,
-- rounded up>'. 'authd_revoked' keeps its bare '<session id>' payload for instances running
-- older code during a rolling upgrade (a later migration may drop it).
CREATE OR REPLACE FUNCTION authd_notify_session_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_revoked_until',
        NEW.id::text || ' ' || ceil(extract(epoch FROM NEW.access_expires_at))::int8::text);
    PERFORM pg_notify('authd_revoked', NEW.id::text);
    RETURN NULL;
END $$;

-- Sessions deleted while their access tokens may still be alive (account deletion, a manual
-- DELETE or TRUNCATE, anything but cleanup, which waits until they are dead). Kept until
-- access_expires_at has passed (cleanup purges them); read by every reload.
CREATE TABLE session_tombstones (
    session_id        uuid PRIMARY KEY,
    -- no FK: the user is usually being deleted too
    user_id           uuid NOT NULL,
    access_expires_at timestamptz NOT NULL,
    deleted_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_tombstones_access_expires_idx ON session_tombstones (access_expires_at);

-- The minute covers the deny-list's margin after access_expires_at (leeway + clock slack, a few
-- seconds): a row deleted within it still gets its tombstone.
CREATE FUNCTION authd_session_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.access_expires_at > now() - interval '1 minute' THEN
        INSERT INTO session_tombstones (session_id, user_id, access_expires_at)
        VALUES (OLD.id, OLD.user_id, OLD.access_expires_at)
        ON CONFLICT (session_id) DO UPDATE
            SET access_expires_at = GREATEST(session_tombstones.access_expires_at,
                                             EXCLUDED.access_expires_at);
        IF OLD.revoked_at IS NULL THEN
            PERFORM pg_notify('authd_revoked_until',
                OLD.id::text || ' ' || ceil(extract(epoch FROM OLD.access_expires_at))::int8::text);
            PERFORM pg_notify('authd_revoked', OLD.id::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Row triggers fire for rows deleted by ON DELETE CASCADE (deleting a user) too.
CREATE TRIGGER sessions_deleted_tombstone
    AFTER DELETE ON sessions
    FOR EACH ROW
    EXECUTE FUNCTION authd_session_deleted();

-- TRUNCATE fires no row trigger: tombstone every session it is about to remove.
CREATE FUNCTION authd_sessions_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_tombstones (session_id, user_id, access_expires_at)
    SELECT id, user_id, access_expires_at FROM sessions
    WHERE access_expires_at > now() - interval '1 minute'
    ON CONFLICT (session_id) DO UPDATE
        SET access_expires_at = GREATEST(session_tombstones.access_expires_at,
                                         EXCLUDED.access_expires_at);
    PERFORM pg_notify('authd_revoked_until',
                      id::text || ' ' || ceil(extract(epoch FROM access_expires_at))::int8::text),
            pg_notify('authd_revoked', id::text)
    FROM sessions
    WHERE revoked_at IS NULL AND access_expires_at > now() - interval '1 minute';
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_truncated_tombstone
    BEFORE TRUNCATE ON sessions
    FOR EACH STATEMENT
    EXECUTE FUNCTION authd_sessions_truncated();

-- A deleted user leaves every instance's user cache too (UPDATEs already notify).
CREATE FUNCTION authd_notify_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authd_users', OLD.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER users_deleted_notify
    AFTER DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION authd_notify_user_deleted();

-- "Revoked sessions whose tokens may still be alive" (every reload). Partial: refreshes, which
-- move access_expires_at, only touch unrevoked sessions.
CREATE INDEX sessions_revoked_access_expires_idx ON sessions (access_expires_at)
    WHERE revoked_at IS NOT NULL;
