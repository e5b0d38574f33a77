#!/usr/bin/env bash
# authd benchmark suite with side-by-side references (see bench/README.md).
#
#   bench/run.sh            full run: every figure is the median of REPS=3 runs of 10 s;
#                           raw outputs in bench/results/<UTC stamp>/ (ignored by git: they hold
#                           host details), table in its summary.md, in bench/README.md (between
#                           the results markers) and added to bench/SUMMARY.md
#   bench/run.sh --smoke    every scenario once for ~2 s (outputs in bench/work/smoke-<stamp>/),
#                           exits non-zero if anything failed: a CI check that the harness works
#
# Environment (optional): BENCH_REPS, BENCH_DURATION (s), BENCH_REVOCATIONS, BENCH_PORT_BASE
# (default 18080: authd A, +1 authd B, +10 floor server, +20 DRF peer), BENCH_DB (authd_bench),
# BENCH_DRF_DB (authd_bench_drf), BENCH_NOTE (free text for the report, e.g. "machine shared"),
# BENCH_SKIP_BUILD=1 (use the existing target/release/authd), BENCH_SKIP_DRF=1.
# Needs: PostgreSQL on 127.0.0.1:5432 (user postgres, trust), wrk, pgbench, psql, python3,
# openssl, curl, ss; network access to crates.io and PyPI on the first run (peer builds).
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MODE=full
for arg in "$@"; do
  case $arg in
    --smoke) MODE=smoke ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$HERE/work
if [ "$MODE" = smoke ]; then
  REPS=${BENCH_REPS:-1}; D=${BENCH_DURATION:-2}; REVOKES=${BENCH_REVOCATIONS:-10}
  ARGON_N=5; ACCOUNT_N=200; ACCOUNT_LOGINS=10; OUT=$WORK/smoke-$STAMP
else
  REPS=${BENCH_REPS:-3}; D=${BENCH_DURATION:-10}; REVOKES=${BENCH_REVOCATIONS:-120}
  ARGON_N=30; ACCOUNT_N=1000; ACCOUNT_LOGINS=20; OUT=$HERE/results/$STAMP
fi
REFRESH_CONNS="16 64"; ME_CONNS=32; LOGIN_CONNS=16
PORT_BASE=${BENCH_PORT_BASE:-18080}
A_PORT=$PORT_BASE; B_PORT=$((PORT_BASE + 1)); HELLO_PORT=$((PORT_BASE + 10)); DRF_PORT=$((PORT_BASE + 20))
A=http://127.0.0.1:$A_PORT; B=http://127.0.0.1:$B_PORT; HELLO=http://127.0.0.1:$HELLO_PORT
DRF=http://127.0.0.1:$DRF_PORT
DB=${BENCH_DB:-authd_bench}; DRF_DB=${BENCH_DRF_DB:-authd_bench_drf}
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
PASSWORD='Bench-Passw0rd-xq7v'          # not on the common-password list
USERS="bench-0@bench.test,bench-1@bench.test,bench-2@bench.test,bench-3@bench.test"
LOGIN_EMAIL=bench-login@bench.test; REVOKE_EMAIL=bench-revoke@bench.test
IDLE_TTL_SECS=604800                     # authd's default AUTHD_REFRESH_IDLE_TTL (7d), bound as $3
ACCESS_TTL_SECS=900                      # authd's default AUTHD_ACCESS_TTL (15m), bound as $4
TOOLS=$HERE/tools/bench.py
KEYS=$WORK/keys
PEER_TARGET=$WORK/target
mkdir -p "$WORK" "$OUT"/{wrk,cpu,pgbench,argon2,logs,pools}
POOLS=$OUT/pools                         # refresh tokens: deleted at the end (not results)
for v in $(compgen -e | grep '^AUTHD_' || true); do unset "$v"; done

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
die() { log "FAILED: $*"; exit 1; }
param() { echo "$1=$2" >> "$OUT/params.txt"; }

# ---------------------------------------------------------------------------------------------
# Every process we start is recorded here and stopped on exit, failure or Ctrl-C.
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$POOLS" "$OUT"/tmp.*
  [ $rc -eq 0 ] || log "exit status $rc; partial outputs in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'log "error: line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM
