#!/usr/bin/env bash
# Runs every test of authd: unit tests and the HTTP integration tests (each test gets its own
# fresh database on the local Postgres, postgres://postgres@127.0.0.1:5432 by default; set
# AUTHD_TEST_DATABASE_SERVER to use another server).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test --all-targets --locked
