-- Rotation rule 1 in one statement (see src/db/sessions.rs `rotate`); also run by bench/run.sh.
-- $1 presented token hash, $2 successor hash, $3 idle TTL (s), $4 access TTL (s).
WITH consumed AS (
    UPDATE refresh_tokens t SET used_at = now()
    FROM sessions s, users u
    WHERE t.token_hash = $1 AND t.used_at IS NULL
      AND s.id = t.session_id AND s.revoked_at IS NULL
      AND s.expires_at > now() AND s.absolute_expires_at > now()
      AND u.id = s.user_id AND NOT u.disabled
    RETURNING t.session_id, t.generation
 ), touched AS (
    UPDATE sessions s
    SET last_used_at = now(),
        expires_at = LEAST(now() + make_interval(secs => $3), s.absolute_expires_at),
        access_expires_at = GREATEST(s.access_expires_at,
            LEAST(now() + make_interval(secs => $4), s.absolute_expires_at))
    FROM consumed c
    WHERE s.id = c.session_id AND s.revoked_at IS NULL
    RETURNING s.id, s.user_id, s.expires_at, s.absolute_expires_at
 ), successor AS (
    INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, generation)
    SELECT $2, t.id, $1, c.generation + 1 FROM touched t JOIN consumed c ON c.session_id = t.id
 )
 SELECT t.id AS session_id,
        floor(extract(epoch FROM t.expires_at - now()))::int8 AS max_age_secs,
        floor(extract(epoch FROM t.absolute_expires_at))::int8 AS absolute_expires_unix,
        u.id, u.email, u.email_verified, u.roles, u.disabled, u.created_at
 FROM touched t JOIN users u ON u.id = t.user_id
