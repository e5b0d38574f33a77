#!/usr/bin/env bash
# The Python environment the tests' SMTP server (tests/support/smtp_sink.py) runs in: a venv at
# target/test-venv with pinned aiosmtpd from PyPI. Idempotent; prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${AUTHD_TEST_VENV:-$PWD/target/test-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  mkdir -p "$(dirname "$VENV")"
  # Several test processes may get here at once: one installs, the others wait for it.
  exec 9>"$VENV.lock"
  flock 9
  if ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6' >&2
  fi
fi
echo "$VENV/bin/python"