stop() {  # stop one process we started (graceful, then KILL)
  local p=$1
  kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

wait_http() {  # url expected-status pid
  for _ in $(seq 300); do
    kill -0 "$3" 2>/dev/null || die "process $3 for $1 exited (see $OUT/logs/)"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.2
  done
  die "$1 did not answer $2 within 60 s"
}

port_free() { ! ss -Htln "( sport = :$1 )" | grep -q .; }

# ---------------------------------------------------------------------------------------------
# Preflight
command -v wrk >/dev/null || die "wrk missing: apt-get install -y wrk"
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1 || true)
[ -x "$PGBENCH" ] || die "pgbench missing: apt-get install -y postgresql-contrib"
for t in psql python3 openssl curl ss taskset; do command -v $t >/dev/null || die "$t missing"; done
psql -d postgres -XtAqc 'SELECT 1' >/dev/null 2>&1 || die "PostgreSQL not reachable on 127.0.0.1:5432"
for p in $A_PORT $B_PORT $HELLO_PORT $DRF_PORT; do port_free $p || die "port $p busy (set BENCH_PORT_BASE)"; done
log "mode=$MODE reps=$REPS duration=${D}s out=$OUT"

# ---------------------------------------------------------------------------------------------
# Build: authd (release) and the floor server + argon2 timer (pinned by bench/peers/rust/Cargo.lock)
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "cargo build --release (authd)"
  (cd "$ROOT" && cargo build --release --quiet) > "$OUT/logs/build-authd.log" 2>&1 \
    || { tail -20 "$OUT/logs/build-authd.log"; die "authd build failed"; }
fi
AUTHD=$ROOT/target/release/authd
[ -x "$AUTHD" ] || die "$AUTHD missing"
log "cargo build --release (bench/peers/rust: hello floor server, argon2b)"
(cd "$HERE/peers/rust" && cargo build --release --quiet --target-dir "$PEER_TARGET") \
  > "$OUT/logs/build-peers.log" 2>&1 || { tail -20 "$OUT/logs/build-peers.log"; die "peer build failed"; }
HELLO_BIN=$PEER_TARGET/release/hello; ARGON_BIN=$PEER_TARGET/release/argon2b

# ---------------------------------------------------------------------------------------------
# Environment record
COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null | wc -l)
CPU_MODEL=$(lscpu | awk -F': *' '/^Model name/ && !n++ {print $2}')
MEM_TOTAL=$(free -h | awk '/^Mem:/{print $2}')
{
  param STAMP "$STAMP"; param MODE "$MODE"; param COMMIT "$COMMIT"; param DIRTY "$DIRTY"
  param REPS "$REPS"; param DURATION "$D"; param NPROC "$(nproc)"
  param REFRESH_CONNS "$REFRESH_CONNS"; param ME_CONNS "$ME_CONNS"; param LOGIN_CONNS "$LOGIN_CONNS"
  param MACHINE "$(nproc) vCPU $CPU_MODEL, $MEM_TOTAL RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), $(psql -d postgres -XtAqc 'SHOW server_version' | cut -d' ' -f1) PostgreSQL, load generator + servers + Postgres on the same cores"
  param LOAD_START "$(cut -d' ' -f1-3 /proc/loadavg)"
  param NOTE "${BENCH_NOTE:-}"
}
{ set +e
  echo "# date"; date -u -Is
  echo "# git"; git -C "$ROOT" log -1 --format='%H %s' 2>/dev/null; git -C "$ROOT" status --short 2>/dev/null
  echo "# nproc"; nproc
  echo "# lscpu"; lscpu
  echo "# free -h"; free -h
  echo "# uname"; uname -a
  echo "# loadavg"; cat /proc/loadavg
  echo "# postgres"; psql -d postgres -XtAqc 'SELECT version()'
  psql -d postgres -XtAqc "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('shared_buffers','synchronous_commit','fsync','wal_sync_method','max_connections','max_wal_size')"
  echo "# tools"; { wrk -v 2>&1 || true; } | awk 'NR==1'; "$PGBENCH" --version; rustc -V; cargo -V; python3 -V
  echo "# top processes by CPU at start"; ps -eo pid,pcpu,rss,comm --sort=-pcpu | awk 'NR<=8'
  set -e; } > "$OUT/env.txt" 2>&1

# ---------------------------------------------------------------------------------------------
# Keys shared by authd and the floor server, so that both verify the very same access token.
rm -rf "$KEYS"; mkdir -p "$KEYS"
openssl genpkey -algorithm ed25519 -out "$KEYS/ed_priv.pem" 2>/dev/null
openssl pkey -in "$KEYS/ed_priv.pem" -pubout -out "$KEYS/ed_pub.pem"

