"""The composition root in-process: ready, serve, stop in two steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path

import pytest

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


async def until_refused(port: int) -> None:
    """Return once TCP connections to ``127.0.0.1:port`` are refused (bounded poll)."""
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return
            except ConnectionResetError:
                pass  # in the backlog as the listener closed: ask again
            else:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            await asyncio.sleep(0.01)


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
    await until_refused(switch_config.sip_port)  # step 1: no new TCP connections...
    assert not task.done()  # ...while the transaction drains, and UDP is still served
    udp_client.send(options(port=udp_client.port), switch_config.sip_port)
    assert status_of(await udp_client.recv()) == 200
    server.handle_exit(signal.SIGTERM)  # step 2 at once
    assert await asyncio.wait_for(task, 2) == 0


async def test_data_dir_gets_the_certificate(switch_config: SwitchConfig, tmp_path: Path) -> None:
    server, task = await started(switch_config)
    server.handle_exit(signal.SIGINT)
    assert await asyncio.wait_for(task, 10) == 0
    assert (switch_config.data_dir / "tls" / "cert.pem").is_file()


def bind_both(port: int) -> None:
    """Bind UDP and TCP ``127.0.0.1:port`` (raises OSError while the switch holds them)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_failed_start_exits_1_and_closes_what_it_opened(
    switch_config: SwitchConfig, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(switch_config.config_dir)
    server = Server(settings, switch_config.data_dir)
    with socket.socket() as taken:  # the admin API's port, held by another program
        taken.bind((settings.admin.host, settings.admin.port))
        taken.listen()
        with caplog.at_level(logging.ERROR, logger="switch.app"):
            assert await asyncio.wait_for(server.serve(), 10) == 1
    assert "admin.listen_failed" in [r.getMessage() for r in caplog.records]
    assert not server.ready.is_set()
    assert server.b2bua is not None
    assert server.b2bua.closing.is_set()  # hung up (no calls) and its timer stopped
    bind_both(switch_config.sip_port)  # the SIP listeners are closed again
    bind_both(switch_config.tls_port)


async def test_a_sip_port_in_use_exits_1_and_closes_what_it_opened(
    switch_config: SwitchConfig, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(load_settings(switch_config.config_dir), switch_config.data_dir)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", switch_config.sip_port))
        with caplog.at_level(logging.ERROR, logger="switch.app"):
            assert await asyncio.wait_for(server.serve(), 10) == 1
    assert "listen.failed" in [r.getMessage() for r in caplog.records]
    assert server.b2bua is not None
    assert server.b2bua.closing.is_set()
