"""The composition root in-process: ready, serve, stop in two steps."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from switch.app import Server
from switch.settings import load_settings
from switch.sip.endpoint import Endpoint
from switch.sip.message import Headers, Request
from switch.sip.uri import parse_uri
from tests.adapter.conftest import UdpClient
from tests.sip_support import SwitchConfig, free_port, options, status_of


async def started(config: SwitchConfig, grace: float = 5.0) -> tuple[Server, asyncio.Task[int]]:
    server = Server(load_settings(config.config_dir), config.data_dir, grace=grace)
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 10)
    return server, task


async def test_serves_then_stops_with_status_0(
    switch_config: SwitchConfig, udp_client: UdpClient
) -> None:
    server, task = await started(switch_config)
    udp_client.send(options(port=udp_client.port), switch_config.sip_port)
    assert status_of(await udp_client.recv()) == 200
    server.handle_exit(signal.SIGTERM)
    assert await asyncio.wait_for(task, 10) == 0


def black_hole_options(port: int) -> Request:
    return Request(
        "OPTIONS",
        parse_uri(f"sip:nobody@127.0.0.1:{port}"),
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060"),
                ("Max-Forwards", "70"),
                ("From", "<sip:switch@pbx.test>;tag=1"),
                ("To", f"<sip:nobody@127.0.0.1:{port}>"),
                ("Call-ID", "black-hole"),
                ("CSeq", "1 OPTIONS"),
            ]
        ),
    )


async def test_first_signal_waits_for_transactions_second_forces(
    switch_config: SwitchConfig, udp_client: UdpClient
) -> None:
    server, task = await started(switch_config, grace=30.0)
    assert server.stack is not None
    # A client transaction towards a peer that never answers keeps the stack busy (Timer F).
    port = free_port()
    server.stack.send_request(black_hole_options(port), Endpoint("UDP", "127.0.0.1", port))
    assert server.stack.busy()
    server.handle_exit(signal.SIGTERM)
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done  # step 1: still draining, and still serving UDP
    udp_client.send(options(port=udp_client.port), switch_config.sip_port)
    assert status_of(await udp_client.recv()) == 200
    server.handle_exit(signal.SIGTERM)  # step 2 at once
    assert await asyncio.wait_for(task, 2) == 0


async def test_data_dir_gets_the_certificate(switch_config: SwitchConfig, tmp_path: Path) -> None:
    server, task = await started(switch_config)
    server.handle_exit(signal.SIGINT)
    assert await asyncio.wait_for(task, 10) == 0
    assert (switch_config.data_dir / "tls" / "cert.pem").is_file()
