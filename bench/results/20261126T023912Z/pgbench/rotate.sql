-- The DB reference for POST /auth/refresh: the ONE statement authd's hot path sends
-- (`rotate` in src/db/sessions.rs), run by pgbench -M prepared. bench/run.sh appends the statement,
-- extracted from the source at run time (tools/bench.py gen-rotate), so it cannot drift; the
-- generated script is kept with each run's results as pgbench/rotate.sql.
-- Only the three parameters differ in form: authd binds the SHA-256 of the presented token ($1),
-- of its successor ($2) and the idle TTL in seconds ($3); here the hashes are computed by the
-- server from chain keys, sha256(int8send(k)), which costs microseconds.
-- Chains: client c (0-based) walks keys k = base + c + 1 + nc*i, i = 0, 1, ...; seed.sql creates
-- one live session per client holding the never-used token of key base + c + 1; every statement
-- consumes key k and inserts its successor k + nc into the same session (like a browser
-- refreshing over and over). A token that is not consumable makes the statement return no row,
-- \gset then aborts that client: a clean run (0 failed, none aborted) proves every statement
-- consumed a valid, unused token.
-- Needs: -D base=<offset> -D nc=<clients> -D i=-1 -D ttl=<idle TTL seconds>
\set i :i + 1
\set k :base + :client_id + 1 + :nc * :i
\set k2 :k + :nc
WITH consumed AS (
            UPDATE refresh_tokens t SET used_at = now()
            FROM sessions s, users u
            WHERE t.token_hash = sha256(int8send(:k)) AND t.used_at IS NULL
              AND s.id = t.session_id AND s.revoked_at IS NULL
              AND s.expires_at > now() AND s.absolute_expires_at > now()
              AND u.id = s.user_id AND NOT u.disabled
            RETURNING t.session_id
         ), touched AS (
            UPDATE sessions s
            SET last_used_at = now(),
                expires_at = LEAST(now() + make_interval(secs => :ttl), s.absolute_expires_at)
            FROM consumed c
            WHERE s.id = c.session_id AND s.revoked_at IS NULL
            RETURNING s.id, s.user_id, s.expires_at
         ), successor AS (
            INSERT INTO refresh_tokens (token_hash, session_id, parent_hash)
            SELECT sha256(int8send(:k2)), id, sha256(int8send(:k)) FROM touched
         )
         SELECT t.id AS session_id,
                floor(extract(epoch FROM t.expires_at - now()))::int8 AS max_age_secs,
                u.id, u.email, u.roles, u.disabled, u.created_at
         FROM touched t JOIN users u ON u.id = t.user_id
\gset r_
