#!/usr/bin/env bash
# Runs every test of authd:
#   1. cargo test: unit tests and the HTTP integration tests of authd and crates/authd-verifier (each test gets its own fresh
#      database on the local Postgres, postgres://postgres@127.0.0.1:5432 by default; set
#      AUTHD_TEST_DATABASE_SERVER to use another server);
#   2. schemathesis against a live server: /openapi.json matches reality (no 5xx, no schema or
#      status-code violations);
#   3. the Node verifier (clients/node, node --test) against real authd instances;
#   4. the browser tests: the JS client and the demo in Chromium against a real authd (one of
#      them calls the Node verifier's example API, so its npm ci comes first).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test --workspace --all-targets --locked

echo "== OpenAPI conformance (schemathesis)"
cargo build --locked --bin authd
bash tests/openapi/schemathesis.sh

echo "== Node verifier tests (clients/node: @authd/verifier and its example API against real authd instances)"
(cd clients/node && npm ci --no-audit --no-fund && npm test)

echo "== browser tests (tests/browser: the JS client and the demo in Chromium against a real authd)"
chromium_bin="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "error: $chromium_bin is missing; the browser tests need Debian's chromium (apt-get install -y chromium)" >&2
  exit 1
fi
(cd tests/browser && npm ci --no-audit --no-fund && npm test)
