#!/usr/bin/env python3
"""Run requests one after another on one HTTP/3 connection with aioquic and
report, as JSON, each response and every STOP_SENDING / RESET_STREAM frame the
server sent. Transport-level frames are what this script is for: h3 client
libraries hide them.

usage: aioquic_streams.py HOST PORT STEP...

A STEP is one of
  get:PATH          a GET whose HEADERS frame carries the end of the stream
  open-post:PATH    a POST that sends HEADERS and some DATA but never ends its body

Output (stdout): {"responses": [{"step", "stream", "status", "headers"}...],
                  "stop_sending": [{"stream", "code"}...],
                  "reset_stream": [{"stream", "code"}...]}

Exit codes: 0 done, 1 a request failed, 2 aioquic is not installed (prints SKIP).
"""

import asyncio
import json
import ssl
import sys

try:
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StopSendingReceived, StreamReset
except ImportError as e:  # the Rust test decides whether this is a skip or a failure
    print(f"SKIP: aioquic is not importable ({e}); pip install aioquic", file=sys.stderr)
    sys.exit(2)


class Recorder(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.heads = {}
        self.stops = []
        self.resets = []

    def quic_event_received(self, event):
        # Recorded before h3 sees them: h3 does not surface either frame.
        if isinstance(event, StopSendingReceived):
            self.stops.append({"stream": event.stream_id, "code": event.error_code})
        elif isinstance(event, StreamReset):
            self.resets.append({"stream": event.stream_id, "code": event.error_code})
        for ev in self.h3.handle_event(event):
            if isinstance(ev, HeadersReceived) and ev.stream_id not in self.heads:
                self.heads[ev.stream_id] = ev.headers
            if isinstance(ev, (HeadersReceived, DataReceived)) and ev.stream_ended:
                waiter = self.waiters.pop(ev.stream_id, None)
                if waiter and not waiter.done():
                    waiter.set_result(self.heads.get(ev.stream_id, []))

    async def request(self, authority, method, path, end_stream, body=None):
        stream_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(
            stream_id,
            [
                (b":method", method),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"aioquic-edgeward-test"),
            ],
            end_stream=end_stream,
        )
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=False)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.transmit()
        headers = await asyncio.wait_for(waiter, timeout=10)
        return stream_id, {k.decode(): v.decode() for k, v in headers}


async def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    host, port, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    # The gateway under test serves a certificate made for the test.
    config.verify_mode = ssl.CERT_NONE
    config.server_name = "localhost"
    authority = f"localhost:{port}"
    responses = []
    async with connect(host, port, configuration=config, create_protocol=Recorder) as client:
        for step in steps:
            kind, path = step.split(":", 1)
            if kind == "get":
                sid, headers = await client.request(authority, b"GET", path, True)
            elif kind == "open-post":
                sid, headers = await client.request(
                    authority, b"POST", path, False, body=b"more to come"
                )
            else:
                print(f"unknown step {step!r}", file=sys.stderr)
                sys.exit(1)
            responses.append(
                {
                    "step": step,
                    "stream": sid,
                    "status": int(headers.get(":status", "0")),
                    "headers": headers,
                }
            )
        print(
            json.dumps(
                {
                    "responses": responses,
                    "stop_sending": client.stops,
                    "reset_stream": client.resets,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
