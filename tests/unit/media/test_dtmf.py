"""RFC 4733 telephone-events, the receiver under loss and duplication, SIP INFO bodies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.dtmf import (
    DigitReceived,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    InfoDtmf,
    TelephoneEvent,
    dtmf_relay_body,
    parse_info,
)


def test_payload_parse_and_serialize() -> None:
    # Digit 5, end bit, volume 10, duration 800 (100 ms at 8 kHz).
    data = bytes([5, 0x80 | 10]) + (800).to_bytes(2, "big")
    event = TelephoneEvent.parse(data)
    assert event == TelephoneEvent(5, True, 10, 800)
    assert event.digit == "5"
    assert event.serialize() == data


def test_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.parse(bytes([11, 0x40 | 7, 0, 160])) == TelephoneEvent(11, False, 7, 160)


def test_short_payload() -> None:
    with pytest.raises(DtmfError) as info:
        TelephoneEvent.parse(b"\x05\x8a\x03")
    assert str(info.value) == "telephone-event payload is shorter than 4 bytes"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param(TelephoneEvent(256), "telephone-event event must be in 0..255", id="event"),
        pytest.param(
            TelephoneEvent(1, volume=64), "telephone-event volume must be in 0..63", id="volume"
        ),
        pytest.param(
            TelephoneEvent(1, duration=65536),
            "telephone-event duration must be in 0..65535",
            id="duration",
        ),
    ],
)
def test_serialize_out_of_range(event: TelephoneEvent, message: str) -> None:
    with pytest.raises(DtmfError) as info:
        event.serialize()
    assert str(info.value) == message


def test_sender_packets() -> None:
    packets = DtmfSender().packets("#", timestamp=16000, duration_ms=160)
    assert [p.offset for p in packets] == [0.05, 0.10, 0.15, 0.16, 0.16, 0.16]
    assert [p.marker for p in packets] == [True, False, False, False, False, False]
    assert {p.timestamp for p in packets} == {16000}
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [e.duration for e in events] == [400, 800, 1200, 1280, 1280, 1280]
    assert [e.end for e in events] == [False, False, False, True, True, True]
    assert {e.event for e in events} == {11}


def test_sender_short_event_marks_the_first_end_packet() -> None:
    packets = DtmfSender().packets("1", timestamp=0, duration_ms=40)
    assert [p.marker for p in packets] == [True, False, False]


def test_sender_refuses_bad_digits_and_durations() -> None:
    with pytest.raises(DtmfError, match="not a DTMF digit: 'x'"):
        DtmfSender().packets("x", timestamp=0)
    with pytest.raises(DtmfError, match="DTMF duration must be"):
        DtmfSender().packets("1", timestamp=0, duration_ms=10_000)


def _feed(receiver: DtmfReceiver, packets: list[tuple[int, bytes, float]]) -> list[DigitReceived]:
    out = []
    for ts, payload, now in packets:
        receiver.receive(ts, payload, now)
        while (event := receiver.next_event()) is not None:
            out.append(event)
    return out


def _stream(digits: str, start: float = 0.0) -> list[tuple[int, bytes, float]]:
    sender = DtmfSender()
    out = []
    for i, digit in enumerate(digits):
        ts = 8000 * i
        out += [(ts, p.payload, start + i + p.offset) for p in sender.packets(digit, ts)]
    return out


def test_receiver_reports_each_digit_once_despite_end_repeats() -> None:
    events = _feed(DtmfReceiver(), _stream("1234#"))
    assert [e.digit for e in events] == list("1234#")
    assert all(not e.timed_out and e.duration == 800 for e in events)


def test_receiver_ignores_late_end_repeats_after_the_next_event() -> None:
    stream = _stream("12")
    late = stream[-1]  # an end packet of "2"
    first_end = next(p for p in stream if p[0] == 0 and TelephoneEvent.parse(p[1]).end)
    events = _feed(DtmfReceiver(), [*stream, (first_end[0], first_end[1], 3.0), late])
    assert [e.digit for e in events] == ["1", "2"]


def test_receiver_times_out_when_every_end_packet_is_lost() -> None:
    receiver = DtmfReceiver(timeout=0.5)
    starts = [p for p in _stream("7") if not TelephoneEvent.parse(p[1]).end]
    assert _feed(receiver, starts) == []
    assert receiver.get_timer() == pytest.approx(starts[-1][2] + 0.5)
    receiver.handle_timer(starts[-1][2] + 0.4)
    assert receiver.next_event() is None
    receiver.handle_timer(starts[-1][2] + 0.5)
    assert receiver.next_event() == DigitReceived("7", 0, 400, timed_out=True)
    assert receiver.get_timer() is None


def test_receiver_closes_an_unended_event_when_the_next_begins() -> None:
    stream = [p for p in _stream("89") if not (p[0] == 0 and TelephoneEvent.parse(p[1]).end)]
    events = _feed(DtmfReceiver(), stream)
    assert [(e.digit, e.timed_out) for e in events] == [("8", True), ("9", False)]


def test_receiver_ignores_non_dtmf_events() -> None:
    receiver = DtmfReceiver()
    receiver.receive(0, TelephoneEvent(70, True).serialize(), 0.0)
    assert receiver.next_event() is None


@settings(max_examples=100, deadline=None)
@given(
    digits=st.text("0123456789*#ABCD", min_size=1, max_size=6),
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.5),
)
def test_one_digit_per_event_under_duplication_and_loss(
    digits: str, seed: int, loss: float
) -> None:
    rng = random.Random(seed)
    stream = _stream(digits)
    mangled = []
    for packet in stream:
        if rng.random() < loss:
            continue
        mangled += [packet] * rng.randint(1, 3)  # duplicates
    receiver = DtmfReceiver(timeout=0.5)
    events = _feed(receiver, mangled)
    receiver.handle_timer(len(digits) + 10.0)
    while (event := receiver.next_event()) is not None:
        events.append(event)
    survivors = [d for i, d in enumerate(digits) if any(p[0] == 8000 * i for p in mangled)]
    assert [e.digit for e in events] == survivors


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", InfoDtmf("5", 160)),
        ("application/dtmf-relay", b"Signal= #\nDuration= 250", InfoDtmf("#", 250)),
        ("Application/DTMF-Relay; charset=x", b"signal=*\r\n", InfoDtmf("*")),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=100\r\n", InfoDtmf("#", 100)),
        ("application/dtmf-relay", b"Signal=a\r\n", InfoDtmf("A")),
        ("application/dtmf", b"9", InfoDtmf("9")),
        ("application/dtmf", b"10\r\n", InfoDtmf("*")),
    ],
)
def test_parse_info(content_type: str, body: bytes, expected: InfoDtmf) -> None:
    assert parse_info(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        pytest.param(
            "text/plain", b"5", "unsupported DTMF INFO content type: 'text/plain'", id="type"
        ),
        pytest.param("application/dtmf", b"\xff", "DTMF INFO body is not ASCII", id="ascii"),
        pytest.param("application/dtmf", b"x", "not a DTMF digit: 'x'", id="digit"),
        pytest.param("application/dtmf", b"", "not a DTMF digit: ''", id="empty"),
        pytest.param(
            "application/dtmf-relay",
            b"Duration=160",
            "dtmf-relay body has no Signal",
            id="no-signal",
        ),
        pytest.param(
            "application/dtmf-relay",
            b"Signal 5",
            "dtmf-relay line has no '=': 'Signal 5'",
            id="no-equals",
        ),
        pytest.param(
            "application/dtmf-relay",
            b"Signal=5\r\nDuration=long",
            "dtmf-relay Duration is not a number: 'long'",
            id="duration",
        ),
        pytest.param(
            "application/dtmf-relay", b"Signal=99", "not a DTMF digit: '99'", id="signal-number"
        ),
    ],
)
def test_parse_info_malformed(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(DtmfError) as info:
        parse_info(content_type, body)
    assert str(info.value) == message


def test_dtmf_relay_body_round_trip() -> None:
    body = dtmf_relay_body("#", 250)
    assert body == b"Signal=#\r\nDuration=250\r\n"
    assert parse_info("application/dtmf-relay", body) == InfoDtmf("#", 250)
