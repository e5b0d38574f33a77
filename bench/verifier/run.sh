#!/usr/bin/env bash
# Builds what bench/verifier/run.mjs measures (authd, the Rust example API and probe, all release;
# the Node package's dependencies) and runs it. See run.mjs for the scenarios.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release --quiet --bin authd --example resource_server
cargo build --release --quiet -p authd-verifier --example verifier_probe
(cd clients/node && npm ci --no-audit --no-fund --silent)
node bench/verifier/run.mjs
