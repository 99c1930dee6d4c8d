"""A switch listening on a wildcard address (``0.0.0.0``, ``::``) writes an address
its peers can answer to in Contact and Via: the one its routing table sends their
packets from, never the wildcard (a phone would send its BYE to ``0.0.0.0``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from switch.sip.endpoint import Endpoint
from switch.transport import ListenAddress, Transport
from tests.adapter.raw_ua import running_switch, wait_done
from tests.adapter.test_call_lifecycle import lines, settings


class _Nobody:
    """A transport user that is never called here (nothing is sent to us)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected {name}")


async def test_local_address_of_a_wildcard_listener_is_the_route_source() -> None:
    transport = Transport(_Nobody())
    await transport.start([ListenAddress("UDP", "0.0.0.0", 0), ListenAddress("TCP", "::", 0)])
    try:
        udp, tcp = transport.port_of("UDP"), transport.port_of("TCP")
        # Linux sends loopback traffic from 127.0.0.1, whichever 127/8 address.
        assert transport.local_address("UDP", "127.0.0.5") == ("127.0.0.1", udp)
        assert transport.local_address("udp", "127.0.0.5") == ("127.0.0.1", udp)  # cached
        assert transport.local_address("TCP", "::1") == ("::1", tcp)
        # No peer, or no route to it: loopback of the listener's family.
        assert transport.local_address("UDP") == ("127.0.0.1", udp)
        assert transport.local_address("UDP", "::1") == ("127.0.0.1", udp)
        assert transport.local_address("TLS", "127.0.0.1") is None  # no TLS listener
    finally:
        await transport.close()


async def test_a_specific_listener_is_written_as_it_is() -> None:
    transport = Transport(_Nobody())
    await transport.start([ListenAddress("UDP", "127.0.0.1", 0)])
    try:
        port = transport.port_of("UDP")
        assert transport.local_address("UDP", "::1") == ("127.0.0.1", port)
    finally:
        await transport.close()


def _on_every_address(config: Path) -> None:
    path = config / "switch.yaml"
    path.write_text(re.sub(r"host: 127\.0\.0\.1, port", "host: 0.0.0.0, port", path.read_text()))


async def test_calls_through_a_switch_on_0_0_0_0_carry_a_reachable_contact(
    tmp_path: Path,
) -> None:
    async with running_switch(tmp_path, settings(), prepare=_on_every_address) as (
        server,
        port,
    ):
        assert ("UDP", "0.0.0.0", port) in server.stack.transport.bound  # type: ignore[union-attr]
        caller, callee = await lines(port)
        try:
            out = await caller.call("402")
            ok = await out.answered()
            [incoming] = list(callee.incoming.values())
            invite = incoming.invite
            here = f"127.0.0.1:{port}"
            assert invite.headers.get("Contact") == f"<sip:{here}>"
            assert (invite.headers.get("Via") or "").startswith(f"SIP/2.0/UDP {here};")
            assert ok.headers.get("Contact") == f"<sip:{here}>"
            assert out.contact == f"sip:{here}"
            await out.bye()
            [done] = await wait_done(callee, 1)
            assert done.events == ["ack", "bye"]
        finally:
            caller.close()
            callee.close()


def test_endpoint_text_brackets_ipv6() -> None:
    assert str(Endpoint("UDP", "::1", 5060)) == "udp:[::1]:5060"
    assert str(Endpoint("TLS", "192.0.2.1", 5061)) == "tls:192.0.2.1:5061"
