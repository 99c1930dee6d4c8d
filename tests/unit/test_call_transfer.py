"""The call core's transfers and pickups, between pure phones on simulated time.

Three phones (401 at ``a``, 402 at ``b``, 403 at ``c``) and the switch's calls, as
in ``test_call``; the test plays the executor's part (``switch.transfer``): it
accepts a REFER, places a blind transfer's new call from a ``LocalOrigin``, and
moves parties from one call to another with ``hand_over`` / ``adopt`` / ``pickup``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import pytest

from switch.call import (
    COMPLETED_ELSEWHERE,
    Call,
    CallState,
    LegSend,
    Limits,
    MediaPlan,
    MediaUpdate,
    Party,
    SrtpOffer,
    Target,
    TransferAbandoned,
    TransferRequested,
)
from switch.sip.dialog_events import (
    CallAnswered,
    CallFailed,
    InDialogRequestReceived,
    InDialogResponseReceived,
    SessionEnded,
    SessionEvent,
)
from switch.sip.endpoint import Endpoint
from switch.sip.events import RequestReceived
from switch.sip.invite import InviteSession, LocalOrigin, SendCancel, SendResponse
from switch.sip.message import Request, Response
from switch.sip.refer import Replaces, parse_replaces, parse_sipfrag, refer_to, replaces_for
from switch.sip.transaction_layer import TransactionLayer
from switch.sip.uri import parse_uri
from tests.unit.sip_legs import ANSWER, OFFER, Side, answer_with, config, ids, make_side
from tests.unit.test_call import RELAY, SW, T0, A, B, World

C = Endpoint("UDP", "192.0.2.3", 5060)
RELAY2 = MediaPlan("192.0.2.10", 30000, 30002)
C_ANSWER = (
    b"v=0\r\no=c 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
)
C_OFFER = C_ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8 0 101") + (
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
HELD = OFFER.replace(b"o=a 1 1", b"o=a 1 2") + b"a=sendonly\r\n"
SDP_OF = {"a": OFFER, "b": ANSWER, "c": C_ANSWER}
REFERRED_BY = "<sip:401@pbx.test>"


def phone(name: str):  # type: ignore[no-untyped-def]
    """How a phone answers what the switch sends in a dialog: 200 to NOTIFY, its
    own SDP as the answer to a re-INVITE."""

    def react(side: Side, leg: InviteSession, event: SessionEvent, now: float) -> None:
        if not isinstance(event, InDialogRequestReceived):
            return
        body = SDP_OF[name] if event.request.method == "INVITE" else b""
        leg.respond_to(event.request, 200, now=now, body=body)

    return react


def target(user: str, dest: Endpoint, srtp: SrtpOffer = "off") -> Target:
    return Target(
        parse_uri(f"sip:{user}@{dest.host}"),
        dest,
        config(SW),
        from_="<sip:401@pbx.test>",
        to=f"<sip:{user}@pbx.test>",
        label=user,
        line=f"{user}@pbx.test",
        srtp=srtp,
    )


@dataclass
class TransferWorld(World):
    """The switch dials 402 (``b``) or 403 (``c``) by Request-URI; an INVITE with
    Replaces is a pickup or a replacement; REFERs wait for the test."""

    refers: list[tuple[Call, TransferRequested]] = field(default_factory=list)
    cancels: list[SendCancel] = field(default_factory=list)
    attempts: dict[int, tuple[Call, Call]] = field(default_factory=dict)  # id(origin)
    origin_responses: list[tuple[LocalOrigin, Response]] = field(default_factory=list)
    abandoned: list[Call] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    srtp: dict[str, SrtpOffer] = field(default_factory=dict)  # what each callee is offered

    def on_command(self, call: Call, cmd: object) -> None:
        if isinstance(cmd, TransferRequested):
            self.refers.append((call, cmd))
        elif isinstance(cmd, TransferAbandoned):
            self.abandoned.append(call)
        else:
            self.media.append(cmd)

    def send(self, cmd: LegSend) -> None:
        if isinstance(cmd.leg, LocalOrigin):
            assert isinstance(cmd.command, SendResponse)
            self.origin_responses.append((cmd.leg, cmd.command.response))
            return
        if isinstance(cmd.command, SendCancel):
            self.cancels.append(cmd.command)
        super().send(cmd)

    def execute(self, call: Call | None = None) -> None:
        super().execute(call)
        while self.origin_responses:
            origin, response = self.origin_responses.pop(0)
            self.on_origin(origin, response)

    def make_call(self, event: RequestReceived, *, caller: str, called: str) -> Call:
        n = next(self._ids)
        leg = InviteSession.uas(config(SW), ids(f"s{n}"), event.request, event.key, now=self.now)
        return Call(
            leg,
            a_dest=event.source,
            ids=ids(f"s{n}"),
            media=None,
            now=self.now,
            started_at=T0,
            caller=caller,
            called=called,
            id=f"c{n}",
            limits=Limits(ring_timeout=self.ring_timeout),
            srtp_keys=self.srtp_keys,
        )

    def new_call(self, event: RequestReceived) -> None:
        if "Replaces" in event.request.headers:
            self.replace(event)
            return
        user = event.request.uri.user or ""
        call = self.make_call(event, caller="401@pbx.test", called=user)
        call.a.line = "401@pbx.test"
        call.media = RELAY if self.call is None else RELAY2
        if self.call is None:
            self.call = call
        else:
            self.others.append(call)
        dest = {"402": B, "403": C}[user]
        call.dial([target(user, dest, self.srtp.get(user, "off"))], self.now)
        self.execute(call)

    # the executor's part (switch.transfer), played by the test -------------------------
    def blind(self, status: int = 0) -> Call:
        """Accept the pending REFER and dial its target from a ``LocalOrigin``."""
        x, cmd = self.refers.pop(0)
        assert x.accept_transfer(cmd, self.now)
        user = cmd.refer_to.uri.user or ""
        origin = LocalOrigin.local(
            config(SW),
            ids(f"t{len(self.attempts)}"),
            from_=REFERRED_BY,
            to=f"<sip:{user}@pbx.test>",
            request_uri=parse_uri(f"sip:{user}@pbx.test"),
            now=self.now,
            body=x.transfer_offer(),
        )
        t = Call(
            origin,
            a_dest=A,
            ids=ids(f"t{len(self.attempts)}"),
            media=RELAY2,
            now=self.now,
            started_at=T0,
            caller="401@pbx.test",
            called=user,
            id=f"t{len(self.attempts)}",
            limits=Limits(ring_timeout=self.ring_timeout),
            srtp_keys=self.srtp_keys,
        )
        t.leg_headers = (("Referred-By", REFERRED_BY),)
        self.others.append(t)
        self.attempts[id(origin)] = (x, t)
        self.execute(x)
        if status:
            t.reject(status, self.now, reason="Destination barred")
        else:
            dest = {"402": B, "403": C}[user]
            t.dial([target(user, dest, self.srtp.get(user, "off"))], self.now)
        self.execute(t)
        return t

    def on_origin(self, origin: LocalOrigin, response: Response) -> None:
        x, t = self.attempts[id(origin)]
        if response.status < 200:
            x.transfer_progress(response.status, response.reason, self.now)
        elif response.status >= 300:
            x.transfer_failed(response.status, response.reason, self.now)
        else:
            transferee = x.hand_over(self.now)
            assert t.adopt(transferee, t.a, self.now)
        self.execute(x)
        self.execute(t)

    def attended(self, into: Call) -> None:
        x, cmd = self.refers.pop(0)
        replaces = cmd.refer_to.replaces
        assert replaces is not None
        found = into.party_named(replaces)
        assert found is not None
        assert x.accept_transfer(cmd, self.now)
        transferee = x.hand_over(self.now)
        assert into.adopt(transferee, found[0], self.now)
        self.execute(x)
        self.execute(into)

    def replace(self, event: RequestReceived) -> None:
        replaces = parse_replaces(event.request.headers.get("Replaces") or "")
        for call in self.calls():
            found = call.party_named(replaces)
            if found is None:
                continue
            leg = InviteSession.uas(config(SW), ids("p"), event.request, event.key, now=self.now)
            new = Party(leg, "b", event.source, label="403", line="403@pbx.test")
            if call.ringing(found[0]):
                assert call.pickup(new, self.now)
            else:
                assert call.adopt_new(new, found[0], self.now)
            self.execute(call)
            return
        raise AssertionError("no dialog named")


def transfer_world(
    c_steps: tuple[tuple[int, bytes], ...] = ((180, b""), (200, C_ANSWER)),
) -> TransferWorld:
    a = make_side(A, SW, "a")
    b = make_side(B, SW, "b", seed=2)
    c = make_side(C, SW, "c", seed=3)
    b.on_invite = answer_with((180, b""), (200, ANSWER))
    c.on_invite = answer_with(*c_steps)
    for side, name in ((a, "a"), (b, "b"), (c, "c")):
        side.react = phone(name)
    counter = itertools.count(1)
    sw = TransactionLayer(new_branch=lambda: f"z9hG4bKsw{next(counter)}")
    return TransferWorld(a, b, sw, c=c)


def call_from_a(w: TransferWorld, to: str) -> InviteSession:
    leg = InviteSession.uac(
        w.a.config,
        w.a.ids,
        from_="<sip:401@pbx.test>",
        to=f"<sip:{to}@pbx.test>",
        request_uri=parse_uri(f"sip:{to}@192.0.2.10"),
        now=w.now,
        body=OFFER,
    )
    w.a.legs.append(leg)
    w.settle()
    return leg


def requests(side: Side, method: str, leg: InviteSession | None = None) -> list[Request]:
    return [
        e.request
        for _, e in side.events
        if isinstance(e, InDialogRequestReceived)
        and e.request.method == method
        and (leg is None or e.request.call_id == leg.call_id)
    ]


def notifies(side: Side) -> list[tuple[int, str, str]]:
    """(sipfrag status, Subscription-State, Event) of each NOTIFY, in order."""
    out = []
    for request in requests(side, "NOTIFY"):
        assert request.headers.get("Content-Type") == "message/sipfrag;version=2.0"
        out.append(
            (
                parse_sipfrag(request.body).status,
                request.headers.get("Subscription-State") or "",
                request.headers.get("Event") or "",
            )
        )
    return out


def refer(leg: InviteSession, w: World, value: str) -> None:
    leg.request("REFER", w.now, extra=[("Refer-To", value), ("Referred-By", REFERRED_BY)])


def refer_status(side: Side) -> list[int]:
    return [
        e.response.status
        for _, e in side.events
        if isinstance(e, InDialogResponseReceived) and e.request.method == "REFER"
    ]


def port_of(body: bytes) -> int:
    match = re.search(rb"m=audio (\d+) ", body)
    assert match is not None
    return int(match.group(1))


def connected(w: TransferWorld) -> tuple[InviteSession, Call]:
    caller = call_from_a(w, "402")
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.CONNECTED
    return caller, w.call


def referred(
    w: TransferWorld, value: str = "<sip:403@pbx.test>", *, by_callee: bool = False
) -> tuple[InviteSession, Call]:
    """A connected call whose caller (or callee) has sent a REFER naming ``value``."""
    caller, x = connected(w)
    refer(w.b.leg if by_callee else caller, w, value)
    w.run(1.5)
    return caller, x


# ------------------------------------------------------------------ blind transfer


def test_blind_transfer_joins_the_transferee_and_the_target_then_releases_the_referrer() -> None:
    w = transfer_world()
    caller, x = referred(w)
    ((_, cmd),) = w.refers
    assert cmd.referrer.leg is x.a.leg
    assert cmd.transferee is x.winner
    assert str(cmd.refer_to.target()) == "sip:403@pbx.test"
    t = w.blind()
    w.run(3.0)

    assert refer_status(w.a) == [202]
    # RFC 3515 §2.4.5: 100 Trying, then progress, then the final one terminating it.
    assert notifies(w.a) == [
        (100, "active;expires=60", "refer"),
        (180, "active;expires=60", "refer"),
        (200, "terminated;reason=noresource", "refer"),
    ]
    # The target saw the new call with Referred-By and the transferee's codec, on the
    # new call's relay port.
    assert w.c is not None
    invite = w.c.leg.invite
    assert invite is not None
    assert invite.headers.get("Referred-By") == REFERRED_BY
    assert port_of(invite.body) == RELAY2.b_port
    # The transferee got a re-INVITE towards the new call's relay, both ways.
    (reinvite,) = requests(w.b, "INVITE")
    assert port_of(reinvite.body) == RELAY2.a_port
    assert b"a=sendrecv" in reinvite.body
    # The referrer was released after its final NOTIFY.
    assert caller.terminated
    ended = [e for _, e in w.a.events if isinstance(e, SessionEnded)]
    assert [e.reason for e in ended] == ["bye-received"]
    assert [(e.record.id, e.record.cause) for e in w.ended] == [("c0", "transferred")]
    assert t.state is CallState.CONNECTED
    assert t.a.leg.call_id == w.b.leg.call_id
    assert t.winner is not None
    assert t.winner.leg.call_id == w.c.leg.call_id

    # Talking: 402's hangup ends the new call and reaches 403.
    w.b.leg.bye(w.now)
    w.run(5.0)
    assert w.c.leg.terminated
    assert [e.record.cause for e in w.ended] == ["transferred", "caller-bye-received"]
    w.run(60.0)
    assert x.finished
    assert t.finished


def test_blind_transfer_by_the_callee_moves_the_caller() -> None:
    w = transfer_world()
    caller, x = referred(w, by_callee=True)
    ((_, cmd),) = w.refers
    assert cmd.referrer is x.winner
    t = w.blind()
    w.run(3.0)
    assert notifies(w.b)[-1][0] == 200
    (reinvite,) = requests(w.a, "INVITE")
    assert port_of(reinvite.body) == RELAY2.a_port
    assert not caller.terminated
    assert w.b.leg.terminated
    media = [m for m in w.media if isinstance(m, MediaUpdate) and m.side == "a"]
    assert media[-1].rtp == ("192.0.2.1", 4000)
    assert t.winner is not None


def test_a_busy_target_is_reported_and_the_call_stays_as_it_was() -> None:
    w = transfer_world(((486, b""),))
    caller, x = referred(w)
    w.blind()
    w.run(3.0)
    assert notifies(w.a)[-1] == (486, "terminated;reason=noresource", "refer")
    assert x.state is CallState.CONNECTED
    assert not caller.terminated
    assert requests(w.b, "INVITE") == []  # the transferee never moved
    # The referrer takes the call back (off hold): relayed to the transferee as usual.
    caller.reinvite(OFFER.replace(b"o=a 1 1", b"o=a 1 3"), w.now)
    w.run(4.0)
    assert len(requests(w.b, "INVITE")) == 1
    assert not x.transferring


def test_a_barred_target_gives_its_reason_in_the_final_notify() -> None:
    w = transfer_world()
    _caller, x = referred(w, "<sip:0899123456@pbx.test>")
    w.blind(status=403)
    w.run(3.0)
    final = requests(w.a, "NOTIFY")[-1]
    assert final.body == b"SIP/2.0 403 Destination barred\r\n"
    assert x.state is CallState.CONNECTED


def test_the_referrer_may_leave_at_once_and_the_transferee_still_reaches_the_target() -> None:
    w = transfer_world(((180, b""),))
    caller, x = referred(w)
    w.blind()
    w.run(2.0)
    caller.bye(w.now)  # a blind transfer: the phone hangs up after the 202
    w.run(2.5)
    assert x.state is CallState.CONNECTED  # the transferee waits
    assert w.c is not None
    w.c.leg.respond(200, body=C_ANSWER, now=w.now)
    w.run(4.0)
    (reinvite,) = requests(w.b, "INVITE")
    assert port_of(reinvite.body) == RELAY2.a_port
    assert [e.record.cause for e in w.ended] == ["transferred"]
    assert len(requests(w.a, "NOTIFY")) == 2  # none after it left


def test_the_transferee_is_released_when_the_referrer_left_and_the_target_fails() -> None:
    w = transfer_world(((180, b""),))
    caller, _x = referred(w)
    w.blind()
    w.run(2.0)
    caller.bye(w.now)
    w.run(2.5)
    assert w.c is not None
    w.c.leg.respond(480, now=w.now)
    w.run(4.0)
    assert w.b.leg.terminated
    # The attempt's own row (the target's answer), then the first call's.
    assert [(e.record.id, e.record.cause) for e in w.ended] == [
        ("t0", "480"),
        ("c0", "transfer-failed"),
    ]


def test_the_transferee_hanging_up_abandons_the_attempt() -> None:
    w = transfer_world(((180, b""),))
    caller, x = referred(w)
    t = w.blind()
    w.run(2.0)
    w.b.leg.bye(w.now)
    w.run(3.0)
    assert w.abandoned == [x]
    assert caller.terminated
    # The executor then drops the attempt: the target's INVITE is cancelled.
    t.hang_up("transfer-abandoned", w.now)
    w.execute(t)
    w.run(6.0)
    assert w.c is not None
    assert w.c.leg.terminated


@pytest.mark.parametrize(
    ("value", "status"),
    [("<sip:403@pbx.test", 400), ("<sip:403@pbx.test?Replaces=nocolon>", 400)],
)
def test_a_malformed_refer_is_answered_400(value: str, status: int) -> None:
    w = transfer_world()
    referred(w, value)
    assert refer_status(w.a) == [status]
    assert w.refers == []


def test_a_second_refer_during_a_transfer_is_refused_491() -> None:
    w = transfer_world(((180, b""),))
    caller, x = referred(w)
    w.blind()
    w.run(2.0)
    refer(caller, w, "<sip:404@pbx.test>")  # one transfer at a time
    w.run(2.5)
    assert refer_status(w.a) == [202, 491]
    assert x.transferring


def test_the_executor_may_refuse_a_transfer() -> None:
    w = transfer_world()
    _caller, x = referred(w)
    x2, cmd = w.refers.pop()
    x2.refuse_transfer(cmd, 403, w.now, reason="Transfer not allowed")
    w.execute(x2)
    w.run(2.0)
    assert refer_status(w.a) == [403]
    assert not x.transferring


# --------------------------------------------------------------- attended transfer


def consultation(
    w: TransferWorld, *, hold_target: bool = False
) -> tuple[InviteSession, InviteSession, Call, Call]:
    """401 calls 402 (X), holds it, calls 403 (Y)."""
    caller, x = connected(w)
    caller.reinvite(HELD, w.now)
    w.run(1.5)
    consult = call_from_a(w, "403")
    w.run(2.5)
    (y,) = w.others
    assert y.state is CallState.CONNECTED
    if hold_target:
        consult.reinvite(HELD, w.now)
        w.run(3.0)
    return caller, consult, x, y


def attended_refer(caller: InviteSession, consult: InviteSession, w: TransferWorld) -> None:
    assert consult.dialog is not None
    replaces = replaces_for(consult.dialog)
    refer(caller, w, refer_to(parse_uri("sip:403@pbx.test"), replaces))


def test_attended_transfer_moves_the_held_transferee_into_the_consultation() -> None:
    w = transfer_world()
    caller, consult, _x, y = consultation(w)
    held = requests(w.b, "INVITE")
    assert b"a=sendonly" in held[0].body
    attended_refer(caller, consult, w)
    w.run(3.5)
    w.attended(y)
    w.run(5.0)
    # 402 is taken off hold and pointed at the consultation's relay side a.
    resumed = requests(w.b, "INVITE")[-1]
    assert port_of(resumed.body) == RELAY2.a_port
    assert b"a=sendrecv" in resumed.body
    assert [n[0] for n in notifies(w.a)] == [100, 200]
    assert caller.terminated
    assert consult.terminated
    assert y.state is CallState.CONNECTED
    assert y.a.leg.call_id == w.b.leg.call_id
    assert [e.record.cause for e in w.ended] == ["transferred"]
    updates = [m for m in w.media if isinstance(m, MediaUpdate)]
    assert updates[-1].side == "a"
    assert updates[-1].rtp == ("192.0.2.2", 5000)
    # The joined call ends normally.
    assert w.c is not None
    w.c.leg.bye(w.now)
    w.run(7.0)
    assert w.b.leg.terminated


def test_attended_transfer_resumes_a_target_left_on_hold() -> None:
    w = transfer_world()
    caller, consult, _x, y = consultation(w, hold_target=True)
    assert w.c is not None
    assert b"a=sendonly" in requests(w.c, "INVITE")[0].body
    attended_refer(caller, consult, w)
    w.run(3.5)
    w.attended(y)
    w.run(6.0)
    resumed = requests(w.c, "INVITE")[-1]
    assert b"a=sendrecv" in resumed.body
    assert port_of(resumed.body) == RELAY2.b_port


def test_transfer_while_ringing_puts_the_transferee_in_the_ringing_call() -> None:
    w = transfer_world(((180, b""),))
    caller, _x = connected(w)
    caller.reinvite(HELD, w.now)
    w.run(1.5)
    consult = call_from_a(w, "403")
    w.run(2.5)
    (y,) = w.others
    assert y.state is CallState.RINGING
    # Poly with allowTransferOnProceeding: Replaces names the early dialog.
    (early,) = consult.dialogs.values()
    refer(caller, w, refer_to(parse_uri("sip:403@pbx.test"), replaces_for(early)))
    w.run(3.0)
    w.attended(y)
    w.run(3.5)
    failed = [e for _, e in w.a.events if isinstance(e, CallFailed)]
    assert [f.status for f in failed] == [487]  # the consultation INVITE
    assert caller.terminated
    assert len(requests(w.b, "INVITE")) == 1  # only the hold, while 403 rings
    assert w.c is not None
    w.c.leg.respond(200, body=C_ANSWER, now=w.now)
    w.run(5.0)
    resumed = requests(w.b, "INVITE")[-1]
    assert port_of(resumed.body) == RELAY2.a_port
    assert b"a=sendrecv" in resumed.body
    assert y.record().answered_at is not None


def test_transfer_while_ringing_releases_the_transferee_if_nobody_answers() -> None:
    w = transfer_world(((180, b""),))
    w.ring_timeout = 5.0
    caller, _x = connected(w)
    consult = call_from_a(w, "403")
    w.run(2.5)
    (y,) = w.others
    (early,) = consult.dialogs.values()
    refer(caller, w, refer_to(parse_uri("sip:403@pbx.test"), replaces_for(early)))
    w.run(3.0)
    w.attended(y)
    w.run(10.0)
    assert w.b.leg.terminated
    assert [e.record.outcome for e in w.ended][-1] == "no_answer"


# ------------------------------------------------------------------------- pickup


def pickup_invite(w: TransferWorld, replaces: Replaces, body: bytes = C_OFFER) -> InviteSession:
    assert w.c is not None
    leg = InviteSession.uac(
        w.c.config,
        w.c.ids,
        from_="<sip:403@pbx.test>",
        to="<sip:402@pbx.test>",
        request_uri=parse_uri("sip:402@192.0.2.10"),
        now=w.now,
        body=body,
        extra=[("Replaces", str(replaces))],
    )
    w.c.legs.append(leg)
    w.settle()
    return leg


@pytest.mark.parametrize("as_the_phone_sees_it", [True, False])
def test_pickup_of_a_ringing_phone_answers_both_and_cancels_it(as_the_phone_sees_it: bool) -> None:
    w = transfer_world()
    w.b.on_invite = answer_with((180, b""))
    caller = call_from_a(w, "402")
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.RINGING
    ringing = w.b.leg.dialog
    assert ringing is not None
    # BLF keys copy the watched phone's view (to-tag = its own tag); the RFC's is ours.
    replaces = Replaces(ringing.call_id, ringing.local_tag, ringing.remote_tag, True)
    if not as_the_phone_sees_it:
        replaces = Replaces(ringing.call_id, ringing.remote_tag, ringing.local_tag, True)
    picker = pickup_invite(w, replaces)
    w.run(3.0)
    assert w.b.leg.terminated
    assert [c.reason for c in w.cancels] == [COMPLETED_ELSEWHERE]
    assert picker.state.name == "CONFIRMED"
    assert caller.state.name == "CONFIRMED"
    call = w.call
    assert call.state is CallState.CONNECTED
    assert call.winner is not None
    assert call.winner.leg.call_id == picker.call_id
    updates = [m for m in w.media if isinstance(m, MediaUpdate) and m.side == "b"]
    assert updates[-1].rtp == ("192.0.2.3", 6000)
    # Both answered by the switch on PCMU (the caller's only codec), each on its
    # side of the relay.
    (to_caller,) = [e.sdp for _, e in w.a.events if isinstance(e, CallAnswered)]
    (to_picker,) = [e.sdp for _, e in w.c.events if isinstance(e, CallAnswered)]  # type: ignore[union-attr]
    assert to_caller is not None
    assert to_picker is not None
    assert b"m=audio 20000 RTP/AVP 0\r\n" in to_caller.body
    assert b"m=audio 20002 RTP/AVP 0\r\n" in to_picker.body
    assert call.record().codecs == ("PCMU",)
    assert [leg.target for leg in call.record().legs] == ["401@pbx.test", "402", "403"]


def test_no_common_codec_means_no_pickup() -> None:
    w = transfer_world()
    w.b.on_invite = answer_with((180, b""))
    call_from_a(w, "402")
    w.run(1.0)
    assert w.call is not None
    g722 = C_ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 9")
    assert not w.call.can_pick_up(g722)
    assert w.call.can_pick_up(C_OFFER)
    assert not w.call.can_pick_up(b"not sdp")


def test_invite_with_replaces_takes_a_bridged_phone_s_place() -> None:
    w = transfer_world()
    _caller, x = connected(w)
    dialog = w.b.leg.dialog
    assert dialog is not None
    newcomer = pickup_invite(w, replaces_for(dialog))
    w.run(3.0)
    assert w.b.leg.terminated  # replaced: BYE
    (reoffer,) = requests(w.a, "INVITE")
    assert b"m=audio 20000 " in reoffer.body  # the caller's side of the same relay
    assert b"RTP/AVP 8 0 101" in reoffer.body  # the newcomer's offer, anchored
    assert newcomer.state.name == "CONFIRMED"
    assert x.winner is not None
    assert x.winner.leg.call_id == newcomer.call_id
    updates = [m for m in w.media if isinstance(m, MediaUpdate) and m.side == "b"]
    assert updates[-1].rtp == ("192.0.2.3", 6000)


def test_ringing_line_finds_the_b_leg_of_a_line() -> None:
    w = transfer_world()
    w.b.on_invite = answer_with((180, b""))
    call_from_a(w, "402")
    w.run(1.0)
    assert w.call is not None
    party = w.call.ringing_line("402@pbx.test")
    assert party is not None
    assert w.call.ringing(party)
    assert w.call.ringing_line("403@pbx.test") is None
