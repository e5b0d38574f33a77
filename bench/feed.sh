#!/usr/bin/env bash
# Revocation feed latency (issue 15, bench scenario "feed"): two authd instances (release build)
# on one fresh database; a subscriber reads A's GET /auth/revocations; N sessions are revoked,
# half through A (the subscribed instance) and half through B; the figure is the delay from the
# revoking DELETE's 204 to the session's SET arriving on the subscriber (p50/p99/max per side).
#
#   bench/feed.sh            # N=120 (BENCH_REVOCATIONS), prints the JSON result
#
# Everything listens on 127.0.0.1 and is stopped at the end (trap); the database
# (BENCH_FEED_DB, default authd_bench_feed) is dropped and recreated.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_REVOCATIONS:-120}
DB=${BENCH_FEED_DB:-authd_bench_feed}
PA=${BENCH_PORT_BASE:-18180}
PB=$((PA + 1))
SECRET=bench-resource-secret-0123456789abcdef0123
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ "${BENCH_SKIP_BUILD:-}" = 1 ] || (cd "$ROOT" && cargo build --release --quiet)
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" AUTHD_RATE_LIMIT=off \
  AUTHD_LOG_FORMAT=json RUST_LOG=warn AUTHD_RESOURCE_SECRET=$SECRET AUTHD_EMAIL_OUTBOX=$WORK/outbox \
  AUTHD_MAX_SESSIONS=10000
"$ROOT/target/release/authd" migrate >/dev/null
for port in "$PA" "$PB"; do
  AUTHD_BIND=127.0.0.1:$port "$ROOT/target/release/authd" serve >"$WORK/authd-$port.log" 2>&1 &
  PIDS+=($!)
done
for port in "$PA" "$PB"; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
curl -sf -X POST "http://127.0.0.1:$PB/auth/register" -H 'content-type: application/json' \
  -d '{"email":"feed@bench.test","password":"bench feed passphrase"}' >/dev/null
python3 "$ROOT/bench/tools/bench.py" feed --a "http://127.0.0.1:$PA" --b "http://127.0.0.1:$PB" \
  --secret "$SECRET" --email feed@bench.test --password 'bench feed passphrase' --n "$N"
