#!/usr/bin/env python3
"""Times an SMTP server's answer to the end of data: the floor of the window in which a killed client repeats a reply.

    python3 benches/smtp-answer-time.py PORT [COUNT]

Connects to 127.0.0.1:PORT (loopback only), then sends COUNT (default 500) transactions of a 575-byte reply
like the ones keypost sends in the shared harness, one after another on one connection, and prints the median,
90th percentile and mean time from writing the `.` line to reading the server's `250`. The server takes a
message when it reads the `.`, whether or not the client lives to read the answer, so a client that notes a send
only after the answer repeats, per kill at a random moment, about (replies per second) x (this time) replies.
"""
import socket
import statistics
import sys
import time

REPLY = (
    "From: orders@vendor.example\r\nTo: jose@example.org\r\n"
    "Subject: Your SnapTidy Pro 3 license (order KG-18034063)\r\nMessage-ID: <x@vendor.example>\r\n"
    "In-Reply-To: <y@mail.kagi.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\n\r\n"
    + "Thank you for your order. Your licence:\r\nName: Jose Muller\r\nSerial: LXYXF-JYTL4-3ZQLU-M4E4V-IMLBT-M\r\n" * 3
).encode()


def main() -> None:
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lines = conn.makefile("rb")

    def answer() -> bytes:
        while True:
            line = lines.readline()
            if line[3:4] != b"-":
                return line

    def command(text: bytes) -> None:
        conn.sendall(text)
        code = answer()
        if not code.startswith((b"2", b"3")):
            sys.exit(f"server answered {code!r} to {text!r}")

    answer()
    command(b"EHLO timing.example\r\n")
    times = []
    for _ in range(count):
        command(b"MAIL FROM:<orders@vendor.example>\r\n")
        command(b"RCPT TO:<vendor@vendor.example>\r\n")
        command(b"DATA\r\n")
        conn.sendall(REPLY)
        started = time.perf_counter()
        conn.sendall(b".\r\n")
        if not answer().startswith(b"250"):
            sys.exit("the server refused a message")
        times.append(time.perf_counter() - started)
    command(b"QUIT\r\n")
    times.sort()
    ms = [t * 1000 for t in times]
    print(f"{count} messages: median {ms[len(ms) // 2]:.3f} ms, p90 {ms[len(ms) * 9 // 10]:.3f} ms, "
          f"mean {statistics.mean(ms):.3f} ms")


if __name__ == "__main__":
    main()
