"""A real SMTP server for the tests (aiosmtpd over TCP on 127.0.0.1): every message it accepts
is written to --dir as <n>.eml (atomically: written under a temporary name, then renamed).

    python smtp_sink.py --dir DIR [--port 0] [--fail-first N] [--auth USER:PASS]
                        [--tls starttls|implicit --tls-cert CERT.pem --tls-key KEY.pem]

Prints "ready <port>" on stdout once it listens. Stops when its stdin closes, so it never
outlives the test that started it. --fail-first N answers the first N messages with a
temporary failure (451), as a struggling server does; --auth requires SMTP AUTH (PLAIN/LOGIN);
--tls starttls requires STARTTLS before any mail (RFC 3207), --tls implicit speaks TLS from the
first byte (RFC 8314), both with the given certificate.
"""

import argparse
import itertools
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.fail_left = fail_first
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_left > 0:
                self.fail_left -= 1
                return "451 4.3.0 try again later"
            n = next(self.counter)
        tmp = os.path.join(self.directory, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(b"X-Sink-Rcpt: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, f"{n}.eml"))
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--auth", default=None)
    ap.add_argument("--tls", choices=["starttls", "implicit"], default=None)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode() == user and auth_data.password.decode() == password
            )
            # handled=False: aiosmtpd answers 235 or 535 itself.
            return AuthResult(success=ok, handled=False)

        # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; an implicit-TLS connection
        # is encrypted from the first byte anyway.
        kwargs = dict(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=args.tls == "starttls",
        )
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)

    port = args.port
    if port == 0:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    controller = Controller(
        Sink(args.dir, args.fail_first), hostname="127.0.0.1", port=port, **kwargs
    )
    controller.start()
    print(f"ready {port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
