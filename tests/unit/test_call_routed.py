"""Routed calls in the pure call core: what a routing program needs of a call.

A failed dial leaves the caller waiting (``DialFailed``) instead of ending the
call, a later dial may follow; the switch can answer the caller itself, with
early media (183) or a local answer (200), after which B legs are offered the
caller's codec only and the caller keeps the SDP it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch.call import (
    CallState,
    DialFailed,
    DigitPressed,
    LocalMedia,
    Outcome,
    Target,
    TargetAnswered,
)
from switch.sip.dialog_events import CallAnswered, ProvisionalReceived
from switch.sip.events import RequestReceived
from switch.sip.uri import parse_uri
from tests.unit.sip_legs import ANSWER, answer_with, config
from tests.unit.test_call import RELAY, SW, B, World, world

OFFER_MULTI = (
    b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 8 0 9 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)


@dataclass
class RoutedWorld(World):
    """The switch creates a routed call and waits: the test plays the routing."""

    def new_call(self, event: RequestReceived) -> None:
        self.call = self.make_call(event, caller="0612345678", called="0800100100")
        self.call.media = RELAY
        self.call.routed = True
        self.execute()

    def target(self, label: str = "401") -> Target:
        return Target(
            parse_uri("sip:401@192.0.2.2"),
            B,
            config(SW),
            from_="<sip:0612345678@pbx.test>",
            to="<sip:401@pbx.test>",
            label=label,
        )

    def ring(self, ring_timeout: float | None = None, label: str = "401") -> None:
        assert self.call is not None
        self.call.dial([self.target(label)], self.now, ring_timeout=ring_timeout)
        self.execute()

    def routing_commands(self) -> list[object]:
        return [m for m in self.media if isinstance(m, DialFailed | TargetAnswered | DigitPressed)]


def routed_world(*b_steps: tuple[int, bytes]) -> RoutedWorld:
    routed = world(*b_steps, kind=RoutedWorld)
    assert isinstance(routed, RoutedWorld)
    return routed


def test_a_busy_target_is_reported_and_the_caller_stays() -> None:
    w = routed_world((486, b""))
    caller = w.dial()
    w.run(0.5)
    w.ring()
    w.run(1.0)
    assert w.routing_commands() == [DialFailed(Outcome.BUSY, "486")]
    assert w.call is not None
    assert w.call.state < CallState.ENDING
    assert not caller.terminated
    assert w.ended == []
    # The next dial of the program: this time the target answers.
    w.b.on_invite = answer_with((180, b""), (200, ANSWER))
    w.ring(label="402")
    w.run(2.0)
    assert w.routing_commands()[-1] == TargetAnswered("402")
    assert w.call.state is CallState.CONNECTED
    assert [e for _, e in w.a.events if isinstance(e, CallAnswered)]
    # Both B legs are in the CDR, with their statuses.
    w.call.hang_up("test", w.now)
    w.execute()
    record = w.ended[0].record
    assert [(leg.target, leg.final_status) for leg in record.legs[1:]] == [
        ("401", 486),
        ("402", 200),
    ]


def test_ring_timeout_of_one_dial_cancels_it_and_reports_no_answer_once() -> None:
    w = routed_world((180, b""))
    w.dial()
    w.run(0.5)
    w.ring(ring_timeout=3.0)
    w.run(10.0)
    # The 487 that answers the CANCEL belongs to a dial already given up: no second report.
    assert w.routing_commands() == [DialFailed(Outcome.NO_ANSWER, "ring-timeout")]
    assert w.b.leg.terminated
    assert w.call is not None
    assert w.call.state < CallState.ENDING


def test_early_media_answers_the_offer_and_b_is_offered_that_codec_only() -> None:
    w = routed_world()
    w.dial(OFFER_MULTI)
    w.run(0.5)
    assert w.call is not None
    local = w.call.early_media(w.now)
    w.execute()
    assert local == LocalMedia("PCMA", 8, 101)  # the caller's first playable codec
    w.run(1.0)
    early = [
        e for _, e in w.a.events if isinstance(e, ProvisionalReceived) and e.response.status != 100
    ]
    assert [e.response.status for e in early] == [183]
    assert early[0].sdp is not None
    assert b"m=audio 20000 RTP/AVP 8 101" in early[0].sdp.body
    w.ring()
    w.run(2.0)
    invite = w.b.leg.invite
    assert invite is not None
    assert b"m=audio 20002 RTP/AVP 8 101\r\n" in invite.body
    answered = [e for _, e in w.a.events if isinstance(e, CallAnswered)]
    assert answered
    assert answered[0].sdp is not None
    # RFC 3261 §13.2.1: the caller ignores a later SDP; we send the same one.
    assert answered[0].sdp.body == early[0].sdp.body
    # The B leg's 180 is not relayed after our 183: the caller hears our media.
    provisional = [e for _, e in w.a.events if isinstance(e, ProvisionalReceived)]
    assert [e.response.status for e in provisional if e.response.status != 100] == [183]


def test_answer_locally_then_bridge_sends_no_second_200() -> None:
    w = routed_world()
    w.dial(OFFER_MULTI)
    w.run(0.5)
    assert w.call is not None
    assert w.call.answer_locally(w.now) == LocalMedia("PCMA", 8, 101)
    w.execute()
    w.run(1.0)
    assert w.call.state is CallState.CONNECTED
    w.ring()
    w.run(2.0)
    assert w.routing_commands() == [TargetAnswered("401")]
    answered = [e for _, e in w.a.events if isinstance(e, CallAnswered)]
    assert len(answered) == 1


def test_no_offer_means_no_early_media() -> None:
    w = routed_world()
    w.dial(b"")
    w.run(0.5)
    assert w.call is not None
    assert w.call.early_media(w.now) is None


def test_info_digit_before_any_bridge_is_reported() -> None:
    w = routed_world()
    caller = w.dial(OFFER_MULTI)
    w.run(0.5)
    assert w.call is not None
    w.call.answer_locally(w.now)
    w.execute()
    w.run(1.0)
    caller.request(
        "INFO", w.now, body=b"Signal=#\r\nDuration=160\r\n", content_type="application/dtmf-relay"
    )
    w.run(2.0)
    assert DigitPressed("#") in w.routing_commands()


def test_trace_and_messages_reach_the_record() -> None:
    w = routed_world((486, b""))
    w.dial()
    w.run(0.5)
    assert w.call is not None
    w.call.because.extend(["numéro 0800100100 → programme « p »", "→ occupé (486)"])
    w.call.messages.append("message-reseau")
    w.call.reject(486, w.now, cause="limit")
    w.execute()
    record = w.ended[0].record
    assert record.because == ("numéro 0800100100 → programme « p »", "→ occupé (486)")
    assert record.messages == ("message-reseau",)
    assert record.outcome is Outcome.BUSY
