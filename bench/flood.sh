#!/usr/bin/env bash
# Rate-limit memory under a flood of distinct client addresses: authd (release, limits on,
# AUTHD_TRUST_FORWARDED_FOR=true) receives POST /auth/refresh from a new random IP every request
# for DURATION seconds; RSS and the limiter's key count are sampled every second.
# Usage: bash bench/flood.sh [duration_s=60] [connections=32]
# Raw outputs in bench/results/flood-<stamp>/ (ignored by git); the summary is added to bench/SUMMARY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-60}; CONNS=${2:-32}
OUT=bench/results/flood-$(date -u +%Y%m%dT%H%M%SZ); mkdir -p "$OUT"
[ -x target/release/authd ] || cargo build --release --quiet
DB=authd_flood_$$
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" AUTHD_BIND="127.0.0.1:$PORT" AUTHD_TRUST_FORWARDED_FOR=true \
  AUTHD_LOG_FORMAT=json RUST_LOG=warn target/release/authd serve >"$OUT/authd.log" 2>&1 & PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' /proc/$PID/status; }
keys() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^authd_rate_limit_keys /{print $2}'; }
echo "t_s rss_kib limiter_keys" > "$OUT/samples.txt"
echo "0 $(rss) $(keys)" >> "$OUT/samples.txt"
wrk -t2 -c"$CONNS" -d"${DUR}s" -s bench/wrk/flood.lua "http://127.0.0.1:$PORT" > "$OUT/wrk.txt" &
WRK=$!
for t in $(seq 1 "$DUR"); do sleep 1; echo "$t $(rss) $(keys)" >> "$OUT/samples.txt"; done
wait $WRK
sleep 12; echo "after+12s $(rss) $(keys)" >> "$OUT/samples.txt"
python3 - "$OUT" <<'PY'
import sys, re
out = sys.argv[1]
rows = [l.split() for l in open(f"{out}/samples.txt").read().splitlines()[1:]]
wrk = open(f"{out}/wrk.txt").read()
reqs = re.search(r"(\d+) requests in", wrk).group(1)
rate = re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1)
rss = [int(r[1]) for r in rows]
keys = [int(float(r[2])) for r in rows if r[2] not in ("", "None")]
summary = (f"{reqs} requests from distinct random IPs in the run ({rate}/s); "
           f"RSS start {rss[0]/1024:.1f} MiB, max {max(rss)/1024:.1f} MiB, end {rss[-1]/1024:.1f} MiB; "
           f"limiter keys max {max(keys)} (cap 100,000 per limiter), after 12 s idle {keys[-1]}")
open(f"{out}/summary.txt", "w").write(summary + "\n")
print(summary)
PY
python3 bench/tools/bench.py keep bench/SUMMARY.md \
  "Flood \`${OUT##*/flood-}\` (bench/flood.sh, $DUR s, $CONNS connections)" "$OUT/summary.txt"
