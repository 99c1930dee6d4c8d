"""InviteSession legs end to end: two pure stacks, a fake network, simulated time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.sip.dialog_events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallFailed,
    InDialogRequestReceived,
    InDialogResponseReceived,
    PrackReceived,
    ProvisionalReceived,
    RetryScheduled,
    SessionEnded,
    SessionTimerStarted,
)
from switch.sip.invite import (
    CALL_TRANSITIONS,
    OFFER_ANSWER,
    CallState,
    InviteSession,
    LocalOrigin,
    OfferAnswer,
    OfferInput,
    OfferPending,
    OfferState,
    SendAck,
    SendRequest,
    SendResponse,
    SessionError,
)
from switch.sip.message import Request, Response, make_response
from switch.sip.uri import parse_uri
from tests.unit.sip_legs import ANSWER, OFFER, A, Net, Side, answer_with, config, ids, net

HOLD = OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
HOLD_OLD = OFFER.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4 0.0.0.0")
T1 = 0.5


def answer_reinvites(side: Side, leg: InviteSession, event: object, now: float) -> None:
    if isinstance(event, InDialogRequestReceived):
        body = ANSWER if event.sdp is not None and event.sdp.kind == "offer" else b""
        leg.respond_to(event.request, 200, body=body, now=now)


def established() -> Net:
    n = net()
    n.a.react = answer_reinvites
    n.b.react = answer_reinvites
    n.call()
    n.run(1)
    assert n.a.leg.state is CallState.CONFIRMED
    assert n.b.leg.state is CallState.CONFIRMED
    return n


def test_basic_call_offer_in_invite_and_bye_from_caller() -> None:
    n = established()
    answered = n.a.of(CallAnswered)[0]
    assert isinstance(answered, CallAnswered)
    assert answered.sdp is not None
    assert answered.sdp.kind == "answer"
    assert answered.sdp.body == ANSWER
    assert n.b.leg.initial_sdp is not None
    assert n.b.leg.initial_sdp.kind == "offer"
    assert n.a.leg.offer_answer.state is OfferState.IDLE
    assert n.b.leg.offer_answer.state is OfferState.IDLE
    ack = n.sent(n.a, "ACK")[0]
    assert isinstance(ack, Request)
    assert ack.cseq.seq == 1
    assert ack.cseq.method == "ACK"
    assert ack.uri == parse_uri("sip:sw@192.0.2.2:5060")  # remote target = Contact
    n.a.leg.bye(n.now)
    n.run(5)
    assert n.a.leg.state is CallState.TERMINATED
    assert n.b.leg.state is CallState.TERMINATED
    assert n.a.of(SessionEnded) == [SessionEnded("bye-sent")]
    assert n.b.of(SessionEnded) == [SessionEnded("bye-received")]


def test_bye_from_callee() -> None:
    n = established()
    n.b.leg.bye(n.now)
    n.run(5)
    assert n.a.leg.terminated
    assert n.b.leg.terminated
    bye = n.sent(n.b, "BYE")[0]
    assert isinstance(bye, Request)
    assert bye.from_tag == n.b.leg.local_tag
    assert bye.to_tag == n.a.leg.local_tag
    assert bye.cseq.seq == 1  # the callee's first request in the dialog


def test_lost_2xx_is_retransmitted_and_acked_once_per_copy() -> None:
    lost: list[object] = []

    def drop(src: object, m: object) -> bool:
        if isinstance(m, Response) and m.status == 200 and not lost:
            lost.append(m)
            return True
        return False

    n = net()
    n.drop = drop
    n.call()
    n.run(5)
    assert lost
    assert n.a.leg.state is CallState.CONFIRMED
    assert n.b.leg.state is CallState.CONFIRMED
    oks = n.sent(n.b, "200 INVITE")
    assert len(oks) == 1  # the retransmission at T1, after the lost one
    assert len(n.sent(n.a, "ACK")) == 1
    deadline = n.b.leg.get_timer()
    assert deadline is None or deadline > 100


def test_lost_ack_gets_the_2xx_again_and_the_same_ack_back() -> None:
    drops = iter([True, False, False, False])

    def drop(src: object, m: object) -> bool:
        return isinstance(m, Request) and m.method == "ACK" and next(drops)

    n = net()
    n.drop = drop
    n.call()
    n.run(5)
    acks = n.sent(n.a, "ACK")
    assert len(acks) == 1
    assert n.b.leg.state is CallState.CONFIRMED
    lost = [m for _, label, m in n.log if label.startswith("lost")]
    assert lost[0].to_bytes() == acks[0].to_bytes()  # §13.2.2.4: the same ACK again
    assert len(n.b.of(CallConfirmed)) == 1


def test_ack_never_arrives_bye_after_64_t1() -> None:
    n = net()
    n.drop = lambda src, m: isinstance(m, Request) and m.method == "ACK"
    n.call()
    n.run(60)
    assert n.b.of(SessionEnded) == [SessionEnded("ack-timeout")]
    times = [
        t
        for t, label, m in n.log
        if label.startswith("192.0.2.2")
        and isinstance(m, Response)
        and m.status == 200
        and m.cseq.method == "INVITE"
    ]
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(gaps) == 4.0
    bye = n.sent(n.b, "BYE")
    assert bye
    assert n.log[-1][0] >= 32
    assert n.a.of(SessionEnded) == [SessionEnded("bye-received")]


def test_late_offer_in_2xx_answer_in_ack() -> None:
    n = net()
    n.b.on_invite = answer_with((200, OFFER))
    n.a.react = lambda side, leg, ev, now: (
        leg.ack(ANSWER, now) if isinstance(ev, CallAnswered) and ev.awaiting_answer else None
    )
    n.call(body=b"")
    n.run(3)
    answered = n.a.of(CallAnswered)[0]
    assert isinstance(answered, CallAnswered)
    assert answered.awaiting_answer
    confirmed = n.b.of(CallConfirmed)[0]
    assert isinstance(confirmed, CallConfirmed)
    assert confirmed.sdp is not None
    assert confirmed.sdp.kind == "answer"
    assert n.sent(n.a, "ACK")[0].body == ANSWER
    assert n.a.leg.offer_answer.state is OfferState.IDLE
    assert n.b.leg.offer_answer.state is OfferState.IDLE


@pytest.mark.parametrize("style", [HOLD, HOLD_OLD])
@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_hold_and_resume(style: bytes, method: str) -> None:
    n = established()
    send = n.a.leg.reinvite if method == "INVITE" else n.a.leg.update
    send(style, n.now)
    n.run(n.now + 2)
    got = [e for e in n.b.of(InDialogRequestReceived)]
    assert got
    assert isinstance(got[-1], InDialogRequestReceived)
    assert got[-1].request.method == method
    assert got[-1].sdp is not None
    assert got[-1].sdp.kind == "offer"
    assert got[-1].sdp.body == style
    done = n.a.of(InDialogResponseReceived)[-1]
    assert isinstance(done, InDialogResponseReceived)
    assert done.response.status == 200
    assert done.sdp is not None
    assert done.sdp.kind == "answer"
    send(OFFER, n.now)  # resume
    n.run(n.now + 2)
    assert len(n.a.of(InDialogResponseReceived)) == 2
    assert n.a.leg.offer_answer.completed == 3
    assert n.b.leg.offer_answer.completed == 3
    assert n.a.leg.state is CallState.CONFIRMED


def test_no_second_offer_while_one_is_pending() -> None:
    n = established()
    n.b.react = None  # B does not answer the re-INVITE yet
    n.a.leg.reinvite(HOLD, n.now)
    with pytest.raises(OfferPending):
        n.a.leg.update(OFFER, n.now)
    n.run(n.now + 1)
    pending = n.b.of(InDialogRequestReceived)[-1]
    assert isinstance(pending, InDialogRequestReceived)
    # B's own UPDATE offer while it owes an answer: refused locally too.
    with pytest.raises(OfferPending):
        n.b.leg.update(OFFER, n.now)


def test_glare_on_reinvite_491_then_randomised_retries() -> None:
    n = established()
    n.a.leg.reinvite(HOLD, n.now)
    n.b.leg.reinvite(HOLD, n.now)
    start = n.now
    n.settle()
    n.run(start + 0.2)
    a_retry = n.a.of(RetryScheduled)
    b_retry = n.b.of(RetryScheduled)
    assert a_retry
    assert b_retry
    assert isinstance(a_retry[0], RetryScheduled)
    assert isinstance(b_retry[0], RetryScheduled)
    # §14.1: the Call-ID owner (A, the caller) waits 2.1-4 s, the other 0-2 s.
    assert 2.1 <= a_retry[0].retry_at - start <= 4.05
    assert 0 <= b_retry[0].retry_at - start <= 2.05
    n.run(start + 10)
    a_ok = [
        e
        for e in n.a.of(InDialogResponseReceived)
        if isinstance(e, InDialogResponseReceived) and e.response.status == 200
    ]
    b_ok = [
        e
        for e in n.b.of(InDialogResponseReceived)
        if isinstance(e, InDialogResponseReceived) and e.response.status == 200
    ]
    assert a_ok
    assert b_ok
    assert n.a.leg.offer_answer.state is OfferState.IDLE
    assert n.b.leg.offer_answer.state is OfferState.IDLE


def test_cancel_before_answer_gets_487() -> None:
    n = net()
    n.b.on_invite = answer_with((180, b""))
    leg = n.call()
    n.run(1)
    leg.cancel(n.now)
    n.run(5)
    failed = n.a.of(CallFailed)
    assert failed
    assert isinstance(failed[0], CallFailed)
    assert failed[0].status == 487
    assert n.b.of(CallCancelled)
    assert n.a.of(SessionEnded) == [SessionEnded("cancelled", 487)]
    assert leg.terminated
    assert n.b.leg.terminated


def test_cancel_crossing_200_is_acked_then_byed() -> None:
    n = net()
    n.b.on_invite = answer_with((180, b""))
    leg = n.call()
    n.run(1)
    n.b.leg.respond(200, body=ANSWER, now=n.now)  # 200 and CANCEL cross on the wire
    leg.cancel(n.now)
    n.run(5)
    assert n.sent(n.a, "ACK")
    assert n.sent(n.a, "BYE")
    assert n.a.of(SessionEnded) == [SessionEnded("cancelled", 200)]
    assert leg.terminated
    assert n.b.leg.terminated
    assert n.b.of(SessionEnded) == [SessionEnded("bye-received")]


def test_cancel_not_sent_before_a_provisional() -> None:
    n = net()
    n.b.on_invite = None  # B says nothing yet (the layer's 100 Trying only)
    n.drop = lambda src, m: isinstance(m, Response) and m.status == 100
    leg = n.call()
    leg.cancel(n.now)
    n.run(0.3)
    assert not n.sent(n.a, "CANCEL")  # §9.1: held until a provisional


def test_session_timer_refresh_by_caller_with_update() -> None:
    n = net(a_session_expires=90, b_session_expires=90)
    n.a.react = answer_reinvites
    n.b.react = answer_reinvites
    n.call()
    n.run(200)
    started = n.a.of(SessionTimerStarted)[0]
    assert started == SessionTimerStarted(90, "uac", True)
    updates = n.sent(n.a, "UPDATE")
    assert len(updates) >= 4  # every 45 s
    assert all(not u.body for u in updates)
    assert n.a.leg.state is CallState.CONFIRMED
    assert n.b.leg.state is CallState.CONFIRMED


def test_session_expiry_sends_bye_at_interval_minus_margin() -> None:
    n = net(a_session_expires=90, b_session_expires=90)
    n.drop = lambda src, m: isinstance(m, Request) and m.method == "UPDATE"
    n.call()
    n.run(300)
    assert n.b.of(SessionEnded) == [SessionEnded("session-expired")]
    bye_at = next(t for t, label, m in n.log if isinstance(m, Request) and m.method == "BYE")
    answered_at = 0.04
    assert bye_at == pytest.approx(answered_at + 90 - 30 + 0.02, abs=0.05)  # min(32, 90/3)


def test_switch_refreshes_when_the_phone_lacks_timer_support() -> None:
    n = net(a_session_expires=None, b_session_expires=120)
    n.a.react = answer_reinvites
    n.b.react = answer_reinvites
    n.call()
    n.run(200)
    assert n.b.of(SessionTimerStarted)[0] == SessionTimerStarted(120, "uas", True)
    assert "Require" not in n.sent(n.b, "200 INVITE")[0].headers
    assert n.sent(n.b, "UPDATE")  # the switch (UAS) refreshes
    assert n.a.leg.state is CallState.CONFIRMED


def test_422_then_retry_with_min_se() -> None:
    n = net(a_session_expires=90, b_session_expires=1800, b_min_se=300)
    n.call()
    n.run(3)
    assert n.sent(n.b, "422 INVITE")
    invites = n.sent(n.a, "INVITE")
    assert [i.cseq.seq for i in invites] == [1, 2]
    assert invites[1].headers.get("Session-Expires") == "300"
    assert n.a.legs[0].state is CallState.CONFIRMED
    assert n.b.legs[-1].state is CallState.CONFIRMED


def test_prack_retransmission_and_matching() -> None:
    first: list[object] = []

    def drop(src: object, m: object) -> bool:
        if isinstance(m, Response) and m.status == 183 and not first:
            first.append(m)
            return True
        return False

    n = net(a_use_100rel=True)
    n.drop = drop
    n.b.on_invite = lambda side, leg, now: leg.respond(183, body=ANSWER, reliable=True, now=now)
    n.b.react = lambda side, leg, ev, now: (
        leg.respond(200, body=ANSWER, now=now) if isinstance(ev, PrackReceived) else None
    )
    n.call()
    n.run(5)
    provisional = [
        e for e in n.a.of(ProvisionalReceived) if isinstance(e, ProvisionalReceived) and e.reliable
    ]
    assert len(provisional) == 1
    assert provisional[0].sdp is not None
    assert provisional[0].sdp.kind == "answer"
    pracks = n.sent(n.a, "PRACK")
    assert len(pracks) == 1
    rseq = provisional[0].response.headers.get("RSeq")
    assert pracks[0].headers.get("RAck") == f"{rseq} 1 INVITE"
    assert n.sent(n.b, "200 PRACK")
    assert n.a.leg.state is CallState.CONFIRMED
    # The 2xx repeats the answer: not a new offer.
    assert n.a.leg.offer_answer.state is OfferState.IDLE


def test_unacknowledged_reliable_provisional_gives_up_with_5xx() -> None:
    n = net(a_use_100rel=True)
    n.drop = lambda src, m: isinstance(m, Request) and m.method == "PRACK"
    n.b.on_invite = lambda side, leg, now: leg.respond(180, reliable=True, now=now)
    n.call()
    n.run(40)
    times = [t for t, _, m in n.log if isinstance(m, Response) and m.status == 180]
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps[:3] == [0.5, 1.0, 2.0]
    assert gaps[-1] == 16.0
    assert n.b.of(SessionEnded) == [SessionEnded("prack-timeout", 504)]
    assert n.a.of(CallFailed)


def test_reliable_1xx_refused_when_caller_lacks_100rel() -> None:
    n = net()
    n.b.on_invite = None
    n.call()
    n.run(0.1)
    with pytest.raises(SessionError, match="100rel"):
        n.b.leg.respond(183, reliable=True, now=n.now)


def test_in_dialog_request_with_unknown_tag_gets_481() -> None:
    """§12.2.2: our To tag with a From tag that names none of the leg's dialogs
    is answered 481 by the leg; a To tag that is not ours is not the leg's
    request at all (the B2BUA answers those, ``switch.b2bua``)."""
    n = established()
    leg = n.b.leg
    dialog = n.a.leg.dialog
    assert dialog is not None
    bogus = dialog.create_request("INFO", via=("UDP", "192.0.2.1:5060"))
    bogus.headers.set("From", "<sip:401@pbx.test>;tag=nope")
    bogus.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1")
    assert leg.matches(bogus)
    n.a.layer.send_request(bogus, n.a.peer, n.now)
    n.run(n.now + 1)
    assert len(n.sent(n.b, "481 INFO")) == 1
    assert leg.state is CallState.CONFIRMED
    assert not n.b.of(InDialogRequestReceived)

    stranger = dialog.create_request("INFO", via=("UDP", "192.0.2.1:5060"))
    stranger.headers.set("To", "<sip:402@pbx.test>;tag=nope")
    assert not leg.matches(stranger)


def test_out_of_order_cseq_gets_500() -> None:
    n = established()
    dialog = n.a.leg.dialog
    assert dialog is not None
    n.a.leg.request("INFO", n.now)
    n.run(n.now + 1)
    old = dialog.create_request("INFO", cseq=1, via=("UDP", "192.0.2.1:5060"))
    n.b.layer.receive(old, A, n.now)
    n.settle()
    n.run(n.now + 1)
    assert n.sent(n.b, "500 INFO")


def _uac_alone() -> InviteSession:
    return InviteSession.uac(
        config(A),
        ids("f"),
        from_="<sip:401@pbx.test>",
        to="<sip:402@pbx.test>",
        request_uri=parse_uri("sip:402@pbx.test"),
        now=0.0,
        body=OFFER,
    )


def _reply(leg: InviteSession, status: int, tag: str, body: bytes = b"") -> Response:
    assert leg.invite is not None
    invite = leg.invite
    invite.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKf1")
    extra = [("Contact", f"<sip:{tag}@192.0.2.9>")]
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return make_response(invite, status, to_tag=tag, extra=extra, body=body)


def test_forked_early_dialogs_and_second_2xx_acked_then_byed() -> None:
    from switch.sip.events import ResponseReceived
    from switch.sip.transaction import ClientKey

    leg = _uac_alone()
    leg.commands()
    key = ClientKey("z9hG4bKf1", "INVITE")
    for tag in ("x", "y"):
        leg.handle(ResponseReceived(_reply(leg, 180, tag), key), 0.1)
    assert set(leg.dialogs) == {"x", "y"}
    assert all(d.state.value == "early" for d in leg.dialogs.values())
    leg.handle(ResponseReceived(_reply(leg, 200, "x", ANSWER), key), 0.2)
    assert leg.dialog is leg.dialogs["x"]
    assert leg.dialogs["y"].state.value == "terminated"
    cmds = leg.commands()
    assert [type(c) for c in cmds] == [SendAck]
    leg.handle(ResponseReceived(_reply(leg, 200, "y", ANSWER), key), 0.3)
    cmds = leg.commands()
    assert [type(c) for c in cmds] == [SendAck, SendRequest]
    assert isinstance(cmds[1], SendRequest)
    assert cmds[1].request.method == "BYE"
    assert cmds[1].request.to_tag == "y"
    assert leg.state is CallState.CONFIRMED  # the chosen dialog is untouched
    # A retransmitted 2xx from x gets the same ACK again.
    leg.handle(ResponseReceived(_reply(leg, 200, "x", ANSWER), key), 0.4)
    again = leg.commands()
    assert [type(c) for c in again] == [SendAck]


def test_tables_are_monotone_and_have_no_double_offer() -> None:
    for (state, _), nxt in CALL_TRANSITIONS.items():
        assert nxt >= state
    for (offer_state, inp), offer_next in OFFER_ANSWER.items():
        if inp in (OfferInput.SEND_OFFER, OfferInput.RECEIVE_OFFER):
            assert offer_state is OfferState.IDLE
        assert offer_next in OfferState
    oa = OfferAnswer()
    oa.fire(OfferInput.SEND_OFFER, (1, "INVITE"))
    with pytest.raises(OfferPending) as err:
        oa.fire(OfferInput.RECEIVE_OFFER)
    assert err.value.status_code == 491


OPS = st.lists(
    st.tuples(
        st.sampled_from(["a-reinvite", "b-reinvite", "a-update", "b-update", "a-info", "wait"]),
        st.floats(min_value=0.0, max_value=3.0),
        st.booleans(),  # drop the next message of that kind?
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, lossy=st.integers(min_value=0, max_value=6))
def test_random_in_dialog_traffic_keeps_invariants(
    ops: list[tuple[str, float, bool]], lossy: int
) -> None:
    n = established()
    seen = {"n": 0}

    def drop(src: object, m: object) -> bool:
        seen["n"] += 1
        return lossy > 0 and seen["n"] % (lossy + 3) == 0

    n.drop = drop
    states: dict[int, list[CallState]] = {id(n.a.leg): [], id(n.b.leg): []}
    for op, wait, _ in ops:
        side = n.a if op.startswith("a") else n.b
        leg = side.leg
        if leg.state is not CallState.CONFIRMED:
            n.run(n.now + wait)
            continue
        try:
            if op.endswith("reinvite"):
                leg.reinvite(HOLD, n.now)
            elif op.endswith("update"):
                leg.update(OFFER, n.now)
            elif op.endswith("info"):
                leg.request("INFO", n.now)
        except OfferPending:
            pass
        n.run(n.now + wait)
        for leg in (n.a.leg, n.b.leg):
            states[id(leg)].append(leg.state)
            assert leg.offer_answer.state in OfferState  # one pending at most, by type
    n.drop = lambda src, m: False
    n.run(n.now + 70)
    for leg in (n.a.leg, n.b.leg):
        states[id(leg)].append(leg.state)
        seq = states[id(leg)]
        assert seq == sorted(seq)  # monotone
        # Quiescent: no offer left pending, every 2xx ACKed or BYE'd.
        assert leg.offer_answer.state is OfferState.IDLE
        assert not leg._ok
        assert leg.state in (CallState.CONFIRMED, CallState.TERMINATED)
    assert (n.a.leg.state is CallState.TERMINATED) == (n.b.leg.state is CallState.TERMINATED)


def test_sends_are_responses_for_uas_initial_answer() -> None:
    n = net()
    n.b.on_invite = None
    n.call()
    n.run(0.1)
    leg = n.b.leg
    leg.respond(180, now=n.now)
    cmds = leg.commands()
    assert [type(c) for c in cmds] == [SendResponse]
    assert isinstance(cmds[0], SendResponse)
    assert cmds[0].response.to_tag == leg.local_tag


# ------------------------------------------------------------------ LocalOrigin


def _origin() -> LocalOrigin:
    return LocalOrigin.local(
        config(A),
        ids("o"),
        from_="<sip:401@pbx.test>",
        to="<sip:403@pbx.test>",
        request_uri=parse_uri("sip:403@pbx.test"),
        now=0.0,
        body=OFFER,
    )


def test_a_local_origin_answers_into_commands_and_confirms_at_once() -> None:
    origin = _origin()
    assert origin.initial_sdp is not None
    assert origin.initial_sdp.kind == "offer"
    origin.respond(180, now=0.0)
    origin.respond(200, body=ANSWER, now=0.0)
    statuses = [c.response.status for c in origin.commands() if isinstance(c, SendResponse)]
    assert statuses == [180, 200]
    assert origin.state is CallState.CONFIRMED
    assert origin.get_timer() is None  # no 2xx retransmission: nobody to ACK
    origin.hang_up(1.0)
    assert origin.terminated
    assert origin.commands() == []  # no BYE goes out
    ended = origin.next_event()
    assert isinstance(ended, SessionEnded)
    assert ended.reason == "bye-sent"


def test_a_local_origin_refused_ends_and_sends_nothing_else() -> None:
    origin = _origin()
    origin.hang_up(0.0, status=486)
    (command,) = origin.commands()
    assert isinstance(command, SendResponse)
    assert command.response.status == 486
    assert origin.terminated
    with pytest.raises(SessionError):
        origin.reinvite(OFFER, 1.0)
    with pytest.raises(SessionError):
        origin.respond(200, now=1.0)
    assert not origin.handle(object(), 1.0)  # type: ignore[arg-type]
