"""DTMF: RFC 4733 telephone-events over RTP, and SIP INFO bodies.

RFC 4733 §2.3, the payload of one event::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

How an event travels (RFC 4733 §2.5): every packet of one event carries the
RTP timestamp of the event's start; the first has the marker bit; updates
repeat the growing duration; the end packet (E bit) is sent three times. A
receiver therefore tells events apart by timestamp, reports a digit on the first
end packet it sees, ignores the repeats, and must cope with lost packets: a
lost start is harmless (any packet of the event starts it), lost end packets are
covered by a timeout after the last packet, or by the next event's arrival.

``DtmfReceiver`` is pull-style like the rest of the sans-I/O code:
``receive(...)``/``handle_timer(now)`` in, ``next_event()`` and ``get_timer()`` out.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

__all__ = [
    "DIGITS",
    "DigitReceived",
    "DtmfError",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "InfoDtmf",
    "TelephoneEvent",
    "digit_to_event",
    "dtmf_relay_body",
    "parse_info",
]

# RFC 4733 §3.2, Table 3: events 0-9, * (10), # (11), A-D (12-15), flash (16).
DIGITS = "0123456789*#ABCD!"

_PAYLOAD = struct.Struct("!BBH")


class DtmfError(ValueError):
    """A telephone-event payload or SIP INFO DTMF body is malformed."""


def digit_to_event(digit: str) -> int:
    event = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if event < 0:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return event


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 payload. ``duration`` is in RTP clock units."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        if len(data) < 4:
            raise DtmfError("telephone-event payload is shorter than 4 bytes")
        event, e_r_volume, duration = _PAYLOAD.unpack_from(data)
        # RFC 4733 §2.3.4: "The R bit is reserved for future use. The sender MUST
        # set it to 0, and the receiver MUST ignore it."
        return cls(event, bool(e_r_volume & 0x80), e_r_volume & 0x3F, duration)

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise DtmfError("telephone-event event must be in 0..255")
        if not 0 <= self.volume <= 63:
            raise DtmfError("telephone-event volume must be in 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError("telephone-event duration must be in 0..65535")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A digit, reported once. ``timed_out``: no end packet arrived."""

    digit: str
    timestamp: int
    duration: int
    timed_out: bool = False


@dataclass(slots=True)
class _Current:
    timestamp: int
    digit: str
    duration: int
    last_seen: float


