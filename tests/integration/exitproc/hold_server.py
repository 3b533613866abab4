#!/usr/bin/env python3
"""Two TCP servers for the exit test, in the "internet" namespace:
  HOLD_PORT: accepts connections and holds them open, reading and discarding, until the
             peer closes (the far end of the connection flood); the number of
             connections seen goes to COUNT_FILE once a second.
  SLOW_PORT: answers any request with an HTTP/1.0 200 of 100 MiB sent at about
             1.3 MB/s (64 KiB every 50 ms): a download paced by the server, so that
             few bytes sit in buffers when the proxy dies mid-stream.
usage: hold_server.py ADDR HOLD_PORT SLOW_PORT COUNT_FILE"""
import asyncio
import sys

seen = 0
SIZE = 100 * 1024 * 1024
CHUNK = b"z" * 65536


async def hold(reader, writer):
    global seen
    seen += 1
    try:
        while await reader.read(4096):
            pass
    except ConnectionError:
        pass
    writer.close()


async def slow(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
        sent = 0
        while sent < SIZE:
            writer.write(CHUNK)
            sent += len(CHUNK)
            await writer.drain()
            await asyncio.sleep(0.05)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    writer.close()


async def main():
    addr = sys.argv[1]
    h = await asyncio.start_server(hold, addr, int(sys.argv[2]), backlog=4096)
    s = await asyncio.start_server(slow, addr, int(sys.argv[3]))
    async with h, s:
        while True:
            with open(sys.argv[4], "w") as f:
                f.write(f"{seen}\n")
            await asyncio.sleep(1)


asyncio.run(main())
