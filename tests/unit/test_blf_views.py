"""``switch.blf.line_views``: the dialogs each line sees in a pure ``Call`` (the
call flows of tests/unit/test_call.py, with pure phones on simulated time)."""

from __future__ import annotations

from switch.blf import line_views
from switch.call import Call
from switch.sip.dialog_info import DialogState, DialogView, Direction
from tests.unit.sip_legs import ANSWER
from tests.unit.test_call import World, world

LINES = {"401", "402"}


def line_key(user: str, host: str) -> str | None:
    return f"{user}@{host}" if host == "pbx.test" and user in LINES else None


def views(w: World) -> tuple[DialogView, DialogView]:
    assert w.call is not None
    found = line_views(w.call, line_key)
    assert set(found) == {"401@pbx.test", "402@pbx.test"}
    ((caller,), (callee,)) = found["401@pbx.test"], found["402@pbx.test"]
    return caller, callee


def test_ringing_call_caller_initiator_callee_recipient_with_the_phones_tags() -> None:
    w = world((180, b""))
    a_leg = w.dial()
    w.run(1.0)
    caller, callee = views(w)
    assert (caller.state, callee.state) == (DialogState.EARLY, DialogState.EARLY)
    # The caller's dialog with the switch: its own tag local, the switch's remote.
    assert caller.direction is Direction.INITIATOR
    assert caller.call_id == a_leg.call_id
    assert caller.local_tag == a_leg.local_tag
    assert a_leg.dialogs
    assert caller.remote_tag == next(iter(a_leg.dialogs))
    # The callee's dialog is the B leg: 402's tag local, the switch's remote.
    b_leg = w.b.leg
    assert callee.direction is Direction.RECIPIENT
    assert callee.call_id == b_leg.call_id != caller.call_id
    assert callee.local_tag == b_leg.local_tag
    assert b_leg.invite is not None
    assert callee.remote_tag == b_leg.invite.from_tag
    assert callee.local is not None
    assert callee.local.identity == "sip:402@pbx.test"
    assert callee.remote is not None
    assert callee.remote.identity == "sip:401@pbx.test"


def test_answered_then_bye_is_confirmed_then_terminated_with_who_hung_up() -> None:
    w = world((180, b""), (200, ANSWER))
    w.dial()
    w.run(1.0)
    caller, callee = views(w)
    assert (caller.state, callee.state) == (DialogState.CONFIRMED, DialogState.CONFIRMED)
    w.b.leg.bye(w.now)  # 402 hangs up
    w.run(2.0)
    caller, callee = views(w)
    assert (caller.state, callee.state) == (DialogState.TERMINATED, DialogState.TERMINATED)
    assert callee.event == "local-bye"  # 402's own BYE, from 402's side
    assert caller.event == "remote-bye"


def test_busy_callee_is_rejected_with_its_code_on_both_lines() -> None:
    w = world((486, b""))
    w.dial()
    w.run(1.0)
    caller, callee = views(w)
    assert (caller.state, caller.event, caller.code) == (DialogState.TERMINATED, "rejected", 486)
    assert (callee.state, callee.event, callee.code) == (DialogState.TERMINATED, "rejected", 486)


def test_a_call_from_outside_shows_only_on_the_callee_line() -> None:
    w = world((180, b""))
    w.dial()
    w.run(1.0)
    assert isinstance(w.call, Call)
    w.call.caller = "+33612345678"  # a trunk's caller: not one of our lines
    found = line_views(w.call, line_key)
    assert set(found) == {"402@pbx.test"}
    assert line_views(w.call, lambda user, host: None) == {}


def test_the_callee_line_shows_nothing_until_its_phone_answers_the_invite() -> None:
    w = world((180, b""))
    w.dial()
    w.run(0.015)  # the switch has the INVITE and sent the B leg's: not arrived yet
    assert w.call is not None
    assert w.call.b
    found = line_views(w.call, line_key)
    assert set(found) == {"401@pbx.test"}
    assert found["401@pbx.test"][0].state is DialogState.TRYING