class DtmfReceiver:
    """Telephone-event packets of one RTP stream in, one ``DigitReceived`` per event out."""

    def __init__(self, *, timeout: float = 0.5, memory: int = 8) -> None:
        self.timeout = timeout
        self._current: _Current | None = None
        # Timestamps of events already reported: late repeats of their end
        # packets (reordered after the next event started) must stay silent.
        self._done: deque[int] = deque(maxlen=memory)
        self._events: deque[DigitReceived] = deque()

    def receive(self, timestamp: int, payload: bytes, now: float) -> None:
        """One telephone-event RTP packet (its RTP timestamp and payload).

        Raises ``DtmfError`` for a malformed payload; the caller drops the packet.
        """
        event = TelephoneEvent.parse(payload)
        digit = event.digit
        if digit is None or timestamp in self._done:
            return
        current = self._current
        if current is not None and current.timestamp != timestamp:
            # A new event began while the previous one never ended: its end
            # packets were lost. Report it now rather than after the timeout.
            self._finish(current, timed_out=True)
            current = None
        if current is None:
            current = self._current = _Current(timestamp, digit, event.duration, now)
        else:
            current.duration = max(current.duration, event.duration)
            current.last_seen = now
        if event.end:
            self._finish(current, timed_out=False)

    def handle_timer(self, now: float) -> None:
        current = self._current
        if current is not None and now >= current.last_seen + self.timeout:
            self._finish(current, timed_out=True)

    def get_timer(self) -> float | None:
        current = self._current
        return None if current is None else current.last_seen + self.timeout

    def next_event(self) -> DigitReceived | None:
        return self._events.popleft() if self._events else None

    def _finish(self, current: _Current, *, timed_out: bool) -> None:
        self._events.append(
            DigitReceived(current.digit, current.timestamp, current.duration, timed_out)
        )
        self._done.append(current.timestamp)
        self._current = None


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One packet to send ``offset`` seconds after the event start."""

    offset: float
    marker: bool
    timestamp: int
    payload: bytes


class DtmfSender:
    """The RFC 4733 packets of one digit: start, updates every ``interval_ms``, 3 ends.

    Packet ``k`` (``k >= 1``) goes ``k * interval_ms`` after the start with the
    duration elapsed so far; the first carries the marker bit (RFC 4733
    §2.5.1.2); the end packet is repeated ``end_repeats`` times with the same
    timestamp and final duration (§2.5.1.4). Every packet carries the start
    timestamp. The caller numbers them (one sequence number each).
    """

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        interval_ms: int = 50,
        volume: int = 10,
        end_repeats: int = 3,
    ) -> None:
        self.clock_rate = clock_rate
        self.interval_ms = interval_ms
        self.volume = volume
        self.end_repeats = end_repeats

    def packets(self, digit: str, timestamp: int, duration_ms: int = 100) -> list[DtmfPacket]:
        event = digit_to_event(digit)
        total = self.clock_rate * duration_ms // 1000
        if not 0 < total <= 0xFFFF:
            raise DtmfError("DTMF duration must be between 1 clock tick and 65535")
        ts = timestamp & 0xFFFFFFFF
        out: list[DtmfPacket] = []
        elapsed_ms = self.interval_ms
        while elapsed_ms < duration_ms:
            payload = TelephoneEvent(
                event, False, self.volume, self.clock_rate * elapsed_ms // 1000
            ).serialize()
            out.append(DtmfPacket(elapsed_ms / 1000, not out, ts, payload))
            elapsed_ms += self.interval_ms
        end = TelephoneEvent(event, True, self.volume, total).serialize()
        marker = not out  # an event shorter than one interval: the first end is the start
        out += [
            DtmfPacket(duration_ms / 1000, marker and i == 0, ts, end)
            for i in range(self.end_repeats)
        ]
        return out


# ---------------------------------------------------------------- SIP INFO


@dataclass(frozen=True, slots=True)
class InfoDtmf:
    """A digit from a SIP INFO body; ``duration_ms`` when the body gave one."""

    digit: str
    duration_ms: int | None = None


def _info_digit(value: str) -> str:
    value = value.strip()
    # Some gateways send the event number: 10 for *, 11 for #.
    if value.isdigit() and len(value) == 2 and int(value) < len(DIGITS) - 1:
        return DIGITS[int(value)]
    if len(value) != 1 or value.upper() not in DIGITS[:-1]:
        raise DtmfError(f"not a DTMF digit: {value!r}")
    return value.upper()


def parse_info(content_type: str, body: bytes) -> InfoDtmf:
    """A SIP INFO DTMF body, ``application/dtmf-relay`` or ``application/dtmf``.

    ``application/dtmf-relay`` (the de facto Cisco format)::

        Signal=5
        Duration=160

    ``application/dtmf``: the digit alone.
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DtmfError("DTMF INFO body is not ASCII") from None
    if kind == "application/dtmf":
        return InfoDtmf(_info_digit(text))
    if kind != "application/dtmf-relay":
        raise DtmfError(f"unsupported DTMF INFO content type: {kind!r}")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise DtmfError(f"dtmf-relay line has no '=': {line!r}")
        fields[name.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise DtmfError("dtmf-relay body has no Signal")
    digit = _info_digit(fields["signal"])
    duration = None
    if "duration" in fields:
        if not fields["duration"].isdigit():
            raise DtmfError(f"dtmf-relay Duration is not a number: {fields['duration']!r}")
        duration = int(fields["duration"])
    return InfoDtmf(digit, duration)


def dtmf_relay_body(digit: str, duration_ms: int = 160) -> bytes:
    """An ``application/dtmf-relay`` body."""
    event = digit_to_event(digit)
    return f"Signal={DIGITS[event]}\r\nDuration={duration_ms}\r\n".encode("ascii")
