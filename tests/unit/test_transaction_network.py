"""Two pure transaction layers, a UAC and a UAS, talking through a fake network.

As aioquic's connection tests do: bytes move between two sans-I/O endpoints,
time is a number the test advances, loss is a datagram not delivered, reordering
is a datagram delivered late. Each side has a minimal TU written in the test.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.endpoint import Endpoint
from switch.sip.events import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
)
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import TransactionLayer
from tests.unit.test_transaction import make_request, new_layer, response_to

UAC = Endpoint("UDP", "192.0.2.1", 5060)
UAS = Endpoint("UDP", "192.0.2.2", 5060)
LATENCY = 0.02
T1, T2 = 0.5, 4.0

Message = Request | Response
# (sequence number of the datagram on the wire, parsed message) -> drop it?
Drop = Callable[[int, Message], bool]
Delay = Callable[[int, Message], float]


@dataclass
class Uas:
    """A UAS TU: answers INVITE with ``invite_answers`` and everything else 200.

    It retransmits its 2xx to INVITE until the ACK comes, as RFC 3261 §13.3.1.4
    asks of the TU: "starting at T1 and doubling up to T2", for 64*T1.
    """

    invite_answers: tuple[int, ...] = (180, 486)
    events: list[Event] = field(default_factory=list)
    # the 2xx being retransmitted: (response, next time, interval, give up at)
    ok: tuple[Response, float, float, float] | None = None

    def get_timer(self) -> float | None:
        return self.ok[1] if self.ok is not None else None

    def handle_timer(self, tx: TransactionLayer, now: float) -> None:
        if self.ok is None or self.ok[1] > now:
            return
        response, _, interval, give_up = self.ok
        if now >= give_up:
            self.ok = None
            return
        tx.send_response(response, now)
        interval = min(2 * interval, T2)
        self.ok = (response, now + interval, interval, give_up)

    def handle(self, tx: TransactionLayer, event: Event, now: float) -> None:
        self.events.append(event)
        if isinstance(event, RequestReceived):
            answers = self.invite_answers if event.request.method == "INVITE" else (200,)
            for status in answers:
                response = response_to(event.request, status, to_tag="uas")
                tx.send_response(response, now)
                if event.request.method == "INVITE" and 200 <= status < 300:
                    self.ok = (response, now + T1, T1, now + 64 * T1)
        elif isinstance(event, AckReceived):
            self.ok = None
        elif isinstance(event, CancelReceived):
            invite = tx.get_transaction(event.invite_key)
            assert invite is not None
            tx.send_response(response_to(invite.request, 487, to_tag="uas"), now)


@dataclass
class Uac:
    """A UAC TU: ACKs every 2xx to INVITE it is given (RFC 3261 §13.2.2.4), and
    cancels its INVITE at ``give_up_at`` if no final response came (an Expires)."""

    events: list[Event] = field(default_factory=list)
    give_up_at: float | None = None
    invite: ClientKey | None = None

    def get_timer(self) -> float | None:
        return self.give_up_at if self.invite is not None else None

    def handle_timer(self, tx: TransactionLayer, now: float) -> None:
        if self.invite is not None and self.give_up_at is not None and now >= self.give_up_at:
            tx.cancel(self.invite, now)
            self.invite = None

    def handle(self, tx: TransactionLayer, event: Event, now: float) -> None:
        self.events.append(event)
        if (
            isinstance(event, ResponseReceived)
            and event.key.method == "INVITE"
            and 200 <= event.response.status < 300
        ):
            ack = make_request("ACK", branch=None, to_tag=event.response.to_tag)
            tx.send_ack_2xx(ack, UAS)

    def finals(self, method: str = "INVITE") -> list[int]:
        return [
            e.response.status
            for e in self.events
            if isinstance(e, ResponseReceived)
            and e.key.method == method
            and e.response.status >= 200
        ]


@dataclass
class Network:
    drop: Drop = lambda n, m: False
    delay: Delay = lambda n, m: LATENCY
    duplicate: Callable[[int, Message], bool] = lambda n, m: False
    uac: TransactionLayer = field(default_factory=lambda: new_layer(prefix="c"))
    uas: TransactionLayer = field(default_factory=lambda: new_layer(prefix="s"))
    uac_tu: Uac = field(default_factory=Uac)
    uas_tu: Uas = field(default_factory=Uas)
    now: float = 0.0
    wire: list[tuple[float, int, bytes, Endpoint, Endpoint]] = field(default_factory=list)
    log: list[tuple[float, str, Message]] = field(default_factory=list)
    _n: itertools.count[int] = field(default_factory=itertools.count)  # datagrams sent
    _seq: itertools.count[int] = field(default_factory=itertools.count)  # heap ties

    def _collect(self) -> None:
        for src, tx in ((UAC, self.uac), (UAS, self.uas)):
            for data, dest in tx.datagrams_to_send():
                n = next(self._n)
                message = parse_message(data)
                if self.drop(n, message):
                    self.log.append((self.now, "lost", message))
                    continue
                copies = 2 if self.duplicate(n, message) else 1
                for _ in range(copies):
                    arrival = self.now + self.delay(n, message)
                    heapq.heappush(self.wire, (arrival, next(self._seq), data, src, dest))

    def _dispatch(self) -> None:
        for tx, tu in ((self.uac, self.uac_tu), (self.uas, self.uas_tu)):
            while (event := tx.next_event()) is not None:
                tu.handle(tx, event, self.now)

    def settle(self) -> None:
        self._dispatch()
        self._collect()

    def run(self, until: float) -> None:
        self.settle()
        while True:
            timers = (
                self.uac.get_timer(),
                self.uas.get_timer(),
                self.uac_tu.get_timer(),
                self.uas_tu.get_timer(),
            )
            candidates = [t for t in timers if t is not None]
            if self.wire:
                candidates.append(self.wire[0][0])
            if not candidates or min(candidates) > until:
                break
            self.now = max(self.now, min(candidates))
            while self.wire and self.wire[0][0] <= self.now:
                _, _, data, src, dest = heapq.heappop(self.wire)
                message = parse_message(data)
                self.log.append((self.now, f"{src.host}->{dest.host}", message))
                (self.uas if dest == UAS else self.uac).receive(message, src, self.now)
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
            self.uac_tu.handle_timer(self.uac, self.now)
            self.uas_tu.handle_timer(self.uas, self.now)
            self.settle()
        self.now = until

    def invite(self, at: float = 0.0) -> ClientKey:
        self.now = at
        key = self.uac.send_request(make_request(branch=None), UAS, at)
        self.uac_tu.invite = key
        self.settle()
        return key

    def delivered(self, what: str) -> list[Message]:
        """Messages that reached a side: ``what`` is "uas" or "uac"."""
        host = (UAS if what == "uas" else UAC).host
        return [m for _, way, m in self.log if way.endswith("->" + host)]


def is_request(method: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Request) and m.method == method


def is_response(status: int) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Response) and m.status == status


def nth(predicate: Callable[[Message], bool], *which: int) -> Drop:
    """Drop the listed occurrences (0 = first) of messages matching ``predicate``."""
    seen = itertools.count()

    def drop(n: int, message: Message) -> bool:
        return predicate(message) and next(seen) in which

    return drop


def requests_received(net: Network, method: str = "INVITE") -> list[RequestReceived]:
    return [
        e
        for e in net.uas_tu.events
        if isinstance(e, RequestReceived) and e.request.method == method
    ]


# ----------------------------------------------------------------------- scenarios


def test_invite_200_ack_without_loss() -> None:
    net = Network(uas_tu=Uas(invite_answers=(180, 200)))
    key = net.invite()
    net.run(40)
    statuses = [e.response.status for e in net.uac_tu.events if isinstance(e, ResponseReceived)]
    assert statuses == [100, 180, 200]
    assert len(requests_received(net)) == 1
    acks = [e for e in net.uas_tu.events if isinstance(e, AckReceived)]
    assert len(acks) == 1
    assert acks[0].key is None  # the ACK for a 2xx has its own branch
    assert TransactionTerminated(key) in net.uac_tu.events
    assert len(net.uac) == 0
    assert len(net.uas) == 0


def test_lost_invite_is_retransmitted_by_timer_a() -> None:
    net = Network(drop=nth(is_request("INVITE"), 0))
    net.invite()
    net.run(40)
    assert len(requests_received(net)) == 1
    first = next(t for t, way, m in net.log if way.endswith(UAS.host))
    assert first == 0.5 + LATENCY
    assert net.uac_tu.finals() == [486]


def test_lost_final_responses_are_retransmitted_by_timer_g() -> None:
    net = Network(drop=nth(is_response(486), 0, 1, 2))
    net.invite()
    net.run(40)
    assert net.uac_tu.finals() == [486]  # exactly one final to the TU
    assert len([m for m in net.delivered("uac") if is_response(486)(m)]) == 1
    assert not any(isinstance(e, TransactionTimedOut) for e in net.uas_tu.events)
    assert len(net.uac) == 0
    assert len(net.uas) == 0


def test_lost_ack_is_resent_on_the_final_retransmission() -> None:
    net = Network(drop=nth(is_request("ACK"), 0))
    net.invite()
    net.run(40)
    acks_delivered = [m for m in net.delivered("uas") if is_request("ACK")(m)]
    assert len(acks_delivered) == 1  # the second ACK, sent again by Completed
    assert net.uac_tu.finals() == [486]
    assert not any(isinstance(e, TransactionTimedOut) for e in net.uas_tu.events)
    assert not any(isinstance(e, AckReceived) for e in net.uas_tu.events)  # absorbed


def test_every_ack_lost_ends_with_timer_h() -> None:
    net = Network(drop=lambda n, m: is_request("ACK")(m))
    net.invite()
    net.run(100)
    timeouts = [e for e in net.uas_tu.events if isinstance(e, TransactionTimedOut)]
    assert [e.method for e in timeouts] == ["INVITE"]
    assert net.uac_tu.finals() == [486]


def test_total_loss_times_out_the_invite() -> None:
    net = Network(drop=lambda n, m: True)
    key = net.invite()
    net.run(100)
    assert TransactionTimedOut(key, "INVITE") in net.uac_tu.events
    assert net.uas_tu.events == []
    lost_invites = [m for _, way, m in net.log if way == "lost"]
    assert len(lost_invites) == 7


def test_provisional_overtaken_by_the_final_is_discarded() -> None:
    def delay(n: int, m: Message) -> float:
        return 1.0 if is_response(180)(m) else LATENCY

    net = Network(delay=delay, uas_tu=Uas(invite_answers=(180, 200)))
    net.invite()
    net.run(40)
    statuses = [e.response.status for e in net.uac_tu.events if isinstance(e, ResponseReceived)]
    assert statuses == [100, 200]  # the late 180 reached the Accepted ICT: discarded


def test_duplicated_finals_reach_the_tu_once_and_are_acked_each_time() -> None:
    net = Network(duplicate=lambda n, m: is_response(486)(m))
    net.invite()
    net.run(40)
    assert net.uac_tu.finals() == [486]
    assert len([m for m in net.delivered("uas") if is_request("ACK")(m)]) == 2


def test_duplicated_2xx_reach_the_tu_each_time_and_are_acked_each_time() -> None:
    net = Network(duplicate=lambda n, m: is_response(200)(m), uas_tu=Uas(invite_answers=(200,)))
    net.invite()
    net.run(40)
    assert net.uac_tu.finals() == [200, 200]  # RFC 6026 §7.2: every 2xx to the TU
    assert len([e for e in net.uas_tu.events if isinstance(e, AckReceived)]) == 2


def test_bye_with_lost_200_is_answered_from_the_nist() -> None:
    net = Network(drop=nth(is_response(200), 0))
    net.now = 0.0
    net.uac.send_request(make_request("BYE", branch=None, to_tag="uas", cseq=2), UAS, 0.0)
    net.run(40)
    assert len(requests_received(net, "BYE")) == 1
    assert net.uac_tu.finals("BYE") == [200]
    assert len(net.uac) == 0
    assert len(net.uas) == 0


def test_cancel_end_to_end() -> None:
    net = Network(uas_tu=Uas(invite_answers=(180,)))
    key = net.invite()
    net.run(1.0)
    cancel_key = net.uac.cancel(key, 1.0)
    assert cancel_key is not None
    net.run(40)
    cancelled = [e for e in net.uas_tu.events if isinstance(e, CancelReceived)]
    assert len(cancelled) == 1
    assert net.uac_tu.finals("CANCEL") == [200]
    assert net.uac_tu.finals() == [487]
    assert len(net.uac) == 0
    assert len(net.uas) == 0


def test_cancel_before_any_provisional_waits_for_it() -> None:
    # The UAS's 100 is lost: the CANCEL waits for the 180, sent late by the TU.
    net = Network(drop=nth(is_response(100), 0, 1, 2, 3), uas_tu=Uas(invite_answers=()))
    key = net.invite()
    net.run(0.01)
    net.uac.cancel(key, 0.01)
    net.run(2.0)
    assert not any(is_request("CANCEL")(m) for _, _, m in net.log)
    [received] = requests_received(net)
    net.now = 2.0
    net.uas.send_response(response_to(received.request, 180, to_tag="uas"), 2.0)
    net.run(40)
    assert [m for m in net.delivered("uas") if is_request("CANCEL")(m)]
    assert net.uac_tu.finals() == [487]


# ---------------------------------------------------------------------- property


@settings(max_examples=200, deadline=None)
@given(
    lost=st.sets(st.integers(0, 30), max_size=12),
    answers=st.sampled_from([(180, 486), (486,), (180, 200), (200,)]),
)
def test_invite_under_random_loss(lost: set[int], answers: tuple[int, ...]) -> None:
    net = Network(
        drop=lambda n, m: n in lost,
        uas_tu=Uas(invite_answers=answers),
        uac_tu=Uac(give_up_at=40.0),
    )
    key = net.invite()
    net.run(200)
    invites = requests_received(net)
    assert len(invites) <= 1  # retransmissions never reach the UAS TU
    finals = net.uac_tu.finals()
    timed_out = TransactionTimedOut(key, "INVITE") in net.uac_tu.events
    if 486 in answers:
        assert finals in ([486], [])
    else:
        assert set(finals) <= {200}  # every 2xx that arrives goes up
    # either an answer arrived or the INVITE timed out (Timer B, or §9.1 after
    # the CANCEL sent at 40 s), never both
    assert bool(finals) != timed_out
    if invites and 486 in answers:
        # the UAS either got its ACK or gave up after Timer H
        uas_timeouts = [e for e in net.uas_tu.events if isinstance(e, TransactionTimedOut)]
        assert len(uas_timeouts) <= 1
    # everything is cleaned up, on both sides
    assert len(net.uac) == 0
    assert len(net.uas) == 0
    assert net.uac.get_timer() is None
    assert net.uas.get_timer() is None


@settings(max_examples=200, deadline=None)
@given(lost=st.sets(st.integers(0, 25), max_size=10))
def test_bye_under_random_loss(lost: set[int]) -> None:
    net = Network(drop=lambda n, m: n in lost)
    key = net.uac.send_request(make_request("BYE", branch=None, to_tag="uas", cseq=2), UAS, 0.0)
    net.run(200)
    assert len(requests_received(net, "BYE")) <= 1
    finals = net.uac_tu.finals("BYE")
    assert finals in ([200], [])
    assert bool(finals) != (TransactionTimedOut(key, "BYE") in net.uac_tu.events)
    assert len(net.uac) == 0
    assert len(net.uas) == 0
