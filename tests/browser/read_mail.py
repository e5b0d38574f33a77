"""Prints, as one JSON array, the messages of the .eml files named on the command line (those
tests/support/smtp_sink.py wrote), parsed by Python's email package: for each, the file, the
envelope recipients, From, To, Subject, and the text/plain and text/html parts (null if absent).
"""

import json
import sys
from email import policy
from email.parser import BytesParser


def part(message, subtype):
    body = message.get_body(preferencelist=(subtype,))
    return body.get_content() if body is not None else None


def main():
    out = []
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            message = BytesParser(policy=policy.default).parse(f)
        out.append(
            {
                "file": path,
                "rcpt": [r for r in str(message["X-Sink-Rcpt"] or "").split(",") if r],
                "from": str(message["From"] or ""),
                "to": str(message["To"] or ""),
                "subject": str(message["Subject"] or ""),
                "text": part(message, "plain"),
                "html": part(message, "html"),
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