# ---------------------------------------------------------------------------------------------
# Argon2 ceiling first, on a quiet machine: single verify time at m=19456,t=2,p=1, pinned to core 0
log "argon2id verify time (argon2b, $ARGON_N hash+verify per run)"
for r in $(seq "$REPS"); do taskset -c 0 "$ARGON_BIN" 19456 2 1 "$ARGON_N" > "$OUT/argon2/single-r$r.txt"; done
{ echo "# two processes at once, one per core (info: memory-bandwidth contention)"
  taskset -c 0 "$ARGON_BIN" 19456 2 1 "$ARGON_N" | tail -1 > "$OUT/argon2/tmp.pair0" &
  taskset -c 1 "$ARGON_BIN" 19456 2 1 "$ARGON_N" | tail -1; wait; cat "$OUT/argon2/tmp.pair0"; } > "$OUT/argon2/pair.txt"
rm -f "$OUT/argon2/tmp.pair0"

# ---------------------------------------------------------------------------------------------
# authd on a fresh database
log "fresh database $DB"
psql -d postgres -XqAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null

start_authd() {  # name port -> sets LAST_PID
  (cd "$WORK" && exec env DATABASE_URL="$DATABASE_URL" AUTHD_BIND="127.0.0.1:$2" \
      AUTHD_RATE_LIMIT=off AUTHD_LOG_FORMAT=json RUST_LOG=warn \
      AUTHD_ISSUER=https://auth.example.test AUTHD_AUDIENCE=api \
      AUTHD_SIGNING_KEY_FILE="$KEYS/ed_priv.pem" "$AUTHD" serve) > "$OUT/logs/authd-$1.log" 2>&1 &
  LAST_PID=$!; PIDS+=("$LAST_PID")
  wait_http "http://127.0.0.1:$2/readyz" 200 "$LAST_PID"
}
mem() { python3 "$TOOLS" mem "$1"; }               # "VmRSS_kB VmHWM_kB"
reset_peak() { echo 5 > "/proc/$1/clear_refs"; }   # VmHWM := VmRSS
memrec() { echo "$1=$2" >> "$OUT/memory.txt"; }

start_authd a "$A_PORT"; APID=$LAST_PID
sleep 2
read -r rss _ < <(mem "$APID"); memrec authd_idle_rss_kB "$rss"
python3 "$TOOLS" memdetail "$APID" > "$OUT/memory-detail.txt"
log "authd A up (pid $APID), idle RSS $((rss / 1024)) MiB"
# Instance B shares the database. It does the logins that mint token pools (so A's memory
# under the refresh and /auth/me loads is not inflated by argon2 work it was not asked to do
# during them), and it is the revoking instance of scenario 4.
start_authd b "$B_PORT"; BPID=$LAST_PID

register() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/auth/register" \
    -H 'Content-Type: application/json' -d "{\"email\":\"$1\",\"password\":\"$PASSWORD\"}")
  [ "$code" = 201 ] || die "register $1: HTTP $code"
}
log "seeding users (through B)"
for u in ${USERS//,/ } $LOGIN_EMAIL $REVOKE_EMAIL; do register "$u"; done

# ---------------------------------------------------------------------------------------------
# Runners
cpusnap() { python3 "$TOOLS" cpusnap "$@"; }
wrk_run() {  # tag lua url conns threads [cpusnap args...]; env passed through to the Lua script
  local tag=$1 lua=$2 url=$3 c=$4 t=$5; shift 5
  [ $# -gt 0 ] && cpusnap "$@" > "$OUT/cpu/$tag.json"
  NTHREADS=$t wrk -t"$t" -c"$c" -d"${D}s" --latency --timeout 10s -s "$HERE/wrk/$lua" "$url" \
    > "$OUT/wrk/$tag.txt" 2>&1 || echo "WRK_EXIT=$?" >> "$OUT/wrk/$tag.txt"
  [ $# -gt 0 ] && cpusnap "$@" >> "$OUT/cpu/$tag.json"
  log "  $tag: $(awk '/^Requests\/sec/{print $2" req/s"}' "$OUT/wrk/$tag.txt") p99 $(awk '/^ +99%/{print $2}' "$OUT/wrk/$tag.txt") $(grep -E '^LUA|Non-2xx|Socket errors' "$OUT/wrk/$tag.txt" | tr '\n' ' ')"
}
db_quiesce() {
  psql -d "$DB" -XqAt -c "VACUUM ANALYZE users, sessions, refresh_tokens" -c CHECKPOINT >/dev/null
}
RUN_IDX=0
pgbench_run() {  # clients tag
  local c=$1 tag=$2 base d
  RUN_IDX=$((RUN_IDX + 1)); base=$((RUN_IDX * 100000000))
  psql -d "$DB" -XqAt -v ON_ERROR_STOP=1 -v base=$base -v nc="$c" -f "$HERE/pgbench/seed.sql" >/dev/null
  db_quiesce
  d=$(mktemp -d -p "$OUT" tmp.XXXX)
  (cd "$d" && "$PGBENCH" -n -T "$D" -c "$c" -j 2 -M prepared -D base=$base -D nc="$c" -D i=-1 \
      -D ttl=$IDLE_TTL_SECS -D access_ttl=$ACCESS_TTL_SECS -l --sampling-rate=0.2 -f "$OUT/pgbench/rotate.sql" "$DB") \
    > "$OUT/pgbench/$tag.txt" 2>&1 || echo "PGBENCH_EXIT=$?" >> "$OUT/pgbench/$tag.txt"
  python3 "$TOOLS" pct "$d"/pgbench_log.* >> "$OUT/pgbench/$tag.txt"
  rm -rf "$d"
  log "  $tag: $(grep -E '^tps' "$OUT/pgbench/$tag.txt" | cut -d' ' -f1-3) $(grep -o 'p99_ms=[0-9.]*' "$OUT/pgbench/$tag.txt") $(grep -E 'failed transactions|aborted|PGBENCH_EXIT' "$OUT/pgbench/$tag.txt" | awk 'NR<=2' | tr '\n' ' ')"
}
pool_size() { local p=$((2 * $1)); [ $p -lt 64 ] && p=64; echo $p; }

# ---------------------------------------------------------------------------------------------
# 1. Refresh: authd vs pgbench running authd's rotate statement, same clients, interleaved
python3 "$TOOLS" gen-rotate "$ROOT/src/db/sql/rotate.sql" "$HERE/pgbench/rotate.head.sql" \
  "$OUT/pgbench/rotate.sql" || die "cannot build the pgbench script from src/db/sql/rotate.sql"
log "minting refresh-token pools (logins through B)"
for c in $REFRESH_CONNS; do
  files=(); for r in $(seq "$REPS"); do files+=("$POOLS/authd-c$c-r$r.txt"); done
  python3 "$TOOLS" pool --base "$B" --body "{\"email\":\"{email}\",\"password\":\"$PASSWORD\"}" \
    --emails "$USERS" --per-file "$(pool_size "$c")" --files "${files[@]}" >> "$OUT/run.log" || die "pool"
done
reset_peak "$APID"
log "1. refresh: authd vs pgbench rotate"
for r in $(seq "$REPS"); do
  for c in $REFRESH_CONNS; do
    pgbench_run "$c" "rotate-c$c-r$r"
    db_quiesce
    TOKENS_FILE=$POOLS/authd-c$c-r$r.txt REFRESH_MODE=cookie REFRESH_COOKIE=authd_refresh \
      wrk_run "authd-refresh-c$c-r$r" refresh.lua "$A" "$c" 2 --pid "$APID" --db "$DB"
  done
done
read -r _ hwm < <(mem "$APID"); memrec authd_peak_refresh_kB "$hwm"

# ---------------------------------------------------------------------------------------------
# 2. GET /auth/me vs the floor server verifying the same token with the same key
log "2. /auth/me: authd vs floor server (same EdDSA token)"
python3 "$TOOLS" pool --base "$B" --body "{\"email\":\"{email}\",\"password\":\"$PASSWORD\"}" \
  --emails "$USERS" --per-file 1 --files "$POOLS/me-unused.txt" --access-out "$POOLS/me-access.txt" \
  >> "$OUT/run.log" || die "access token"
(exec "$HELLO_BIN" "127.0.0.1:$HELLO_PORT" "$KEYS") > "$OUT/logs/hello.log" 2>&1 &
HPID=$!; PIDS+=("$HPID")
wait_http "$HELLO/me" 200 "$HPID"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$POOLS/me-access.txt")" "$HELLO/me-jwt")
[ "$code" = 200 ] || die "the floor server rejects authd's access token (HTTP $code)"
sleep 1
read -r rss _ < <(mem "$HPID"); memrec hello_idle_rss_kB "$rss"
reset_peak "$APID"
for r in $(seq "$REPS"); do
  ACCESS_FILE=$POOLS/me-access.txt ME_PATH=/auth/me \
    wrk_run "authd-me-c$ME_CONNS-r$r" me.lua "$A" "$ME_CONNS" 2 --pid "$APID" --db "$DB"
  ACCESS_FILE=$POOLS/me-access.txt ME_PATH=/me-jwt \
    wrk_run "hello-mejwt-c$ME_CONNS-r$r" me.lua "$HELLO" "$ME_CONNS" 2 --pid "$HPID"
done
read -r _ hwm < <(mem "$APID"); memrec authd_peak_me_kB "$hwm"
read -r _ hwm < <(mem "$HPID"); memrec hello_peak_me_kB "$hwm"
stop "$HPID"
python3 "$TOOLS" memdetail "$APID" >> "$OUT/memory-detail.txt"

# Statements and round trips per request, counted in pg_stat_database and on A's pool sockets.
log "protocol accounting (sequential requests; waits for Postgres statistics flushes)"
python3 "$TOOLS" account --base "$A" --mint "$B" --pid "$APID" --db "$DB" --email "${USERS%%,*}" \
  --password "$PASSWORD" --n "$ACCOUNT_N" --logins "$ACCOUNT_LOGINS" > "$OUT/accounting.json" \
  || die "accounting"

# ---------------------------------------------------------------------------------------------
# 3. Login throughput, then /auth/me during a login storm (two wrk processes at once)
log "3. login, and /auth/me during a login storm"
reset_peak "$APID"
LOGIN_BODY="{\"email\":\"$LOGIN_EMAIL\",\"password\":\"$PASSWORD\"}"
for r in $(seq "$REPS"); do
  LOGIN_BODY=$LOGIN_BODY wrk_run "authd-login-c$LOGIN_CONNS-r$r" login.lua "$A" "$LOGIN_CONNS" 1 \
    --pid "$APID" --db "$DB"
done
for r in $(seq "$REPS"); do
  NTHREADS=1 LOGIN_BODY=$LOGIN_BODY wrk -t1 -c"$LOGIN_CONNS" -d"$((D + 1))s" --latency --timeout 10s \
    -s "$HERE/wrk/login.lua" "$A" > "$OUT/wrk/storm-login-c$LOGIN_CONNS-r$r.txt" 2>&1 &
  WPID=$!; PIDS+=("$WPID")
  sleep 0.5   # the storm (D+1 s) is on before the /auth/me load (D s) starts and after it ends
  ACCESS_FILE=$POOLS/me-access.txt ME_PATH=/auth/me \
    wrk_run "storm-me-c$ME_CONNS-r$r" me.lua "$A" "$ME_CONNS" 2
  wait "$WPID" || echo "WRK_EXIT=$?" >> "$OUT/wrk/storm-login-c$LOGIN_CONNS-r$r.txt"
  log "  storm-login-r$r: $(awk '/^Requests\/sec/{print $2" req/s"}' "$OUT/wrk/storm-login-c$LOGIN_CONNS-r$r.txt")"
done
read -r _ hwm < <(mem "$APID"); memrec authd_peak_login_kB "$hwm"
python3 "$TOOLS" memdetail "$APID" >> "$OUT/memory-detail.txt"

# ---------------------------------------------------------------------------------------------
# 4. Revocation visibility: revoke through B, poll A
log "4. revocation visibility between two instances ($REVOKES revocations)"
python3 "$TOOLS" revocation --a "$A" --b "$B" --email "$REVOKE_EMAIL" --password "$PASSWORD" \
  --n "$REVOKES" --poll-ms 1 > "$OUT/revocation.json" || die "revocation scenario"
stop "$BPID"
sleep 2
read -r rss _ < <(mem "$APID"); memrec authd_final_rss_kB "$rss"

# ---------------------------------------------------------------------------------------------
# Peer: DRF + simplejwt (bench/peers/drf-simplejwt, settings from the earlier baseline)
if [ "${BENCH_SKIP_DRF:-0}" != 1 ]; then
  log "peer: DRF + simplejwt"
  VENV=$WORK/drf-venv
  if [ ! -x "$VENV/bin/gunicorn" ]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$HERE/peers/drf-simplejwt/requirements.lock" \
      > "$OUT/logs/drf-pip.log" 2>&1 || die "pip install for the DRF peer (see logs/drf-pip.log)"
  fi
  psql -d postgres -XqAt -c "DROP DATABASE IF EXISTS $DRF_DB WITH (FORCE)" -c "CREATE DATABASE $DRF_DB" >/dev/null
  DRF_DIR=$HERE/peers/drf-simplejwt
  (cd "$DRF_DIR" && PEER_DB=$DRF_DB PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" manage.py migrate -v 0 \
    && PEER_DB=$DRF_DB PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" manage.py shell -c \
      "from django.contrib.auth import get_user_model; get_user_model().objects.create_user('bench', 'bench@example.test', 'bench-password-123')") \
    > "$OUT/logs/drf-setup.log" 2>&1 || die "DRF peer setup (see logs/drf-setup.log)"
  (cd "$DRF_DIR" && PEER_DB=$DRF_DB PYTHONDONTWRITEBYTECODE=1 exec "$VENV/bin/gunicorn" authpeer.wsgi:application \
    --bind "127.0.0.1:$DRF_PORT" --workers 4 --worker-class gthread --threads 2 \
    --backlog 2048 --keep-alive 75 --log-level warning) > "$OUT/logs/drf.log" 2>&1 &
  GPID=$!; PIDS+=("$GPID")
  wait_http "$DRF/api/me/" 401 "$GPID"
  DRF_BODY='{"username":"bench","password":"bench-password-123"}'
  for c in $REFRESH_CONNS; do
    files=(); for r in $(seq "$REPS"); do files+=("$POOLS/drf-c$c-r$r.txt"); done
    python3 "$TOOLS" pool --base "$DRF" --login-path /api/token/ --body "$DRF_BODY" \
      --refresh json:refresh --access json:access --per-file "$(pool_size "$c")" --files "${files[@]}" \
      --access-out "$POOLS/drf-access.txt" >> "$OUT/run.log" || die "DRF pool"
  done
  for r in $(seq "$REPS"); do
    for c in $REFRESH_CONNS; do
      TOKENS_FILE=$POOLS/drf-c$c-r$r.txt REFRESH_PATH=/api/token/refresh/ REFRESH_MODE=json REFRESH_FIELD=refresh \
        wrk_run "drf-refresh-c$c-r$r" refresh.lua "$DRF" "$c" 2 --pid "$GPID" --children --db "$DRF_DB"
    done
  done
  python3 "$TOOLS" pool --base "$DRF" --login-path /api/token/ --body "$DRF_BODY" --refresh json:refresh \
    --access json:access --per-file 1 --files "$POOLS/drf-unused.txt" --access-out "$POOLS/drf-access.txt" \
    >> "$OUT/run.log" || die "DRF access token"
  for r in $(seq "$REPS"); do
    ACCESS_FILE=$POOLS/drf-access.txt ME_PATH=/api/me/ \
      wrk_run "drf-me-c$ME_CONNS-r$r" me.lua "$DRF" "$ME_CONNS" 2 --pid "$GPID" --children --db "$DRF_DB"
    ACCESS_FILE=$POOLS/drf-access.txt ME_PATH=/api/me-db/ \
      wrk_run "drf-medb-c$ME_CONNS-r$r" me.lua "$DRF" "$ME_CONNS" 2 --pid "$GPID" --children --db "$DRF_DB"
  done
  stop "$GPID"
fi

stop "$APID"
param LOAD_END "$(cut -d' ' -f1-3 /proc/loadavg)"
ps -eo pid,pcpu,rss,comm --sort=-pcpu | awk 'NR<=8' > "$OUT/logs/top-at-end.txt"

# ---------------------------------------------------------------------------------------------
# Report
log "report"
rm -rf "$POOLS"
if [ "$MODE" = full ]; then
  python3 "$TOOLS" report "$OUT" --readme "$HERE/README.md" --rel "$HERE" > /dev/null && ok=0 || ok=$?
else
  python3 "$TOOLS" report "$OUT" --rel "$HERE" > /dev/null && ok=0 || ok=$?
fi
cat "$OUT/summary.md"
if [ "$MODE" = full ]; then
  python3 "$TOOLS" keep "$HERE/SUMMARY.md" "Run \`$STAMP\`" "$OUT/summary.md" || die "keep summary"
fi
[ "$ok" = 0 ] || die "some runs were invalid (see summary above)"
log "done: $OUT/summary.md"
