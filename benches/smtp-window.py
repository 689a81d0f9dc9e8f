#!/usr/bin/env python3
"""The SMTP server's part of the repeat window during a real drain, from a packet capture.

    tcpdump -i lo -s 0 -w /tmp/smtp.pcap 'tcp port PORT' &   # during a harness drain, then stop it
    python3 benches/smtp-window.py /tmp/smtp.pcap PORT

For every transaction in the capture: the time from the client's segment that ends with the end-of-data line
(`\\r\\n.\\r\\n`) to the server's next segment starting with `250`, on the same connection. The server takes a
message when it reads the `.`, so a client killed inside this time repeats the reply after its restart; with the
client's own part (reading the answer and noting the send) added, replies per second x the mean window is the
expected number of repeats per kill at a random moment (Little's law). Unlike benches/smtp-answer-time.py (one
client, idle server), this sees the server as it is during the drain: sharing the cores with the IMAP server and
the client, and queueing one connection's message behind another's.

Reads pcap files as tcpdump writes them on Linux loopback (Ethernet or "cooked" link layer, IPv4). Pure Python.
"""
import struct
import sys


def segments(path):
    """(time, source port, destination port, payload) for every IPv4 TCP segment with a payload."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit(f"{path}: not a little-endian pcap file (magic {magic:#x})")
    fraction = 1e9 if magic == 0xA1B23C4D else 1e6
    link = struct.unpack("<I", data[20:24])[0]
    skip = {1: 14, 113: 16, 0: 4}.get(link)
    if skip is None:
        sys.exit(f"{path}: link type {link} not handled (capture on lo)")
    at = 24
    while at + 16 <= len(data):
        sec, frac, length, _ = struct.unpack("<IIII", data[at : at + 16])
        packet = data[at + 16 : at + 16 + length]
        at += 16 + length
        ip = packet[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4 :]
        if len(tcp) < 20:
            continue
        source, destination = struct.unpack(">HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            yield sec + frac / fraction, source, destination, payload


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, port = sys.argv[1], int(sys.argv[2])
    end_of_data, windows, truncated = {}, [], 0
    for time, source, destination, payload in segments(path):
        if destination == port:
            if payload.endswith(b"\r\n.\r\n"):
                end_of_data[source] = time
        elif source == port and destination in end_of_data:
            if payload.startswith(b"250"):
                windows.append(time - end_of_data.pop(destination))
            else:
                end_of_data.pop(destination)
    if not windows:
        sys.exit("no end of data answered by 250 in the capture (captured with -s 0, on the server's port?)")
    windows.sort()
    n = len(windows)
    ms = lambda q: f"{1e3 * windows[min(n - 1, int(n * q))]:.3f}"  # noqa: E731
    print(
        f"{n} transactions: . -> 250 mean {1e3 * sum(windows) / n:.3f} ms, median {ms(0.5)}, "
        f"p90 {ms(0.9)}, p99 {ms(0.99)}, max {1e3 * windows[-1]:.3f} ms"
    )


if __name__ == "__main__":
    main()
