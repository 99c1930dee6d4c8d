"""SDES-SRTP on B legs: the switch's INVITE to a callee whose phone wants SRTP.

Same pure world as ``test_call`` (two ``sip_legs`` phones, the switch's
transaction layer, simulated time); the call is given SRTP key material and its
target says what the callee's declared phone wants (``Target.srtp``).
"""

from __future__ import annotations

import base64

from media.sdp import SessionDescription, crypto_attributes
from switch.call import (
    OUTCOME_STATUS,
    SRTP_SUITES,
    CallState,
    MediaUpdate,
    Outcome,
    SrtpOffer,
)
from switch.sip.dialog_events import CallAnswered, InDialogRequestReceived
from switch.sip.invite import InviteSession
from tests.unit.sip_legs import ANSWER, OFFER, Side, answer_with
from tests.unit.test_call import World, world
from tests.unit.test_call_transfer import connected, refer, transfer_world

A_KEYS = bytes(range(100, 146))
B_KEYS = bytes(range(46))
PHONE_KEY = bytes(range(200, 230))  # the callee's AES_CM_128 key||salt (30 bytes)
PHONE_KEY_B64 = base64.b64encode(PHONE_KEY).decode()

SRTP_OFFER = (
    OFFER.replace(b"RTP/AVP 0", b"RTP/SAVP 0")
    + (
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(bytes(30)).decode()}\r\n"
    ).encode()
)


def srtp_answer(
    tag: int = 1, suite: str = "AES_CM_128_HMAC_SHA1_80", proto: bytes = b"RTP/SAVP"
) -> bytes:
    return ANSWER.replace(b"RTP/AVP", proto) + (
        f"a=crypto:{tag} {suite} inline:{PHONE_KEY_B64}\r\n".encode()
    )


def srtp_world(srtp: SrtpOffer, *b_steps: tuple[int, bytes]) -> World:
    """The switch dials 402 with ``srtp`` and gives the call SRTP key material."""
    w = world(*b_steps)
    w.srtp_keys = (A_KEYS, B_KEYS)
    w.callee_srtp = srtp
    return w


def b_invite(w: World) -> SessionDescription:
    invite = w.b.leg.invite
    assert invite is not None
    return SessionDescription.parse(invite.body)


def updates(w: World, side: str) -> list[MediaUpdate]:
    return [m for m in w.media if isinstance(m, MediaUpdate) and m.side == side]


def answered_sdp(side: Side) -> SessionDescription:
    answers = [e for _, e in side.events if isinstance(e, CallAnswered)]
    assert answers
    assert answers[0].sdp is not None
    return SessionDescription.parse(answers[0].sdp.body)


def test_require_offers_rtp_savp_with_the_switch_key_for_every_suite() -> None:
    w = srtp_world("require", (180, b""), (200, srtp_answer()))
    w.dial()
    w.run(1.0)
    media = b_invite(w).media[0]
    assert media.proto == "RTP/SAVP"
    cryptos = crypto_attributes(media)
    assert [(c.tag, c.suite) for c in cryptos] == list(enumerate(SRTP_SUITES, start=1))
    # Each key is the call's B-side material, sized for its suite.
    for crypto in cryptos:
        assert B_KEYS.startswith(crypto.key())


def test_offer_mode_is_rtp_avp_with_crypto_and_off_is_plain() -> None:
    best_effort = srtp_world("offer")
    best_effort.dial()
    best_effort.run(1.0)
    media = b_invite(best_effort).media[0]
    assert media.proto == "RTP/AVP"
    assert len(crypto_attributes(media)) == len(SRTP_SUITES)

    plain = srtp_world("off")
    plain.dial()
    plain.run(1.0)
    media = b_invite(plain).media[0]
    assert media.proto == "RTP/AVP"
    assert crypto_attributes(media) == []


def test_callee_answer_with_crypto_gives_the_relay_b_side_keys_caller_stays_plain() -> None:
    w = srtp_world("require", (180, b""), (200, srtp_answer()))
    w.dial()
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.CONNECTED
    last_b = updates(w, "b")[-1]
    assert last_b.rtp == ("192.0.2.2", 5000)
    assert last_b.srtp == ("AES_CM_128_HMAC_SHA1_80", PHONE_KEY, B_KEYS[:30])
    assert updates(w, "a")[-1].srtp is None
    # The plain caller's answer is plain RTP.
    to_caller = answered_sdp(w.a).media[0]
    assert to_caller.proto == "RTP/AVP"
    assert crypto_attributes(to_caller) == []


def test_answer_choosing_another_suite_uses_that_suites_key() -> None:
    w = srtp_world("require", (200, srtp_answer(tag=2, suite="AES_CM_128_HMAC_SHA1_32")))
    w.dial()
    w.run(1.0)
    assert updates(w, "b")[-1].srtp == ("AES_CM_128_HMAC_SHA1_32", PHONE_KEY, B_KEYS[:30])


def test_srtp_caller_and_srtp_callee_each_leg_terminated_with_its_own_key() -> None:
    w = srtp_world("require", (200, srtp_answer()))
    w.dial(SRTP_OFFER)
    w.run(1.0)
    a, b = updates(w, "a")[-1], updates(w, "b")[-1]
    assert a.srtp == ("AES_CM_128_HMAC_SHA1_80", bytes(30), A_KEYS[:30])
    assert b.srtp == ("AES_CM_128_HMAC_SHA1_80", PHONE_KEY, B_KEYS[:30])
    # The caller gets the switch's A-side key, not the callee's.
    (crypto,) = crypto_attributes(answered_sdp(w.a).media[0])
    assert crypto.key() == A_KEYS[:30]
    assert answered_sdp(w.a).media[0].proto == "RTP/SAVP"


