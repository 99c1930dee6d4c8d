"""The UDP protocol hands the stack one Endpoint per source address (no socket needed)."""

from __future__ import annotations

from switch import transport
from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError


class _Recorder:
    def __init__(self) -> None:
        self.sources: list[Endpoint] = []

    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        self.sources.append(source)

    def stream_message_received(self, data: bytes, source: Endpoint) -> None:
        raise AssertionError("not a stream")

    def stream_error(self, error: ParseError, source: Endpoint, chunk: bytes) -> None:
        raise AssertionError("not a stream")

    def transport_error(self, dest: Endpoint, error: Exception) -> None:
        raise AssertionError("nothing sent")


def test_sources_are_endpoints_of_the_datagram_address() -> None:
    user = _Recorder()
    protocol = transport._UdpProtocol(user)
    protocol.datagram_received(b"OPTIONS", ("192.0.2.1", 5060))
    protocol.datagram_received(b"OPTIONS", ("192.0.2.1", 5060))
    protocol.datagram_received(b"OPTIONS", ("192.0.2.1", 5062))
    protocol.datagram_received(b"OPTIONS", ("2001:db8::1", 5060, 0, 0))
    protocol.datagram_received(b"\r\n\r\n", ("192.0.2.1", 5060))  # keep-alive: dropped
    assert user.sources == [
        Endpoint("UDP", "192.0.2.1", 5060),
        Endpoint("UDP", "192.0.2.1", 5060),
        Endpoint("UDP", "192.0.2.1", 5062),
        Endpoint("UDP", "2001:db8::1", 5060),
    ]


def test_the_source_memo_is_bounded() -> None:
    user = _Recorder()
    protocol = transport._UdpProtocol(user)
    for port in range(transport._SOURCES_MAX + 10):
        protocol.datagram_received(b"OPTIONS", ("192.0.2.1", port))
    assert len(protocol._sources) <= transport._SOURCES_MAX
    assert user.sources[-1] == Endpoint("UDP", "192.0.2.1", transport._SOURCES_MAX + 9)
