#!/usr/bin/python3
"""relay_rtt: messages per second over one SMTP session when the relay is a round trip away.

    bench/relay_rtt.py --probe build/test/tests/smtp-probe [--rtt-ms 20] [--messages 100]

A loopback proxy delays every chunk by half the round trip in each direction (no tc, no
root), in front of: the test server without PIPELINING, the test server with PIPELINING
(aiosmtpd: no CHUNKING), and a private Postfix smtpd (PIPELINING and CHUNKING, so libESMTP
sends BDAT). One session carries all the messages; the figure is messages / session time and
the round trips per message that implies. Needs root for Postfix (skipped otherwise).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import postfix  # noqa: E402
from smtp_server import SmtpServer  # noqa: E402


class DelayProxy:
    """127.0.0.1:port -> target, each direction delayed by one_way_ms, order kept."""

    def __init__(self, target_port, one_way_ms):
        self.target_port = target_port
        self.delay = one_way_ms / 1000.0
        self.port = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _pipe(self, reader, writer):
        queue = asyncio.Queue()

        async def later():
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(later())
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + self.delay, data or None))
            if not data:
                break
        await task

    async def _client(self, creader, cwriter):
        sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(creader, swriter), self._pipe(sreader, cwriter),
                             return_exceptions=True)

    def stop(self):
        def cancel_all():
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_later(0.05, self.loop.stop)

        self.loop.call_soon_threadsafe(cancel_all)
        self.thread.join(5)


def run_probe(probe, port, n, tmp):
    path = os.path.join(tmp, "batch.jsonl")
    body = "Subject: rtt\r\nMessage-ID: <m%d@rtt.test>\r\n\r\n" + ("x" * 76 + "\r\n") * 26
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"sender": "s@rtt.test", "recipient": "r%d@rtt.test" % i,
                                "data": body % i}) + "\n")
    out = subprocess.run([probe, "--host", "127.0.0.1", "--port", str(port), "--timeout-ms",
                          "20000", path], capture_output=True, text=True, timeout=600)
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    result = [l for l in lines if "result" in l][-1]
    sent = sum(1 for l in lines if l.get("outcome") == "sent")
    return sent, result["elapsed_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("--rtt-ms", type=float, default=20)
    ap.add_argument("--messages", type=int, default=100)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rw-rtt-")
    rows = []
    cases = [("no PIPELINING (aiosmtpd --plain-ehlo)", {"plain_ehlo": True}, False),
             ("PIPELINING (aiosmtpd)", {}, False)]
    if postfix.available():
        cases.append(("PIPELINING + CHUNKING (Postfix smtpd, BDAT)", {}, True))
    for name, kwargs, use_postfix in cases:
        sink = SmtpServer.start(maildir=os.path.join(tmp, "m%d" % len(rows)), **kwargs)
        pf = postfix.Postfix.start(sink.port, extra={"debug_peer_list": ""}) if use_postfix \
            else None
        proxy = DelayProxy(pf.port if pf else sink.port, args.rtt_ms / 2)
        try:
            sent, ms = run_probe(args.probe, proxy.port, args.messages, tmp)
        finally:
            proxy.stop()
            if pf:
                pf.cleanup()
            sink.cleanup()
        rate = sent / (ms / 1000.0)
        rows.append((name, sent, ms, rate, (ms / sent) / args.rtt_ms if sent else 0))
    print("RTT %.0f ms, %d messages, one session" % (args.rtt_ms, args.messages))
    print("| relay | sent | session s | messages/s | round trips per message |")
    print("| --- | --- | --- | --- | --- |")
    for name, sent, ms, rate, rt in rows:
        print("| %s | %d | %.2f | %.1f | %.1f |" % (name, sent, ms / 1000.0, rate, rt))


if __name__ == "__main__":
    main()
