"""The pure call core: the outcome table, and whole calls between two pure phones.

Phones are ``tests.unit.sip_legs`` sides (a transaction layer and legs each);
the switch is a third transaction layer with one ``Call`` on top; datagrams move
between them on simulated time; relay commands are only recorded.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from switch.call import (
    FAILURE_TABLE,
    Call,
    CallEnded,
    CallState,
    LegSend,
    Limits,
    MediaAnswered,
    MediaPlan,
    MediaUpdate,
    Outcome,
    SrtpOffer,
    Target,
    failure_outcome,
)
from switch.sip.dialog_events import (
    CallAnswered,
    InDialogRequestReceived,
    PrackReceived,
    ProvisionalReceived,
)
from switch.sip.endpoint import Endpoint
from switch.sip.events import RequestReceived
from switch.sip.invite import InviteSession, SendAck, SendCancel, SendRequest, SendResponse
from switch.sip.parser import parse_message
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import NoSuchTransaction, TransactionLayer
from switch.sip.uri import parse_uri
from tests.unit.sip_legs import ANSWER, OFFER, Side, answer_with, config, ids, make_side

A = Endpoint("UDP", "192.0.2.1", 5060)
B = Endpoint("UDP", "192.0.2.2", 5060)
SW = Endpoint("UDP", "192.0.2.10", 5060)
RELAY = MediaPlan("192.0.2.10", 20000, 20002)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# ------------------------------------------------------------------ the table


@pytest.mark.parametrize(
    ("status", "cause", "outcome"),
    [
        (486, None, Outcome.BUSY),
        (600, None, Outcome.BUSY),
        (408, None, Outcome.NO_ANSWER),
        (480, None, Outcome.NO_ANSWER),
        (None, "ring-timeout", Outcome.NO_ANSWER),
        (404, None, Outcome.UNREACHABLE),
        (410, None, Outcome.UNREACHABLE),
        (484, None, Outcome.UNREACHABLE),
        (480, "unregistered", Outcome.UNREACHABLE),
        (408, "transaction-timeout", Outcome.UNREACHABLE),
        (503, "transport-error", Outcome.UNREACHABLE),
        (403, None, Outcome.REJECTED),
        (603, None, Outcome.REJECTED),
        (415, None, Outcome.REJECTED),  # by class
        (500, None, Outcome.UNREACHABLE),  # by class
    ],
)
def test_failure_outcome_table(status: int | None, cause: str | None, outcome: Outcome) -> None:
    assert failure_outcome(status, cause) is outcome


def test_table_is_the_one_the_brief_names() -> None:
    assert {k for k, v in FAILURE_TABLE.items() if v is Outcome.BUSY} == {486, 600}


# ------------------------------------------------------------------ call flows


@dataclass
class World:
    """Phones ``a`` and ``b`` (and ``c`` when given), the switch's transaction layer,
    its calls (``call`` first, then ``others``), all on one simulated clock."""

    a: Side
    b: Side
    sw: TransactionLayer
    now: float = 0.0
    call: Call | None = None
    media: list[object] = field(default_factory=list)
    ended: list[CallEnded] = field(default_factory=list)
    wire: list[tuple[float, bytes, Endpoint, Endpoint]] = field(default_factory=list)
    ring_timeout: float = 60.0
    c: Side | None = None
    others: list[Call] = field(default_factory=list)
    # SRTP: key material for every call (A side, B side), what 402 is offered.
    srtp_keys: tuple[bytes, bytes] | None = None
    callee_srtp: SrtpOffer = "off"

    def calls(self) -> list[Call]:
        return ([self.call] if self.call is not None else []) + self.others

    def sides(self) -> list[Side]:
        return [self.a, self.b] + ([self.c] if self.c is not None else [])

    def execute(self, call: Call | None = None) -> None:
        call = call or self.call
        assert call is not None
        for cmd in call.commands():
            if isinstance(cmd, LegSend):
                self.send(cmd)
            elif isinstance(cmd, CallEnded):
                self.ended.append(cmd)
            else:
                self.on_command(call, cmd)

    def send(self, cmd: LegSend) -> None:
        c = cmd.command
        if isinstance(c, SendRequest):
            self.sw.send_request(c.request, cmd.dest, self.now)
        elif isinstance(c, SendAck):
            self.sw.send_ack_2xx(c.ack, cmd.dest)
        elif isinstance(c, SendResponse):
            with contextlib.suppress(NoSuchTransaction):
                self.sw.send_response(c.response, self.now)
        elif isinstance(c, SendCancel):
            self.sw.cancel(ClientKey(c.invite.branch or "", "INVITE"), self.now)

    def on_command(self, call: Call, cmd: object) -> None:
        """Relay and routing commands: recorded."""
        self.media.append(cmd)

    def switch_events(self) -> None:
        while (event := self.sw.next_event()) is not None:
            owner = next((c for c in self.calls() if c.handle(event, self.now)), None)
            if owner is not None:
                self.execute(owner)
                continue
            if isinstance(event, RequestReceived) and event.request.method == "INVITE":
                self.new_call(event)

    def new_call(self, event: RequestReceived) -> None:
        """The switch's part on a new INVITE: a call that dials 402 at once."""
        self.call = self.make_call(event, caller="401@pbx.test", called="402")
        self.call.media = RELAY
        self.call.dial(
            [
                Target(
                    parse_uri("sip:402@192.0.2.2"),
                    B,
                    config(SW),
                    from_="<sip:401@pbx.test>",
                    to="<sip:402@pbx.test>",
                    srtp=self.callee_srtp,
                )
            ],
            self.now,
        )
        self.execute()

    def make_call(self, event: RequestReceived, *, caller: str, called: str) -> Call:
        """The switch's ``Call`` for an INVITE, its A leg answering on ``event``."""
        leg = InviteSession.uas(config(SW), ids("s"), event.request, event.key, now=self.now)
        return Call(
            leg,
            a_dest=event.source,
            ids=ids("s"),
            media=None,
            now=self.now,
            started_at=T0,
            caller=caller,
            called=called,
            id="c0",
            limits=Limits(ring_timeout=self.ring_timeout),
            srtp_keys=self.srtp_keys,
        )

    def settle(self) -> None:
        for _ in range(50):
            for side in self.sides():
                side.pump(self.now)
            self.switch_events()
            moved = False
            for side in self.sides():
                for data, _dest in side.layer.datagrams_to_send():
                    self.wire.append((self.now + 0.01, data, side.addr, SW))
                    moved = True
            for data, dest in self.sw.datagrams_to_send():
                self.wire.append((self.now + 0.01, data, SW, dest))
                moved = True
            if not moved:
                return

    def run(self, until: float) -> None:
        self.settle()
        while True:
            times = [t for t, *_ in self.wire]
            for side in self.sides():
                times += side.timers()
            times += [t for t in (self.sw.get_timer(),) if t is not None]
            times += [t for c in self.calls() if (t := c.get_timer()) is not None]
            if not times or min(times) > until:
                break
            self.now = max(self.now, min(times))
            due = [w for w in self.wire if w[0] <= self.now]
            self.wire = [w for w in self.wire if w[0] > self.now]
            for _, data, src, dst in due:
                message = parse_message(data)
                if dst == SW:
                    self.sw.receive(message, src, self.now)
                else:
                    target = next(
                        s
                        for s in self.sides()
                        if (s.addr.host, s.addr.port) == (dst.host, dst.port)
                    )
                    target.layer.receive(message, SW, self.now)
            self.sw.handle_timer(self.now)
            for side in self.sides():
                side.fire(self.now)
            for call in self.calls():
                call.handle_timer(self.now)
                self.execute(call)
            self.settle()
        self.now = max(self.now, until)

    def dial(self, body: bytes = OFFER) -> InviteSession:
        leg = InviteSession.uac(
            self.a.config,
            self.a.ids,
            from_="<sip:401@pbx.test>",
            to="<sip:402@pbx.test>",
            request_uri=parse_uri("sip:402@192.0.2.10"),
            now=self.now,
            body=body,
        )
        self.a.legs.append(leg)
        self.settle()
        return leg


