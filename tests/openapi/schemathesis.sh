#!/usr/bin/env bash
# Property-based check that /openapi.json matches reality: schemathesis generates requests from
# the document against a live authd (debug build, fresh database, rate limits off) and fails on
# any 5xx, undocumented status code, wrong content type or response that violates its schema.
# Needs: target/debug/authd (cargo build), Postgres on 127.0.0.1:5432, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-25}
VENV=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
BIN=target/debug/authd
[ -x "$BIN" ] || cargo build --quiet

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "== installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

DB="authd_schemathesis_$$"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" AUTHD_BIND="127.0.0.1:$PORT" \
  AUTHD_RATE_LIMIT=off AUTHD_LOG_FORMAT=json RUST_LOG=warn \
  AUTHD_INTROSPECTION_SECRET=schemathesis-introspection-secret-0123456789
INTROSPECTION_SECRET=$AUTHD_INTROSPECTION_SECRET
LOG=$(mktemp)
# Mail (registration, forgot password, codes) goes to a throwaway outbox, never into the repo.
export AUTHD_EMAIL_OUTBOX
AUTHD_EMAIL_OUTBOX=$(mktemp -d)
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$LOG" "$AUTHD_EMAIL_OUTBOX"
}
trap cleanup EXIT

AUTHD_PASSWORD='schemathesis admin passphrase' "$BIN" user add --email admin@schemathesis.test --admin >/dev/null
"$BIN" serve >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
login() {
  curl -sf -X POST "http://127.0.0.1:$PORT/auth/login" -H 'content-type: application/json' \
    -d '{"email":"admin@schemathesis.test","password":"schemathesis admin passphrase"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
TOKEN=$(login)

run() {
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$EXAMPLES" --phases examples,coverage,fuzzing --generation-deterministic \
    -H "Authorization: Bearer $TOKEN" "$@"
}
# Operations that can end the admin's own session (logout with a Bearer, revoke all of mine,
# and the revoking ones, which schemathesis feeds ids it saw in earlier responses, the admin's
# own session and user id included) run after everything else, each with a fresh login, so
# every operation is exercised with a valid token.
SELF_REVOKING=(logout revoke_many revoke_one revoke_session revoke_user_sessions)
excluded=(--exclude-operation-id introspect)
for op in "${SELF_REVOKING[@]}"; do excluded+=(--exclude-operation-id "$op"); done
echo "== schemathesis: $EXAMPLES examples per operation against http://127.0.0.1:$PORT"
set +e
run "${excluded[@]}"
status=$?
# Introspection authenticates the resource server by the client secret, not a user's token.
echo "== schemathesis: introspect, with the client secret"
TOKEN=$INTROSPECTION_SECRET run --include-operation-id introspect
status=$(( status | $? ))
for op in "${SELF_REVOKING[@]}"; do
  echo "== schemathesis: $op (can revoke the caller's own session), with a fresh token"
  TOKEN=$(login) || { echo "login as the admin failed"; status=1; break; }
  run --include-operation-id "$op"
  status=$(( status | $? ))
done
set -e
if [ $status -ne 0 ]; then
  echo "== authd log (errors):"; grep -E '"level":"(ERROR|WARN)"' "$LOG" | tail -20 || true
fi
if grep -q '"level":"ERROR"' "$LOG"; then
  echo "authd logged errors during the run"; grep '"level":"ERROR"' "$LOG" | tail -5; status=1
fi
exit $status
