#!/usr/bin/env bash
# Python environments the tests run, with pinned packages from PyPI. Idempotent; prints the venv's
# python.
#   venv.sh [smtp]  target/test-venv with aiosmtpd, for the tests' SMTP server
#                   (tests/support/smtp_sink.py)
#   venv.sh verify  target/verify-venv with examples/verify/requirements.txt (PyJWT,
#                   cryptography), for the README's Python verification snippet
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-smtp}" in
  smtp)
    VENV=${AUTHD_TEST_VENV:-$PWD/target/test-venv}
    ready() { "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; }
    install() { "$VENV/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6' >&2; }
    ;;
  verify)
    VENV=$PWD/target/verify-venv
    REQUIREMENTS=$PWD/examples/verify/requirements.txt
    # Ready once these exact pins are installed (a copy of the file is kept in the venv).
    ready() { cmp -s "$REQUIREMENTS" "$VENV/requirements.txt" && [ -x "$VENV/bin/python" ]; }
    install() {
      "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
      cp "$REQUIREMENTS" "$VENV/requirements.txt"
    }
    ;;
  *)
    echo "usage: $0 [smtp|verify]" >&2
    exit 2
    ;;
esac
if ! ready; then
  mkdir -p "$(dirname "$VENV")"
  # Several test processes may get here at once: one installs, the others wait for it.
  exec 9>"$VENV.lock"
  flock 9
  if ! ready; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
    install
  fi
fi
echo "$VENV/bin/python"
