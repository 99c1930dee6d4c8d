"""``Call.extend_dial``: a leg added to the dial in progress (a mobile after N rings),
and ``Target.extra`` headers on B legs (Diversion, History-Info)."""

from __future__ import annotations

import dataclasses

from switch.call import DialFailed, Outcome
from tests.unit.test_call_routed import routed_world


def test_an_extended_dial_keeps_its_deadline_and_reports_once() -> None:
    w = routed_world((180, b""))
    w.dial()
    w.run(0.5)
    w.ring(ring_timeout=6.0)  # deadline 6.5
    w.run(3.0)
    assert w.call is not None
    mobile = dataclasses.replace(w.target("mobile"), extra=(("Diversion", "<sip:401@x>"),))
    w.call.extend_dial([mobile], w.now)
    w.execute()
    w.run(6.0)
    assert [p.label for p in w.call.b] == ["401", "mobile"]
    assert w.routing_commands() == []  # still ringing: the first deadline holds
    w.run(20.0)
    # One report for the whole dial, at the first deadline, both legs given up.
    assert w.routing_commands() == [DialFailed(Outcome.NO_ANSWER, "ring-timeout")]
    assert all(p.leg.terminated for p in w.call.b)


def test_extra_headers_go_on_the_b_leg_invite() -> None:
    w = routed_world((180, b""))
    w.dial()
    w.run(0.5)
    assert w.call is not None
    target = dataclasses.replace(
        w.target("401"), extra=(("Diversion", "<sip:+33140000401@pbx.test>;reason=no-answer"),)
    )
    w.call.dial([target], w.now)
    invite = w.call.b[0].leg.invite
    assert invite is not None
    assert invite.headers.get("Diversion") == "<sip:+33140000401@pbx.test>;reason=no-answer"
    w.execute()


def test_extend_without_a_dial_in_progress_does_nothing() -> None:
    w = routed_world((486, b""))
    w.dial()
    w.run(0.5)
    w.ring()
    w.run(2.0)  # busy: the dial is over
    assert w.call is not None
    w.call.extend_dial([w.target("mobile")], w.now)
    assert [p.label for p in w.call.b] == ["401"]
