"""The stack on real sockets (127.0.0.1): transports, Via stamping, stateless answers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switch.sip.endpoint import Endpoint
from switch.sip.message import Headers, Request
from switch.sip.uri import parse_uri
from tests.adapter.conftest import TIMEOUT, StackUnderTest, UdpClient, make_stack
from tests.sip_support import free_port, header, options, status_of


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One SIP message from a stream (Content-Length framing)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = int(header(head, "Content-Length") or header(head, "l") or 0)
    body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT) if length else b""
    return head + body


class Stream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = int(writer.get_extra_info("sockname")[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def connect(port: int, tls: ssl.SSLContext | None = None) -> Stream:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="pbx.test" if tls else None
    )
    return Stream(reader, writer)


@pytest.fixture
async def tcp(sut: StackUnderTest) -> AsyncIterator[Stream]:
    stream = await connect(sut.tcp_port)
    yield stream
    await stream.close()


def own(data: bytes, port: int) -> bytes:
    return data.replace(b":5099;", f":{port};".encode())


# -- UDP ---------------------------------------------------------------------------


async def test_udp_options_gets_200(sut: StackUnderTest, udp_client: UdpClient) -> None:
    udp_client.send(own(options(), udp_client.port), sut.udp_port)
    answer = await udp_client.recv()
    assert status_of(answer) == 200
    assert header(answer, "Allow") == "OPTIONS, ACK, CANCEL, BYE"
    assert header(answer, "Server") == "Aiguilleur/test"


async def test_rport_and_received_route_the_response(
    sut: StackUnderTest, udp_client: UdpClient
) -> None:
    """RFC 3581: the sent-by (192.0.2.1:9) is wrong; rport sends the answer back to us."""
    udp_client.send(options(via_host="192.0.2.1", port=9), sut.udp_port)
    answer = await udp_client.recv()
    via = header(answer, "Via") or ""
    assert f";rport={udp_client.port}" in via
    assert ";received=127.0.0.1" in via


async def test_crlf_datagrams_are_ignored(sut: StackUnderTest, udp_client: UdpClient) -> None:
    udp_client.send(b"\r\n\r\n", sut.udp_port)
    await udp_client.nothing()


async def test_malformed_request_gets_400_with_reason(
    sut: StackUnderTest, udp_client: UdpClient
) -> None:
    bad = own(options(), udp_client.port).replace(b"CSeq: ", b"CSeq: x")
    udp_client.send(bad, sut.udp_port)
    answer = await udp_client.recv()
    assert status_of(answer) == 400
    assert b"CSeq" in answer.split(b"\r\n", 1)[0]  # the reason names the problem


async def test_garbage_is_dropped_and_the_stack_goes_on(
    sut: StackUnderTest, udp_client: UdpClient
) -> None:
    rng = random.Random(3261)
    for _ in range(300):
        udp_client.send(rng.randbytes(rng.randint(1, 400)), sut.udp_port)
    udp_client.send(b"SIP/2.0 200 OK\r\n\r\n", sut.udp_port)  # a stray bad response
    udp_client.send(own(options(call_id="after-garbage"), udp_client.port), sut.udp_port)
    while True:  # random bytes may, rarely, make a respondable request
        answer = await udp_client.recv()
        if header(answer, "Call-ID") == "after-garbage":
            break
    assert status_of(answer) == 200


async def test_oversized_datagram_gets_513(tmp_path: Path, udp_client: UdpClient) -> None:
    sut = await make_stack(tmp_path, max_message_size=1500)
    try:
        big = own(options(extra=f"X-Pad: {'a' * 2000}\r\n"), udp_client.port)
        udp_client.send(big, sut.udp_port)
        answer = await udp_client.recv()
        assert status_of(answer) == 513
    finally:
        await sut.stack.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "check"),
    [
        (options(method="FROB"), 405, ("Allow", "OPTIONS, ACK, CANCEL, BYE")),
        (options(max_forwards=0), 483, None),
        (options(extra="Require: foo, 100rel\r\n"), 420, ("Unsupported", "foo, 100rel")),
        (options(method="INVITE"), 501, None),
    ],
    ids=["405", "483", "420", "501"],
)
async def test_stateless_answers(
    sut: StackUnderTest,
    udp_client: UdpClient,
    request_bytes: bytes,
    status: int,
    check: tuple[str, str] | None,
) -> None:
    udp_client.send(own(request_bytes, udp_client.port), sut.udp_port)
    answer = await udp_client.recv()
    assert status_of(answer) == status
    if check is not None:
        assert header(answer, check[0]) == check[1]
    assert ";tag=" in (header(answer, "To") or "")


async def test_ack_gets_no_answer(sut: StackUnderTest, udp_client: UdpClient) -> None:
    udp_client.send(own(options(method="ACK"), udp_client.port), sut.udp_port)
    await udp_client.nothing()


# -- TCP and TLS ----------------------------------------------------------------------


async def test_tcp_options_gets_200_on_the_same_connection(
    sut: StackUnderTest, tcp: Stream
) -> None:
    tcp.writer.write(options("TCP", port=tcp.port))
    assert status_of(await read_message(tcp.reader)) == 200


async def test_tcp_framing_across_writes_and_pipelined(sut: StackUnderTest, tcp: Stream) -> None:
    first, second = options("TCP", call_id="one"), options("TCP", call_id="two")
    data = first + second
    tcp.writer.write(data[:17])
    await tcp.writer.drain()
    await asyncio.sleep(0.01)  # a real split on the wire: two reads server-side
    tcp.writer.write(data[17:])
    answers = [await read_message(tcp.reader), await read_message(tcp.reader)]
    assert [header(a, "Call-ID") for a in answers] == ["one", "two"]


async def test_crlf_ping_gets_pong_over_tcp(sut: StackUnderTest, tcp: Stream) -> None:
    """RFC 5626 §3.5.1: a double CRLF is answered with a single CRLF."""
    tcp.writer.write(b"\r\n\r\n")
    assert await asyncio.wait_for(tcp.reader.readexactly(2), TIMEOUT) == b"\r\n"
    tcp.writer.write(options("TCP"))  # and the connection still carries SIP
    assert status_of(await read_message(tcp.reader)) == 200


async def test_tls_options_and_ping(sut: StackUnderTest) -> None:
    stream = await connect(sut.tls_port, sut.client_ssl())  # verifies the generated cert
    try:
        stream.writer.write(options("TLS", port=stream.port))
        assert status_of(await read_message(stream.reader)) == 200
        stream.writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(stream.reader.readexactly(2), TIMEOUT) == b"\r\n"
    finally:
        await stream.close()


async def test_stream_without_content_length_is_closed(sut: StackUnderTest, tcp: Stream) -> None:
    tcp.writer.write(options("TCP").replace(b"Content-Length: 0\r\n", b""))
    assert await asyncio.wait_for(tcp.reader.read(), TIMEOUT) == b""  # closed, no answer


async def test_oversized_stream_message_gets_513_then_close(
    sut: StackUnderTest, tcp: Stream
) -> None:
    tcp.writer.write(options("TCP").replace(b"Content-Length: 0", b"Content-Length: 900000"))
    answer = await read_message(tcp.reader)
    assert status_of(answer) == 513
    assert await asyncio.wait_for(tcp.reader.read(), TIMEOUT) == b""


async def test_connection_limit_per_host(tmp_path: Path) -> None:
    sut = await make_stack(tmp_path, max_connections_per_host=2)
    streams = [await connect(sut.tcp_port) for _ in range(3)]
    try:
        # The third connection is accepted by the kernel, then closed at once.
        assert await asyncio.wait_for(streams[2].reader.read(), TIMEOUT) == b""
        streams[0].writer.write(options("TCP"))
        assert status_of(await read_message(streams[0].reader)) == 200
    finally:
        for stream in streams:
            await stream.close()
        await sut.stack.close()


# -- requests sent by the stack -------------------------------------------------------------


def outgoing(dest_port: int, *, transport: str = "UDP", pad: int = 0) -> Request:
    headers = Headers(
        [
            ("Via", f"SIP/2.0/{transport} 127.0.0.1:5060;branch=z9hG4bK-out{random.random()}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:switch@pbx.test>;tag=s1"),
            ("To", f"<sip:peer@127.0.0.1:{dest_port}>"),
            ("Call-ID", f"out-{random.random()}"),
            ("CSeq", "1 OPTIONS"),
        ]
    )
    if pad:
        headers.add("X-Pad", "p" * pad)
    return Request("OPTIONS", parse_uri(f"sip:peer@127.0.0.1:{dest_port}"), headers)


class Peer:
    """A TCP server on a port that also has a UDP socket: where did a request go?"""

    def __init__(self) -> None:
        self.accepted: list[Stream] = []
        self.arrived: asyncio.Queue[tuple[Stream, bytes]] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = Stream(reader, writer)
        self.accepted.append(stream)
        try:
            while True:
                self.arrived.put_nowait((stream, await reader.readuntil(b"\r\n\r\n")))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, int, UdpClient]]:
    port = free_port()
    p = Peer()
    server = await asyncio.start_server(p._serve, "127.0.0.1", port)
    loop = asyncio.get_running_loop()
    udp_transport, udp = await loop.create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.1", port)
    )
    yield p, port, udp
    udp_transport.close()
    for stream in p.accepted:
        await stream.close()
    server.close()
    await server.wait_closed()


async def test_small_request_goes_over_udp(
    sut: StackUnderTest, peer: tuple[Peer, int, UdpClient]
) -> None:
    _, port, udp = peer
    sut.stack.send_request(outgoing(port), Endpoint("UDP", "127.0.0.1", port))
    assert (await udp.recv()).startswith(b"OPTIONS ")


async def test_request_over_1300_bytes_switches_to_tcp(
    sut: StackUnderTest, peer: tuple[Peer, int, UdpClient]
) -> None:
    """RFC 3261 §18.1.1: larger than 1300 bytes (MTU unknown: 1500 - 200) → TCP, Via too."""
    p, port, udp = peer
    sut.stack.send_request(outgoing(port, pad=1400), Endpoint("UDP", "127.0.0.1", port))
    _, head = await asyncio.wait_for(p.arrived.get(), TIMEOUT)
    assert head.startswith(b"OPTIONS ")
    assert (header(head, "Via") or "").startswith("SIP/2.0/TCP ")
    await udp.nothing(0.1)


async def test_outgoing_connection_is_reused(
    sut: StackUnderTest, peer: tuple[Peer, int, UdpClient]
) -> None:
    p, port, _ = peer
    for _ in range(3):
        sut.stack.send_request(outgoing(port, transport="TCP"), Endpoint("TCP", "127.0.0.1", port))
    streams = {id((await asyncio.wait_for(p.arrived.get(), TIMEOUT))[0]) for _ in range(3)}
    assert len(streams) == 1
    assert len(p.accepted) == 1


async def test_request_back_to_a_client_uses_its_connection(
    sut: StackUnderTest, tcp: Stream
) -> None:
    """A peer that connected to us gets our requests on that connection (it listens nowhere)."""
    tcp.writer.write(options("TCP", port=tcp.port))
    assert status_of(await read_message(tcp.reader)) == 200
    sut.stack.send_request(
        outgoing(tcp.port, transport="TCP"), Endpoint("TCP", "127.0.0.1", tcp.port)
    )
    assert (await read_message(tcp.reader)).startswith(b"OPTIONS sip:peer@")
    assert sut.stack.transport.connection_count() == 1


# -- stopping ------------------------------------------------------------------------------


async def test_graceful_stop_in_two_steps(
    sut: StackUnderTest, udp_client: UdpClient, tcp: Stream
) -> None:
    await sut.stack.stop_accepting()
    # Step 1: no new connections...
    with pytest.raises(ConnectionRefusedError):
        await connect(sut.tcp_port)
    # ...but UDP and open connections keep being served.
    tcp.writer.write(options("TCP"))
    assert status_of(await read_message(tcp.reader)) == 200
    udp_client.send(own(options(), udp_client.port), sut.udp_port)
    assert status_of(await udp_client.recv()) == 200
    # Step 2: everything closes; the ports are free again.
    await sut.stack.close()
    assert await asyncio.wait_for(tcp.reader.read(), TIMEOUT) == b""
    udp_client.send(own(options(), udp_client.port), sut.udp_port)
    await udp_client.nothing(0.2)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", sut.udp_port)
    )
    transport.close()


async def test_connect_failure_becomes_a_transport_error_event(sut: StackUnderTest) -> None:
    """RFC 3261 §17.1.4: the transport's failure reaches the client transaction."""
    from switch.sip.events import TransportErrorOccurred

    events: list[object] = []
    arrived = asyncio.Event()

    def on_event(event: object) -> None:
        events.append(event)
        arrived.set()

    sut.stack.on_event = on_event
    port = free_port()  # nothing listens there
    key = sut.stack.send_request(
        outgoing(port, transport="TCP"), Endpoint("TCP", "127.0.0.1", port)
    )
    await asyncio.wait_for(arrived.wait(), TIMEOUT)
    assert any(isinstance(e, TransportErrorOccurred) and e.key == key for e in events), events
    assert sut.stack.stats["transport_errors"] == 1


async def test_udp_request_claiming_tcp_is_answered_over_udp(
    sut: StackUnderTest, udp_client: UdpClient
) -> None:
    udp_client.send(options("TCP", port=udp_client.port), sut.udp_port)
    assert status_of(await udp_client.recv()) == 200
    assert sut.stack.transport.connection_count() == 0


async def test_outgoing_tls_connection_is_opened_and_reused(
    sut: StackUnderTest, tmp_path: Path
) -> None:
    from switch.tls import ensure_self_signed, server_context

    cert, key = ensure_self_signed(tmp_path / "peer", "peer.test")
    p = Peer()
    server = await asyncio.start_server(p._serve, "127.0.0.1", 0, ssl=server_context(cert, key))
    port = int(server.sockets[0].getsockname()[1])
    try:
        for _ in range(2):
            sut.stack.send_request(
                outgoing(port, transport="TLS"), Endpoint("TLS", "127.0.0.1", port)
            )
        for _ in range(2):
            _, head = await asyncio.wait_for(p.arrived.get(), TIMEOUT)
            assert head.startswith(b"OPTIONS ")
        assert len(p.accepted) == 1
    finally:
        for stream in p.accepted:
            await stream.close()
        server.close()
        await server.wait_closed()
