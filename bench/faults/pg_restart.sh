#!/usr/bin/env bash
# Stops the real PostgreSQL cluster under load and starts it again, then reports what authd did.
# NOT part of CI: it stops the machine's shared Postgres (run it when nothing else needs it).
# Needs root (pg_ctlcluster), target/release/authd (cargo build --release), python3.
# Usage: bash bench/faults/pg_restart.sh [down_seconds=5] [out_dir=target/faults]
set -euo pipefail
cd "$(dirname "$0")/../.."
DOWN=${1:-5}; OUT=${2:-target/faults}; mkdir -p "$OUT"
VER=$(ls /etc/postgresql | head -n1)
BIN=target/release/authd; [ -x "$BIN" ] || cargo build --release --quiet
DB=authd_faults_$$
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" AUTHD_BIND="127.0.0.1:$PORT" \
  AUTHD_RATE_LIMIT=off AUTHD_LOG_FORMAT=json RUST_LOG=info
cleanup() {
  pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect "$VER" main start
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT
"$BIN" serve >"$OUT/authd.log" 2>&1 & PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

ms() { date +%s%3N; }
T0=$(ms)
python3 bench/faults/load.py 127.0.0.1 "$PORT" 8 $((DOWN + 12)) "$OUT/requests.csv" & LOAD=$!
sleep 4
STOP=$(( $(ms) - T0 )); pg_ctlcluster --skip-systemctl-redirect "$VER" main stop -m fast
sleep "$DOWN"
START=$(( $(ms) - T0 )); pg_ctlcluster --skip-systemctl-redirect "$VER" main start
READY_AT=""
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; then READY_AT=$(( $(ms) - T0 )); break; fi
  sleep 0.05
done
wait $LOAD
kill -0 $PID 2>/dev/null && ALIVE=yes || ALIVE=no

python3 - "$OUT/requests.csv" "$STOP" "$START" "${READY_AT:-never}" "$ALIVE" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1]))]
stop, start, ready, alive = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
# load.py's clock starts ~0.2 s after ours; phases are approximate at the edges.
def phase(t):
    return "before" if t < stop else ("down" if t < start else "after")
by = collections.Counter((phase(int(r[0])), r[1], r[2], r[3]) for r in rows)
print(f"postgres stopped at {stop} ms, started at {start} ms, /readyz 200 again at {ready} ms; authd alive: {alive}")
for k, n in sorted(by.items()):
    print(f"  {k[0]:6} {k[1]:7} {k[2]:>3} {k[3]:22} {n}")
down = [float(r[4]) for r in rows if phase(int(r[0])) == "down"]
if down:
    down.sort()
    print(f"  latency while down: p50 {down[len(down)//2]:.1f} ms, max {down[-1]:.1f} ms over {len(down)} requests")
bad = [r for r in rows if r[2] in ("0",) or r[2].startswith("5") and r[2] != "503"
       or r[3] in ("refresh_token_reused", "refresh_token_invalid", "internal")]
print(f"  violations (hang/timeout, 5xx other than 503, reuse or invalid after recovery): {len(bad)}")
first_ok = min((int(r[0]) for r in rows if phase(int(r[0])) == "after" and r[2] == "200"), default=None)
print(f"  first 200 after restart at {first_ok} ms")
sys.exit(1 if bad or alive != "yes" else 0)
PY
