"""RFC 3262 pieces: RSeq/RAck, retransmission schedule, matching, UAC ordering."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipError
from switch.sip.message import Response, make_response
from switch.sip.prack import (
    RAck,
    ReliableProvisionals,
    RSeqTracker,
    parse_rack,
    rack_for,
    supports_100rel,
)
from tests.unit.test_transaction import make_request


def test_supports_100rel() -> None:
    r = make_request("INVITE")
    assert not supports_100rel(r)
    r.headers.add("Supported", "timer, 100rel")
    assert supports_100rel(r)


def test_rack_parse_and_build() -> None:
    assert parse_rack("776656 1 INVITE") == RAck(776656, 1, "INVITE")
    with pytest.raises(SipError, match="Bad RAck") as info:
        parse_rack("1 INVITE")
    assert info.value.status_code == 400


def test_retransmission_doubles_until_prack_and_queue() -> None:
    invite = make_request("INVITE")
    rel = ReliableProvisionals(first_rseq=100, t1=0.5)
    first = rel.send(make_response(invite, 180, to_tag="t"), 0.0)
    assert first is not None
    assert first.headers.get("RSeq") == "100"
    assert first.headers.get("Require") == "100rel"
    assert rel.send(make_response(invite, 183, to_tag="t"), 0.0) is None  # queued
    times = []
    while (t := rel.get_timer()) is not None and t < 10:
        out, gave_up = rel.handle_timer(t)
        assert out == [first]
        assert not gave_up
        times.append(t)
    assert times == [0.5, 1.5, 3.5, 7.5]
    assert rel.prack(RAck(99, 1, "INVITE"), 8.0) == (False, None)
    matched, nxt = rel.prack(rack_for(first), 8.0)
    assert matched
    assert nxt is not None
    assert nxt.headers.get("RSeq") == "101"


def test_gives_up_after_64_t1() -> None:
    rel = ReliableProvisionals(first_rseq=1, t1=0.5)
    rel.send(make_response(make_request("INVITE"), 180, to_tag="t"), 0.0)
    gave_up = False
    while (t := rel.get_timer()) is not None:
        _, gave_up = rel.handle_timer(t)
    assert gave_up
    assert t is None


def test_uac_tracks_rseq_per_dialog() -> None:
    invite = make_request("INVITE")
    tracker = RSeqTracker()

    def rel(rseq: int, tag: str = "t") -> Response:
        return make_response(
            invite, 183, to_tag=tag, extra=[("Require", "100rel"), ("RSeq", str(rseq))]
        )

    assert tracker.accept(rel(5))
    assert not tracker.accept(rel(5))  # retransmission
    assert not tracker.accept(rel(7))  # out of order
    assert tracker.accept(rel(6))
    assert tracker.accept(rel(1, "other"))  # another fork
