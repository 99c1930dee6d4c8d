"""B2bua's reading of a caller's ``Privacy`` header (RFC 3323 §4.2)."""

from __future__ import annotations

import pytest

from switch.b2bua import _privacy_id
from switch.sip.message import Request
from switch.sip.parser import parse_message


def invite(privacy: str | None) -> bytes:
    lines = [
        "INVITE sip:402@pbx.test SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-p1",
        "From: <sip:401@pbx.test>;tag=a",
        "To: <sip:402@pbx.test>",
        "Call-ID: privacy-1",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
    ]
    if privacy is not None:
        lines.append(f"Privacy: {privacy}")
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("privacy", "withheld"),
    [
        ("id", True),
        ("ID", True),
        ("header;id", True),
        ("header ; id ; critical", True),  # SEMI = SWS ";" SWS
        ("none", False),
        ("header", False),
        ("identity", False),
        (None, False),
    ],
)
def test_privacy_id(privacy: str | None, withheld: bool) -> None:
    request = parse_message(invite(privacy))
    assert isinstance(request, Request)
    assert _privacy_id(request) is withheld
