#!/usr/bin/python3
"""A TCP relay on 127.0.0.1 that adds a fixed one-way delay to everything the server sends.

Used for the relay-latency case: smtp-sink's own delay options (-w, -W) take whole seconds
only, so a 100 ms reply latency is put in front of it instead. Each chunk the server writes
reaches the client `--delay-ms` after the server wrote it (a delay line, not a queue of
sleeps: chunks written close together arrive close together), so every reply, greeting
included, is late by exactly that much. What the client sends is forwarded at once.

On SIGTERM it writes {"connections": C, "reply_chunks": R, "bytes": B} to --stats and exits.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time


class Stats:
    connections = 0
    reply_chunks = 0
    bytes = 0


async def pump_now(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def pump_delayed(reader, writer, delay):
    queue = asyncio.Queue()

    async def release():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    releaser = asyncio.ensure_future(release())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            Stats.reply_chunks += 1
            Stats.bytes += len(data)
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((time.monotonic() + delay, None))
    await releaser
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--stats", required=True)
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0

    async def handle(creader, cwriter):
        Stats.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", a.target)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump_now(creader, swriter), pump_delayed(sreader, cwriter, delay))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(
        asyncio.start_server(handle, "127.0.0.1", a.listen, backlog=256))

    def stop():
        with open(a.stats, "w") as f:
            json.dump({"connections": Stats.connections, "reply_chunks": Stats.reply_chunks,
                       "bytes": Stats.bytes}, f)
        # connections still open (none after a sweep) are simply dropped
        os._exit(0)

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    loop.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