def world(*b_steps: tuple[int, bytes], kind: type[World] = World) -> World:
    a = make_side(A, SW, "a")
    b = make_side(B, SW, "b", seed=2)
    b.on_invite = answer_with(*(b_steps or ((180, b""), (200, ANSWER))))
    counter = itertools.count(1)
    sw = TransactionLayer(new_branch=lambda: f"z9hG4bKsw{next(counter)}")
    return kind(a, b, sw)


def test_answered_call_sdp_anchored_both_ways_then_bye_from_callee() -> None:
    w = world()
    caller = w.dial()
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.CONNECTED
    # The callee saw the relay's B-side address, the caller the A side's.
    callee = w.b.leg
    assert callee.invite is not None
    assert b"c=IN IP4 192.0.2.10" in callee.invite.body
    assert b"m=audio 20002 " in callee.invite.body
    answered = [e for _, e in w.a.events if isinstance(e, CallAnswered)]
    assert answered
    assert answered[0].sdp is not None
    assert b"m=audio 20000 " in answered[0].sdp.body
    updates = [m for m in w.media if isinstance(m, MediaUpdate)]
    assert ("a", ("192.0.2.1", 4000)) in [(u.side, u.rtp) for u in updates]
    assert ("b", ("192.0.2.2", 5000)) in [(u.side, u.rtp) for u in updates]
    assert any(isinstance(m, MediaAnswered) for m in w.media)

    callee.bye(w.now)
    w.run(2.0)
    assert caller.terminated
    assert [e.record.outcome for e in w.ended] == [Outcome.ANSWERED]
    record = w.ended[0].record
    assert record.cause == "callee-bye-received"
    assert record.codecs == ("PCMU",)
    assert record.answered_at is not None
    assert record.duration > 0.5
    w.run(40.0)
    assert w.call.finished


