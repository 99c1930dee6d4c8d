"""Structured log lines: key=value, quoted when needed, Call-ID on SIP lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from switch.log import configure_logging, log_sip
from switch.sip.endpoint import Endpoint
from switch.sip.message import Headers, Request
from switch.sip.uri import parse_uri


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    configure_logging("info", out)
    yield out
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def test_sip_line_carries_the_call_id(stream: io.StringIO) -> None:
    req = Request("OPTIONS", parse_uri("sip:pbx.test"), Headers([("Call-ID", "abc@h")]))
    log_sip(logging.getLogger("t"), logging.INFO, "sip.in", req, Endpoint("UDP", "::1", 5060))
    line = stream.getvalue().strip()
    assert " level=info logger=t event=sip.in call_id=abc@h method=OPTIONS" in line
    assert line.endswith("ruri=sip:pbx.test peer=udp:[::1]:5060")


def test_values_are_quoted_when_needed(stream: io.StringIO) -> None:
    logging.getLogger("t").warning("x", extra={"reason": 'bad "CSeq"\nhere', "n": 3})
    assert stream.getvalue().strip().endswith('event=x reason="bad \\"CSeq\\"\\nhere" n=3')


def test_nothing_is_built_below_the_level(stream: io.StringIO) -> None:
    class Exploding(Headers):
        def get(self, name: str, default: str | None = None) -> str | None:
            raise AssertionError("formatted below the active level")

    req = Request("OPTIONS", parse_uri("sip:pbx.test"), Exploding())
    log_sip(logging.getLogger("t"), logging.DEBUG, "sip.in", req)
    assert stream.getvalue() == ""
