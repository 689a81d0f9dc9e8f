"""An aiosmtpd SMTP server for keypost's tests: records every accepted message with its arrival time, and
answers as the test says. Usage: recording_sink.py HOST PORT DIR VENDOR.

DIR/mode (re-read on every RCPT) says how to answer:
  accept        every recipient is accepted (also when the file is missing)
  defer         every RCPT gets 451 (a soft, retryable refusal), counted in DIR/deferred.log
  refuse-buyers every recipient but VENDOR gets 550 (a hard refusal), counted in DIR/refused.log
Each accepted message is written atomically to DIR/messages/NNNNNN.eml (the bytes as received), and a line
"NNNNNN TIME RCPT,..." appended to DIR/arrivals.log, TIME being time.time() when DATA ended.
"""
import asyncio
import os
import sys
import time

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, directory, vendor):
        self.dir = directory
        self.vendor = vendor.lower()
        self.count = 0
        os.makedirs(os.path.join(directory, "messages"), exist_ok=True)

    def mode(self):
        try:
            with open(os.path.join(self.dir, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "accept"

    def note(self, name, address):
        with open(os.path.join(self.dir, name), "a") as f:
            f.write(address + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        mode = self.mode()
        if mode == "defer":
            self.note("deferred.log", address)
            return "451 4.3.0 Try again later (test sink)"
        if mode == "refuse-buyers" and address.lower() != self.vendor:
            self.note("refused.log", address)
            return "550 5.1.1 No such user here (test sink)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        self.count += 1
        name = "%06d" % self.count
        final = os.path.join(self.dir, "messages", name + ".eml")
        with open(final + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(final + ".tmp", final)
        with open(os.path.join(self.dir, "arrivals.log"), "a") as f:
            f.write("%s %.6f %s\n" % (name, arrived, ",".join(envelope.rcpt_tos)))
        return "250 Message accepted"


async def main(host, port, directory, vendor):
    recorder = Recorder(directory, vendor)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(recorder, hostname="sink.test"), host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
