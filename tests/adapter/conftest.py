"""An in-process stack on 127.0.0.1 and small asyncio clients to talk to it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switch.sip.core import Capabilities, StatelessCore
from switch.sip.transaction import TimerConfig
from switch.sip.transaction_layer import TransactionLayer
from switch.stack import Stack, new_branch
from switch.tls import client_context, ensure_self_signed, server_context
from switch.transport import ListenAddress, TransportLimits
from tests.sip_support import free_port

TIMEOUT = 2.0


class UdpClient(asyncio.DatagramProtocol):
    """A UDP socket whose datagrams land in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def recv(self) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), TIMEOUT)
        return data

    async def nothing(self, within: float = 0.3) -> None:
        """Assert that nothing arrives within ``within`` seconds."""
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.queue.get(), within)


@pytest.fixture
async def udp_client() -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.1", 0)
    )
    yield protocol
    transport.close()


class StackUnderTest:
    def __init__(self, stack: Stack, cert: Path) -> None:
        self.stack = stack
        self.cert = cert
        self.udp_port = stack.transport.port_of("UDP")
        self.tcp_port = stack.transport.port_of("TCP")
        self.tls_port = stack.transport.port_of("TLS")

    def client_ssl(self) -> ssl.SSLContext:
        """Verifies the stack's generated certificate (it is its own CA)."""
        return client_context(verify=True, ca_file=self.cert)


async def make_stack(tmp_path: Path, **limits: Any) -> StackUnderTest:
    cert, key = ensure_self_signed(tmp_path / "tls", "pbx.test")
    port = free_port()
    stack = Stack(
        StatelessCore(Capabilities(server="Aiguilleur/test")),
        TransactionLayer(config=TimerConfig(), new_branch=new_branch),
        limits=TransportLimits(**limits),
        server_ssl=server_context(cert, key),
        client_ssl=client_context(verify=False),
    )
    await stack.start(
        [
            ListenAddress("UDP", "127.0.0.1", port),
            ListenAddress("TCP", "127.0.0.1", port),
            ListenAddress("TLS", "127.0.0.1", 0),
        ]
    )
    return StackUnderTest(stack, cert)


@pytest.fixture
async def sut(tmp_path: Path) -> AsyncIterator[StackUnderTest]:
    under_test = await make_stack(tmp_path)
    yield under_test
    await under_test.stack.close()