def test_offer_mode_answer_with_crypto_on_rtp_avp_is_terminated() -> None:
    w = srtp_world("offer", (200, srtp_answer(proto=b"RTP/AVP")))
    w.dial()
    w.run(1.0)
    assert updates(w, "b")[-1].srtp == ("AES_CM_128_HMAC_SHA1_80", PHONE_KEY, B_KEYS[:30])


def test_offer_mode_plain_answer_leaves_the_leg_plain() -> None:
    w = srtp_world("offer", (200, ANSWER))
    w.dial()
    w.run(1.0)
    assert w.call is not None
    assert w.call.state is CallState.CONNECTED
    assert updates(w, "b")[-1].srtp is None


def test_require_mode_plain_answer_fails_the_leg_488_and_byes_it() -> None:
    w = srtp_world("require", (180, b""), (200, ANSWER))
    caller = w.dial()
    w.run(2.0)
    assert w.b.leg.terminated  # ACKed, then our BYE
    failed = [e for _, e in w.a.events if type(e).__name__ == "CallFailed"]
    # Heard like a callee's 488 (failure -> outcome -> OUTCOME_STATUS): rejected.
    assert [f.status for f in failed] == [OUTCOME_STATUS[Outcome.REJECTED]]  # type: ignore[union-attr]
    assert caller.terminated
    assert [(e.record.outcome, e.record.cause) for e in w.ended] == [
        (Outcome.REJECTED, "srtp-refused")
    ]
    assert all(u.srtp is None for u in updates(w, "b"))


def test_require_mode_answer_with_a_bad_key_fails_the_leg() -> None:
    bad = ANSWER.replace(b"RTP/AVP", b"RTP/SAVP") + (
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=\r\n"
    )
    w = srtp_world("require", (200, bad))
    w.dial()
    w.run(2.0)
    assert [(e.record.outcome, e.record.cause) for e in w.ended] == [
        (Outcome.REJECTED, "srtp-refused")
    ]


def reinvites(side: Side) -> list[SessionDescription]:
    return [
        SessionDescription.parse(e.request.body)
        for _, e in side.events
        if isinstance(e, InDialogRequestReceived) and e.request.method == "INVITE"
    ]


def test_hold_and_resume_keep_srtp_on_the_callee_leg() -> None:
    w = srtp_world("require", (200, srtp_answer()))
    caller = w.dial()
    w.run(1.0)

    def answer_reinvites(side: Side, leg: InviteSession, event: object, now: float) -> None:
        if isinstance(event, InDialogRequestReceived) and event.request.method == "INVITE":
            leg.respond_to(event.request, 200, now=now, body=srtp_answer())

    w.b.react = answer_reinvites
    held = OFFER.replace(b"o=a 1 1", b"o=a 1 2") + b"a=sendonly\r\n"
    caller.reinvite(held, w.now)
    w.run(w.now + 1.0)
    caller.reinvite(OFFER.replace(b"o=a 1 1", b"o=a 1 3"), w.now)
    w.run(w.now + 1.0)

    offers = reinvites(w.b)
    assert len(offers) == 2
    for offer in offers:
        media = offer.media[0]
        assert media.proto == "RTP/SAVP"
        (crypto,) = crypto_attributes(media)  # the suite and tag the phone chose
        assert (crypto.tag, crypto.suite, crypto.key()) == (1, SRTP_SUITES[0], B_KEYS[:30])
    assert offers[0].media[0].has_attribute("sendonly")
    assert not offers[1].media[0].has_attribute("sendonly")
    assert updates(w, "b")[-1].srtp == ("AES_CM_128_HMAC_SHA1_80", PHONE_KEY, B_KEYS[:30])
    # The plain caller's answers stay plain.
    a_answers = [m for m in w.media if isinstance(m, MediaUpdate) and m.side == "a"]
    assert all(u.srtp is None for u in a_answers)


def test_a_transfer_re_offers_srtp_to_the_srtp_callee_it_moves() -> None:
    """401 calls 402 (SRTP only) and transfers it to 403: 402's leg joins 403's call
    (as its side a), whose re-offer keeps SRTP with that call's own key."""
    w = transfer_world()
    w.srtp_keys = (A_KEYS, B_KEYS)
    w.srtp = {"402": "require"}
    w.b.on_invite = answer_with((180, b""), (200, srtp_answer()))

    def b_phone(side: Side, leg: InviteSession, event: object, now: float) -> None:
        if isinstance(event, InDialogRequestReceived):
            body = srtp_answer() if event.request.method == "INVITE" else b""
            leg.respond_to(event.request, 200, now=now, body=body)

    w.b.react = b_phone
    caller, _x = connected(w)
    refer(caller, w, "<sip:403@pbx.test>")
    w.run(1.5)
    t = w.blind()
    w.run(3.0)
    assert t.state is CallState.CONNECTED
    assert t.a.leg.call_id == w.b.leg.call_id  # 402 moved into the new call
    (offer,) = reinvites(w.b)
    media = offer.media[0]
    assert media.proto == "RTP/SAVP"
    (crypto,) = crypto_attributes(media)
    assert (crypto.tag, crypto.suite, crypto.key()) == (1, SRTP_SUITES[0], A_KEYS[:30])
    to_402 = [u for u in w.media if isinstance(u, MediaUpdate) and u.rtp == ("192.0.2.2", 5000)]
    assert to_402[-1].side == "a"
    assert to_402[-1].srtp == ("AES_CM_128_HMAC_SHA1_80", PHONE_KEY, A_KEYS[:30])