def test_busy_callee_gives_486_and_busy_outcome() -> None:
    w = world((486, b""))
    caller = w.dial()
    w.run(1.0)
    failed = [e for _, e in w.a.events if type(e).__name__ == "CallFailed"]
    assert [f.status for f in failed] == [486]  # type: ignore[union-attr]
    assert caller.terminated
    assert [(e.record.outcome, e.record.cause) for e in w.ended] == [(Outcome.BUSY, "486")]


def test_cancel_from_caller_cancels_the_callee() -> None:
    w = world((180, b""))
    caller = w.dial()
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.RINGING
    caller.cancel(w.now)
    w.run(3.0)
    assert w.b.leg.terminated
    assert [e.record.outcome for e in w.ended] == [Outcome.CANCELLED]


def test_ring_timeout_is_no_answer_480() -> None:
    w = world((180, b""))
    w.ring_timeout = 5.0
    w.dial()
    w.run(10.0)
    failed = [e for _, e in w.a.events if type(e).__name__ == "CallFailed"]
    assert [f.status for f in failed] == [480]  # type: ignore[union-attr]
    assert [(e.record.outcome, e.record.cause) for e in w.ended] == [
        (Outcome.NO_ANSWER, "ring-timeout")
    ]


def test_hold_from_caller_is_relayed_with_sdp_anchored() -> None:
    w = world()
    caller = w.dial()
    w.run(1.0)
    held = OFFER.replace(b"o=a 1 1", b"o=a 1 2") + b"a=sendonly\r\n"
    caller.reinvite(held, w.now)
    w.run(2.0)
    reinvites = [e.request for _, e in w.b.events if isinstance(e, InDialogRequestReceived)]
    assert reinvites
    assert b"a=sendonly" in reinvites[0].body
    assert b"192.0.2.10" in reinvites[0].body
    last_a = [m for m in w.media if isinstance(m, MediaUpdate) and m.side == "a"][-1]
    assert (last_a.sends, last_a.receives) == (True, False)


def test_reliable_provisionals_end_to_end_when_both_phones_support_100rel() -> None:
    """RFC 3262 through the B2BUA: the callee is offered 100rel because the caller
    supports it; its reliable 183 (with the answer) is PRACKed by the switch and
    reaches the caller reliably, which PRACKs it; then the 200."""
    w = world()
    w.a.config = config(A, use_100rel=True)

    def on_invite(side: Side, leg: InviteSession, now: float) -> None:
        assert leg.invite is not None
        assert "100rel" in leg.invite.headers.tokens("Supported")
        leg.respond(183, body=ANSWER, reliable=True, now=now)
        leg.respond(200, body=ANSWER, now=now)  # held until the PRACK (RFC 3262 §3)

    w.b.on_invite = on_invite
    caller = w.dial()
    w.run(2.0)
    assert w.call is not None
    assert w.call.state is CallState.CONNECTED
    provisional = [
        e for _, e in w.a.events if isinstance(e, ProvisionalReceived) and e.response.status > 100
    ]
    assert [(p.response.status, p.reliable) for p in provisional] == [(183, True)]
    assert provisional[0].sdp is not None
    assert b"m=audio 20000 " in provisional[0].sdp.body
    # The switch PRACKed the callee's 183; the caller PRACKed ours (the switch's 200
    # to the caller waits for it: the 183 carried the answer).
    assert [e for _, e in w.b.events if isinstance(e, PrackReceived)]
    assert caller.state.name == "CONFIRMED"


def test_a_caller_that_does_not_support_100rel_gets_unreliable_provisionals() -> None:
    w = world()

    def on_invite(side: Side, leg: InviteSession, now: float) -> None:
        assert leg.invite is not None
        assert "100rel" not in leg.invite.headers.tokens("Supported")
        leg.respond(180, now=now)
        leg.respond(200, body=ANSWER, now=now)

    w.b.on_invite = on_invite
    w.dial()
    w.run(2.0)
    provisional = [
        e for _, e in w.a.events if isinstance(e, ProvisionalReceived) and e.response.status > 100
    ]
    assert [(p.response.status, p.reliable) for p in provisional] == [(180, False)]
