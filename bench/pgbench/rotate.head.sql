-- The DB reference for POST /auth/refresh: the ONE statement authd's hot path sends
-- (`rotate` in src/db/sessions.rs), run by pgbench -M prepared. bench/run.sh appends the statement
-- from src/db/sql/rotate.sql, the very file authd compiles in (tools/bench.py gen-rotate), so it
-- cannot drift; the generated script is kept with each run's raw outputs as pgbench/rotate.sql.
-- Only the four parameters differ in form: authd binds the SHA-256 of the presented token ($1),
-- of its successor ($2), the idle TTL ($3) and the access-token TTL ($4) in seconds; here the
-- hashes are computed by the server from chain keys, sha256(int8send(k)), which costs
-- microseconds.
-- Chains: client c (0-based) walks keys k = base + c + 1 + nc*i, i = 0, 1, ...; seed.sql creates
-- one live session per client holding the never-used token of key base + c + 1; every statement
-- consumes key k and inserts its successor k + nc into the same session (like a browser
-- refreshing over and over). A token that is not consumable makes the statement return no row,
-- \gset then aborts that client: a clean run (0 failed, none aborted) proves every statement
-- consumed a valid, unused token.
-- Needs: -D base=<offset> -D nc=<clients> -D i=-1 -D ttl=<idle TTL seconds>
--        -D access_ttl=<access-token TTL seconds>
\set i :i + 1
\set k :base + :client_id + 1 + :nc * :i
\set k2 :k + :nc
