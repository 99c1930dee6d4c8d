"""INVITE admission in-process, raw SIP over UDP: digest 407, unknown callers 403,
a digest-authenticated call to an unregistered line 480 with its CDR row."""

from __future__ import annotations

import asyncio
import signal

from switch.app import Server
from switch.settings import load_settings
from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.message import Response
from switch.sip.parser import parse_message
from tests.adapter.conftest import UdpClient
from tests.adapter.test_call_lifecycle import cdr
from tests.sip_support import SwitchConfig

SDP = (
    "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


def invite(
    port: int,
    sip_port: int,
    *,
    user: str = "401",
    domain: str = "pbx.test",
    cseq: int = 1,
    auth: str | None = None,
    to: str = "402",
) -> bytes:
    lines = [
        f"INVITE sip:{to}@127.0.0.1:{sip_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKinv{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=caller",
        f"To: <sip:{to}@pbx.test>",
        "Call-ID: adapter-call-1",
        f"CSeq: {cseq} INVITE",
        f"Contact: <sip:{user}@127.0.0.1:{port}>",
        "Content-Type: application/sdp",
    ]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    lines.append(f"Content-Length: {len(SDP)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + SDP).encode()


async def final(client: UdpClient) -> Response:
    while True:
        message = parse_message(await client.recv())
        assert isinstance(message, Response)
        if message.status >= 200:
            return message


async def test_invite_challenged_then_480_for_unregistered_callee_and_cdr(
    switch_config: SwitchConfig, udp_client: UdpClient
) -> None:
    server = Server(load_settings(switch_config.config_dir), switch_config.data_dir)
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 10)
    try:
        port, sip = udp_client.port, switch_config.sip_port
        # Unknown caller domain: refused, no challenge (no open relay).
        udp_client.send(invite(port, sip, domain="elsewhere.test"), sip)
        assert (await final(udp_client)).status == 403

        udp_client.send(invite(port, sip, cseq=2), sip)
        challenge = await final(udp_client)
        assert challenge.status == 407
        value = challenge.headers.get("Proxy-Authenticate")
        assert value is not None
        auth = answer_challenge(
            parse_challenge(value),
            method="INVITE",
            uri=f"sip:402@127.0.0.1:{sip}",
            username="401",
            password="secret401",
            cnonce="c1",
            nc=1,
        )
        udp_client.send(invite(port, sip, cseq=3, auth=auth), sip)
        refused = await final(udp_client)
        assert refused.status == 480  # 402 is not registered
        # The row is written in the same step as the 480 is sent: no wait.
        rows = cdr(server)
        assert [(r["caller"], r["called"], r["outcome"], r["cause"]) for r in rows] == [
            ("401@pbx.test", "402", "unreachable", "unregistered")
        ]
    finally:
        server.handle_exit(signal.SIGTERM)
        server.handle_exit(signal.SIGTERM)
        assert await asyncio.wait_for(task, 15) == 0
