-- Seeds the pgbench reference run inside authd's own database (same tables, indexes, settings):
-- one live session per pgbench client, each holding one never-used refresh token of key
-- base + client + 1 (token_hash = sha256(int8send(key))). psql -v base=<offset> -v nc=<clients>.
INSERT INTO users (id, email, password_hash)
VALUES (gen_random_uuid(), 'pgbench@bench.test', 'not-a-login-user')
ON CONFLICT (email) DO NOTHING;
WITH u AS (SELECT id FROM users WHERE email = 'pgbench@bench.test'),
     g AS (SELECT n, gen_random_uuid() AS sid FROM generate_series(1, :nc) n),
     s AS (
        INSERT INTO sessions (id, user_id, expires_at, absolute_expires_at, user_agent, ip)
        SELECT g.sid, u.id, now() + interval '7 days', now() + interval '30 days',
               'pgbench', '127.0.0.1'
        FROM g, u
        RETURNING id)
INSERT INTO refresh_tokens (token_hash, session_id)
SELECT sha256(int8send((:base + g.n)::int8)), g.sid FROM g;
