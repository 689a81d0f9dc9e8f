#!/usr/bin/env python3
"""Writes an mboxrd file of N messages built from the template fixtures, for `keypost replay` benchmarks.

    python3 benches/make-mbox.py 10000 /tmp/replay-10k.mbox

Every fixture (fixtures/*/*.eml) is used in turn; each copy gets its own Message-ID, and the PayPal plain-text
sale (the most common shape) also its own order id and buyer, so most copies are distinct orders. The file is
large (about 40 MB for 10,000 messages): keep it out of the repository.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAYPAL_SALE = "paypal/sale_plain_text.eml"


def main() -> None:
    count, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
    fixtures = sorted(p for p in (ROOT / "fixtures").glob("*/*.eml"))
    sale = (ROOT / "fixtures" / PAYPAL_SALE).read_bytes()
    with out.open("wb") as mbox:
        for n in range(count):
            # Every other message is a distinct PayPal sale; the rest cycle through all fixtures.
            if n % 2 == 0:
                body = sale.replace(b"5TY12345AB678901C", b"R%016d" % n)
                body = body.replace(b"jane.buyer@example.com", b"buyer%d@example.com" % n)
            else:
                body = fixtures[(n // 2) % len(fixtures)].read_bytes()
            body = re.sub(rb"(?im)^(Message-ID:\s*<)", rb"\g<1>bench-%d-" % n, body, count=1)
            mbox.write(b"From MAILER-DAEMON Mon Nov 30 07:00:00 2026\n")
            for line in body.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n"):
                if re.match(rb"^>*From ", line):
                    line = b">" + line
                mbox.write(line + b"\n")
            mbox.write(b"\n")


if __name__ == "__main__":
    main()
