#!/usr/bin/env bash
# CI's short fuzz run, on the stable toolchain only (what CI machines have):
#   1. builds the four cargo-fuzz targets without a sanitizer (stable cannot build ASan's
#      instrumented std; RUSTC_BOOTSTRAP=1 lets stable rustc accept cargo-fuzz's coverage
#      flags) and unoptimized (--dev: a much shorter build; the run is short anyway);
#   2. replays every committed input once: seeds/<target>/ and regressions/<target>/;
#   3. fuzzes each target for FUZZ_SECONDS (default 20) from its seeds and dictionary, new
#      inputs going to a scratch corpus that is thrown away.
# Any panic, abort, timeout (10 s per input) or memory blow-up (2 GiB) fails the script; libFuzzer
# prints the input (base64) and cargo-fuzz the command that reproduces it, and the input is kept
# in fuzz/artifacts/<target>/ (see fuzz/README.md to minimize it and add it to regressions/).
#
# Environment: FUZZ_SECONDS (20), FUZZ_TARGETS (all four), CARGO_TARGET_DIR (default: the
# server's target/, so the host-side build artifacts such as proc macros are shared with it).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
ROOT=$(cd .. && pwd)
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
TARGETS=${FUZZ_TARGETS:-jwt_verify cookie_read headers json_body}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
# No debug info for the fuzz build: about a sixth less build time on a fresh clone. A panic
# still names its file and line; reproduce with full debug info locally (fuzz/README.md).
export CARGO_PROFILE_DEV_DEBUG=0
# The fixtures read the default config, which takes AUTHD_* from the environment: none here.
for v in $(compgen -e | grep '^AUTHD_' || true); do unset "$v"; done
FLAGS=(--dev --sanitizer none --target-dir "${CARGO_TARGET_DIR:-$ROOT/target}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== fuzz: build ($TARGETS)"
cargo +stable fuzz build "${FLAGS[@]}"

# Runs cargo fuzz with its output in a log: on failure the end of it (the crash, its input in
# base64, the command that reproduces it), on success libFuzzer's closing figures.
fuzz() {
  local t=$1 log=$scratch/$1.log
  shift
  if ! cargo +stable fuzz run "${FLAGS[@]}" "$t" "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz $t: FAILED" >&2
    exit 1
  fi
  grep -hE '^(INFO: seed corpus|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "$log" | sed 's/^/  /' || true
}

for t in $TARGETS; do
  committed=("$FUZZ_DIR/seeds/$t")
  [ -d "$FUZZ_DIR/regressions/$t" ] && committed+=("$FUZZ_DIR/regressions/$t")
  echo "== fuzz $t: replay ${committed[*]#"$FUZZ_DIR/"}"
  fuzz "$t" "${committed[@]}" -- -runs=0 -timeout=10

  echo "== fuzz $t: ${SECONDS_PER_TARGET} s from the seeds"
  mkdir -p "$scratch/$t"
  fuzz "$t" "$scratch/$t" "$FUZZ_DIR/seeds/$t" -- \
    -dict="$FUZZ_DIR/dicts/$t.dict" -max_len=16384 -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "== fuzz: no failure in ${TARGETS// /, }"
