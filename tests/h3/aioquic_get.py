#!/usr/bin/env python3
"""Fetch a URL through Edgeward over HTTP/3 with aioquic (a third-party client)
and check status, headers and body.

usage: aioquic_get.py HOST PORT PATH [--status N] [--header NAME=VALUE]... [--body-contains TEXT]...

Exit codes: 0 all checks passed, 1 a check failed (details on stderr),
2 aioquic is not installed (prints a SKIP line).
"""

import argparse
import asyncio
import ssl
import sys

try:
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
except ImportError as e:  # the Rust test decides whether this is a skip or a failure
    print(f"SKIP: aioquic is not importable ({e}); pip install aioquic", file=sys.stderr)
    sys.exit(2)


class H3Get(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.results = {}

    def quic_event_received(self, event):
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)):
                res = self.results.setdefault(ev.stream_id, {"headers": [], "body": b""})
                if isinstance(ev, HeadersReceived):
                    res["headers"].extend(ev.headers)
                else:
                    res["body"] += ev.data
                if ev.stream_ended:
                    waiter = self.waiters.pop(ev.stream_id, None)
                    if waiter and not waiter.done():
                        waiter.set_result(res)

    async def get(self, authority, path):
        stream_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"aioquic-edgeward-test"),
            ],
            end_stream=True,
        )
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.transmit()
        return await asyncio.wait_for(waiter, timeout=10)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--body-contains", action="append", default=[])
    args = p.parse_args()

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    # The gateway under test serves a certificate it generated at start.
    config.verify_mode = ssl.CERT_NONE
    config.server_name = "localhost"
    async with connect(args.host, args.port, configuration=config, create_protocol=H3Get) as client:
        res = await client.get(f"localhost:{args.port}", args.path)

    headers = {}
    for k, v in res["headers"]:
        headers.setdefault(k.decode(), v.decode())
    body = res["body"].decode("utf-8", "replace")
    failures = []
    status = int(headers.get(":status", "0"))
    if status != args.status:
        failures.append(f"status {status}, expected {args.status}")
    for h in args.header:
        name, value = h.split("=", 1)
        if headers.get(name.lower()) != value:
            failures.append(f"header {name}: {headers.get(name.lower())!r}, expected {value!r}")
    for text in args.body_contains:
        if text not in body:
            failures.append(f"body lacks {text!r}")
    print(f"status {status}")
    for k, v in sorted(headers.items()):
        print(f"{k}: {v}")
    print()
    print(body)
    if failures:
        print("FAIL: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
