"""Reliable provisional responses (RFC 3262): 100rel, RSeq, RAck, PRACK.

    RSeq   =  "RSeq" HCOLON response-num
    RAck   =  "RAck" HCOLON response-num LWS CSeq-num LWS Method

UAS side (``ReliableProvisionals``): "the UAS MUST send [the reliable 1xx] with
[...] a Require header field containing the option tag 100rel" and an RSeq;
"The reliable provisional response is passed to the transaction layer
periodically with an interval that starts at T1 seconds and doubles for each
retransmission" until a matching PRACK; "If a reliable provisional response is
retransmitted for 64*T1 seconds without reception of a corresponding PRACK, the
UAS SHOULD reject the original request with a 5xx response." "The UAS MUST NOT
send a second reliable provisional response until the first is acknowledged"
(later ones wait in a queue here).

UAC side (``RSeqTracker``): "If the UAC receives another reliable provisional
response to the same request, and its RSeq value is not one higher than the
value of the sequence number, that response MUST NOT be acknowledged with a
PRACK" (retransmissions of an acknowledged one are dropped).

The B2BUA uses 100rel end to end only when both legs support it:
``supports_100rel(request)`` tells it for the A leg.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from switch.sip.errors import SipError
from switch.sip.message import Request, Response


def supports_100rel(message: Request | Response) -> bool:
    """``100rel`` in Supported or Require."""
    return "100rel" in message.headers.tokens("Supported") or requires_100rel(message)


def requires_100rel(message: Request | Response) -> bool:
    return "100rel" in message.headers.tokens("Require")


def rseq_of(response: Response) -> int | None:
    raw = response.headers.get("RSeq")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def is_reliable_provisional(response: Response) -> bool:
    return (
        100 < response.status < 200 and requires_100rel(response) and rseq_of(response) is not None
    )


@dataclass(frozen=True, slots=True)
class RAck:
    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str) -> RAck:
    parts = value.split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise SipError("Bad RAck", status_code=400)
    return RAck(int(parts[0]), int(parts[1]), parts[2])


def rack_for(response: Response) -> RAck:
    """§7.2: "The first number is the value from the RSeq header in the
    provisional response that is being acknowledged. The next number, and the
    method, are copied from the CSeq in the response"."""
    rseq = rseq_of(response)
    if rseq is None:
        raise ValueError("not a reliable provisional response")
    cseq = response.cseq
    return RAck(rseq, cseq.seq, cseq.method)


@dataclass(slots=True)
class _Pending:
    response: Response
    next_at: float
    interval: float
    give_up_at: float


@dataclass(slots=True)
class ReliableProvisionals:
    """UAS: the reliable 1xx of one INVITE, their RSeq and retransmissions."""

    first_rseq: int  # "a value between 1 and 2**31 - 1" (§3), injected
    t1: float = 0.5
    _next_rseq: int = 0
    _pending: _Pending | None = None
    _queue: deque[Response] = field(default_factory=deque)
    acknowledged: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.first_rseq < 2**31:
            raise ValueError("RSeq starts between 1 and 2**31 - 1")
        self._next_rseq = self.first_rseq

    @property
    def unacknowledged(self) -> Response | None:
        return self._pending.response if self._pending is not None else None

    @property
    def busy(self) -> bool:
        return self._pending is not None or bool(self._queue)

    def send(self, response: Response, now: float) -> Response | None:
        """Stamp RSeq and Require: 100rel; return it if it goes now, else queue it."""
        if not 100 < response.status < 200:
            raise ValueError("only 101-199 responses are sent reliably")
        if "100rel" not in response.headers.tokens("Require"):
            response.headers.add("Require", "100rel")
        if self._pending is not None:
            self._queue.append(response)
            return None
        return self._start(response, now)

    def _start(self, response: Response, now: float) -> Response:
        response.headers.set("RSeq", str(self._next_rseq))
        self._next_rseq += 1
        self._pending = _Pending(response, now + self.t1, self.t1, now + 64 * self.t1)
        return response

    def get_timer(self) -> float | None:
        return self._pending.next_at if self._pending is not None else None

    def handle_timer(self, now: float) -> tuple[list[Response], bool]:
        """(retransmissions due, gave up). Giving up clears everything."""
        p = self._pending
        if p is None or now < p.next_at:
            return [], False
        if now >= p.give_up_at:
            self.clear()
            return [], True
        p.interval *= 2
        p.next_at = min(now + p.interval, p.give_up_at)
        return [p.response], False

    def prack(self, rack: RAck, now: float) -> tuple[bool, Response | None]:
        """A PRACK arrived: (matched?, next queued 1xx to send now)."""
        p = self._pending
        if p is None:
            return False, None
        cseq = p.response.cseq
        rseq = rseq_of(p.response)
        if (rack.rseq, rack.cseq, rack.method) != (rseq, cseq.seq, cseq.method):
            return False, None
        self.acknowledged.append(rack.rseq)
        self._pending = None
        if self._queue:
            return True, self._start(self._queue.popleft(), now)
        return True, None

    def clear(self) -> None:
        """The final response went out: stop everything (§3)."""
        self._pending = None
        self._queue.clear()


@dataclass(slots=True)
class RSeqTracker:
    """UAC: which reliable 1xx of one INVITE (per To tag) to PRACK."""

    last: dict[str, int] = field(default_factory=dict)

    def accept(self, response: Response) -> bool:
        """True when ``response`` is a new, in-order reliable 1xx to PRACK.

        §4: "the UAC [...] MUST [...] acknowledge [...] the first"; later ones
        must carry "one higher than the value of the sequence number".
        """
        rseq = rseq_of(response)
        if rseq is None:
            return False
        tag = response.to_tag or ""
        last = self.last.get(tag)
        if last is not None and rseq != last + 1:
            return False
        self.last[tag] = rseq
        return True
