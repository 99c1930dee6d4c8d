"""Load shedding: new calls get 503 + Retry-After while datagrams pile up unread."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from switch.b2bua import OVERLOAD_RETRY_AFTER
from switch.stack import OVERLOAD_BACKLOG
from tests.adapter.raw_ua import running_switch, wait_done
from tests.adapter.test_call_lifecycle import lines, settings

FILLER = b"\r\n" * 500  # a keep-alive the switch reads and drops: 1000 bytes of backlog
FILLERS = 2 * OVERLOAD_BACKLOG // len(FILLER)  # twice the limit in datagram bytes alone


def options(port: int, own: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bK-overload-probe\r\n"
        "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
        f"To: <sip:127.0.0.1:{port}>\r\n"
        "Call-ID: overload-probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_a_call_arriving_ahead_of_a_backlog_is_refused_503_then_calls_pass_again(
    tmp_path: Path,
) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        caller, callee = await lines(port)
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.bind(("127.0.0.1", 0))
        flood.setblocking(False)
        try:
            assert server.b2bua is not None
            assert server.stack is not None
            assert not server.stack.overloaded()
            # The INVITE is sent, then (before the loop runs again: no await in
            # between) the filler queues behind it in the switch's socket: when
            # the switch reads the INVITE, more than the limit waits to be read.
            refused = await caller.call("402")
            for _ in range(FILLERS):
                flood.sendto(FILLER, ("127.0.0.1", port))
            # Queued behind the filler: its answer proves the backlog was read.
            flood.sendto(options(port, flood.getsockname()[1]), ("127.0.0.1", port))
            response = await refused.failed(503)
            assert response.headers.get("Retry-After") == OVERLOAD_RETRY_AFTER
            assert server.b2bua.stats["overload_503"] == 1
            assert callee.incoming == {}  # the callee never rang
            # The backlog read, the next call goes through.
            loop = asyncio.get_running_loop()
            answer = await asyncio.wait_for(loop.sock_recv(flood, 4096), 10)
            assert answer.startswith(b"SIP/2.0 200 ")
            assert not server.stack.overloaded()
            passed = await caller.call("402")
            await passed.answered()
            await passed.bye()
            (incoming,) = await wait_done(callee, 1)
            assert incoming.events == ["ack", "bye"]
            assert server.b2bua.stats["overload_503"] == 1
        finally:
            flood.close()
            caller.close()
            callee.close()
