"""Forwarding at call time: each kind, chains, loops, protection, profile, headers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.engine import Answered, Closed, Failed, OutcomeMismatch
from routing.forwarding import (
    MAX_HOPS,
    Action,
    Caller,
    Dial,
    DialGroup,
    DiversionEntry,
    Done,
    Fail,
    FailReason,
    ForwardingSession,
    GroupTarget,
    HistoryEntry,
    LineFacts,
    Ring,
    Voicemail,
    is_terminal,
    lookup_from,
    simulate,
)
from routing.linesettings import (
    ForwardCondition,
    ForwardedIdentity,
    Forwarding,
    LineSettings,
)
from routing.program import FailCause
from routing.restrictions import CustomProfile, PrefixList, RestrictionTable

DOMAIN = "pbx.test"
CALLER = Caller("+33612345678")
MOBILE = "+33698765432"

U = ForwardCondition.UNCONDITIONAL
B = ForwardCondition.BUSY
N = ForwardCondition.NO_ANSWER
R = ForwardCondition.UNREACHABLE


def line(
    extension: str,
    *,
    number: str | None = None,
    clir: bool = False,
    protected: bool = False,
    identity: ForwardedIdentity = ForwardedIdentity.CALLER,
    **facts: object,
) -> LineFacts:
    forwarding = {
        k: facts.pop(k)
        for k in ("unconditional", "busy", "no_answer", "unreachable", "ring_s")
        if k in facts
    }
    settings = LineSettings(
        forwarding=Forwarding(**forwarding),  # type: ignore[arg-type]
        clir=clir,
        forward_protection=protected,
        forwarded_identity=identity,
    )
    return LineFacts(extension, DOMAIN, settings, number=number, **facts)  # type: ignore[arg-type]


def run(
    called: LineFacts,
    *others: LineFacts,
    outcomes: dict[str, Answered | Failed | Closed] | None = None,
    caller: Caller = CALLER,
    groups: tuple[GroupTarget, ...] = (),
) -> list[Action]:
    session = ForwardingSession(called, lookup_from([called, *others], groups), caller)
    return simulate(session, outcomes or {})


def last(actions: list[Action]) -> Action:
    assert is_terminal(actions[-1])
    return actions[-1]


# -- no forward ------------------------------------------------------------------------


def test_no_forward_rings_then_voicemail() -> None:
    a = line("401")
    actions = run(a)
    assert isinstance(actions[0], Ring)
    assert actions[0].extension == "401"
    assert actions[0].ring_s == 20
    assert actions[0].leg.diversions == ()
    assert actions[0].leg.history == ()  # History-Info only once the call is diverted
    vm = last(actions)
    assert isinstance(vm, Voicemail)
    assert (vm.box, vm.condition) == ("401", N)
    assert vm.leg.diversion_header == ("<sip:401@pbx.test>;reason=no-answer;counter=1;privacy=off")


def test_answered() -> None:
    actions = run(line("401"), outcomes={"401": Answered()})
    assert isinstance(actions[-1], Done)
    assert actions[-1].because[-1] == "répondu"


def test_caller_hangs_up() -> None:
    actions = run(line("401"), outcomes={"401": Closed()})
    assert isinstance(actions[-1], Done)
    assert actions[-1].because[-1] == "l'appelant a raccroché"


def test_without_voicemail_a_clear_failure_and_no_ring_timer() -> None:
    actions = run(line("401", voicemail=False))
    ring = actions[0]
    assert isinstance(ring, Ring)
    assert ring.ring_s is None  # nothing follows no answer
    fail = last(actions)
    assert isinstance(fail, Fail)
    assert (fail.reason, fail.status) == (FailReason.NO_ANSWER, 480)
    busy = last(run(replace(line("401", voicemail=False), busy=True)))
    assert isinstance(busy, Fail)
    assert busy.status == 486


# -- each kind of forward ---------------------------------------------------------------


def test_unconditional_to_an_internal_line() -> None:
    a = line("401", unconditional="402")
    b = line("402")
    ring = run(a, b, outcomes={"402": Answered()})[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "402"
    assert ring.leg.diversions == (DiversionEntry("sip:401@pbx.test", "unconditional"),)
    assert ring.because == (
        "appel pour le poste 401",
        "renvoi immédiat de 401 vers le poste 402",
        "sonnerie du poste 402",
    )


def test_busy_known_before_ringing() -> None:
    a = replace(line("401", busy="402"), busy=True)  # at its call limit
    ring = run(a, line("402"))[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "402"
    assert ring.leg.diversions[0].reason == "user-busy"


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (FailCause.BUSY, "user-busy"),
        (FailCause.REJECTED, "user-busy"),  # the user declined: as busy
        (FailCause.NO_ANSWER, "no-answer"),
        (FailCause.UNREACHABLE, "unavailable"),
    ],
)
def test_while_ringing(cause: FailCause, reason: str) -> None:
    a = line("401", busy="402", no_answer="402", unreachable="402")
    actions = run(a, line("402"), outcomes={"401": Failed(cause), "402": Answered()})
    assert [type(x) for x in actions] == [Ring, Ring, Done]
    second = actions[1]
    assert isinstance(second, Ring)
    assert second.extension == "402"
    assert second.leg.diversions[0].reason == reason


def test_no_answer_to_an_external_number_with_its_ring_time() -> None:
    a = line("401", no_answer="+33698765432", ring_s=30)
    actions = run(a, outcomes={MOBILE: Answered()})
    ring, dial, done = actions
    assert isinstance(ring, Ring)
    assert ring.ring_s == 30
    assert isinstance(dial, Dial)
    assert dial.number == MOBILE
    assert dial.leg.diversions == (DiversionEntry("sip:401@pbx.test", "no-answer"),)
    assert dial.leg.presented.number == CALLER.number  # the first caller, by default
    assert isinstance(done, Done)


def test_unregistered_line_uses_its_unreachable_forward() -> None:
    a = line("401", registered=False, unreachable="402", busy="403")
    ring = run(a, line("402"), line("403"))[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "402"
    assert ring.leg.diversions[0].reason == "unavailable"
    default = last(run(line("401", registered=False)))
    assert isinstance(default, Voicemail)
    assert default.condition is R


def test_unconditional_to_voicemail() -> None:
    vm = last(run(line("401", unconditional="888")))
    assert isinstance(vm, Voicemail)
    assert (vm.box, vm.condition) == ("401", U)


def test_unconditional_to_voicemail_without_a_box_is_ignored() -> None:
    ring = run(line("401", unconditional="888", voicemail=False))[0]
    assert isinstance(ring, Ring)
    assert "pas de messagerie" in ring.because[-2]


def test_to_a_hunt_group() -> None:
    a = line("401", unconditional="500")
    group = last(run(a, groups=(GroupTarget("500", DOMAIN),)))
    assert isinstance(group, DialGroup)
    assert group.group == "500"
    assert group.leg.history_info_header == (
        "<sip:401@pbx.test?Reason=SIP%3Bcause%3D302>;index=1, "
        "<sip:500@pbx.test;cause=302>;index=1.1;mp=1"
    )


def test_a_failed_external_forward_ends_the_call() -> None:
    a = line("401", unconditional=MOBILE)
    fail = last(run(a, outcomes={MOBILE: Failed(FailCause.BUSY)}))
    assert isinstance(fail, Fail)
    assert fail.status == 486


# -- chains and loops ----------------------------------------------------------------------


def test_chain_of_conditions() -> None:
    a = line("401", busy="402")
    b = line("402", no_answer="403")
    c = line("403", unreachable=MOBILE, registered=False)
    actions = run(a, b, c, outcomes={"401": Failed(FailCause.BUSY)})
    assert [type(x) for x in actions] == [Ring, Ring, Dial, Fail]
    dial = actions[2]
    assert isinstance(dial, Dial)
    assert [d.reason for d in dial.leg.diversions] == ["unavailable", "no-answer", "user-busy"]
    assert dial.leg.history_info_header == (
        "<sip:401@pbx.test?Reason=SIP%3Bcause%3D486>;index=1, "
        "<sip:402@pbx.test;cause=486?Reason=SIP%3Bcause%3D408>;index=1.1;mp=1, "
        "<sip:403@pbx.test;cause=408?Reason=SIP%3Bcause%3D503>;index=1.1.1;mp=1.1, "
        "<sip:+33698765432@pbx.test;user=phone;cause=503>;index=1.1.1.1;mp=1.1.1"
    )


def test_loop_a_b_c_a_ends_at_the_last_voicemail() -> None:
    a = line("401", unconditional="402")
    b = line("402", unconditional="403")
    c = line("403", unconditional="401")
    actions = run(a, b, c)
    assert len(actions) == 1  # never rings
    vm = actions[0]
    assert isinstance(vm, Voicemail)
    assert vm.box == "403"
    assert "boucle de renvois 401 → 402 → 403 → 401" in vm.because


def test_loop_ends_at_the_last_phone_with_a_voicemail() -> None:
    a = line("401", unconditional="402")
    b = line("402", unconditional="403")
    c = line("403", unconditional="401", voicemail=False)
    vm = last(run(a, b, c))
    assert isinstance(vm, Voicemail)
    assert vm.box == "402"


def test_loop_without_any_voicemail_is_a_clear_failure() -> None:
    a = line("401", unconditional="402", voicemail=False)
    b = line("402", unconditional="401", voicemail=False)
    fail = last(run(a, b))
    assert isinstance(fail, Fail)
    assert (fail.reason, fail.status) == (FailReason.LOOP, 482)


def test_loop_through_a_direct_number() -> None:
    a = line("401", number="+33140000401", no_answer="402")
    b = line("402", number="+33140000402", unconditional="+33140000401")
    actions = run(a, b)
    assert [type(x) for x in actions] == [Ring, Voicemail]
    vm = actions[-1]
    assert isinstance(vm, Voicemail)
    assert vm.box == "402"
    assert "boucle de renvois 401 → 402 → 401" in vm.because


def test_a_ringing_loop_ends_too() -> None:
    a = line("401", no_answer="402")
    b = line("402", no_answer="401")
    actions = run(a, b)
    assert [type(x) for x in actions] == [Ring, Ring, Voicemail]
    vm = actions[-1]
    assert isinstance(vm, Voicemail)
    assert vm.box == "402"


def test_too_many_diversions() -> None:
    lines = [line(f"4{i:02d}", unconditional=f"4{i + 1:02d}") for i in range(10)]
    actions = run(*lines)
    vm = last(actions)
    assert isinstance(vm, Voicemail)
    assert vm.box == f"4{MAX_HOPS:02d}"
    assert f"plus de {MAX_HOPS} renvois" in vm.because[-2]
    assert len(vm.leg.diversions) == MAX_HOPS + 1  # the last one to its voicemail


# -- ignored forwards ----------------------------------------------------------------------


def test_forward_to_a_protected_line_is_ignored() -> None:
    a = line("401", unconditional="402", busy="402")
    b = line("402", protected=True)
    ring = run(a, b)[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "401"  # as if there were no unconditional forward
    assert "poste 402 protégé (*89*1)" in ring.because[1]
    vm = last(run(replace(a, busy=True), b))
    assert isinstance(vm, Voicemail)
    assert (vm.box, vm.condition) == ("401", B)


def test_forward_barred_by_the_profile_at_call_time_is_ignored() -> None:
    a = replace(line("401", unconditional=MOBILE), forward_profile=2)
    ring = run(a)[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "401"
    assert "profil 2 « National seul » : mobile interdit" in ring.because[1]


def test_forward_barred_by_the_company_table_at_call_time_is_ignored() -> None:
    """The diverting line's company table applies at call time too: its deny list bars
    even a profile-10 line's forward; a custom profile decides with its own lists."""
    table = RestrictionTable(
        profiles=(CustomProfile(9, "Accueil", frozenset(), allow=PrefixList.parse(["06 98"])),),
        deny=PrefixList.parse(["+33 6 99"]),
    )
    a = replace(line("401", unconditional="+33699123456"), restrictions=table)
    ring = run(a)[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "401"
    assert "préfixe +33699 interdit" in ring.because[1]
    b = replace(line("401", unconditional=MOBILE), restrictions=table, forward_profile=9)
    dial = run(b)[0]
    assert isinstance(dial, Dial)
    assert dial.number == MOBILE


def test_forward_to_the_caller_is_ignored() -> None:
    a = line("401", unconditional="402")
    ring = run(a, line("402"), caller=Caller("+33140000402", extension="402"))[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "401"


def test_forward_to_an_unknown_internal_number_is_ignored() -> None:
    ring = run(line("401", unconditional="499"))[0]
    assert isinstance(ring, Ring)
    assert ring.extension == "401"
    assert "499 inconnu" in ring.because[1]


# -- identities and privacy ------------------------------------------------------------------


def test_presented_number_is_the_forwarding_line_when_it_says_so() -> None:
    a = line(
        "401",
        number="+33140000401",
        unconditional=MOBILE,
        identity=ForwardedIdentity.FORWARDER,
    )
    dial = run(a)[0]
    assert isinstance(dial, Dial)
    assert dial.leg.presented.number == "+33140000401"
    assert not dial.leg.presented.withheld
    assert dial.leg.diversion_header == (
        "<sip:+33140000401@pbx.test;user=phone>;reason=unconditional;counter=1;privacy=off"
    )


def test_internal_legs_always_present_the_caller() -> None:
    a = line(
        "401", number="+33140000401", unconditional="402", identity=ForwardedIdentity.FORWARDER
    )
    ring = run(a, line("402"))[0]
    assert isinstance(ring, Ring)
    assert ring.leg.presented.number == CALLER.number


def test_withheld_caller_stays_withheld() -> None:
    a = line("401", unconditional=MOBILE)
    dial = run(a, caller=Caller("+33612345678", withheld=True))[0]
    assert isinstance(dial, Dial)
    assert dial.leg.presented.withheld


def test_a_withholding_forwarder_is_private_in_the_headers() -> None:
    a = line("401", unconditional=MOBILE, clir=True)
    dial = run(a)[0]
    assert isinstance(dial, Dial)
    assert dial.leg.diversions == (DiversionEntry("sip:401@pbx.test", "unconditional", 1, "full"),)
    assert dial.leg.history[0] == HistoryEntry("sip:401@pbx.test", "1", reason=302, private=True)
    assert dial.leg.history[0].render() == (
        "<sip:401@pbx.test?Reason=SIP%3Bcause%3D302&Privacy=history>;index=1"
    )


# -- driving errors --------------------------------------------------------------------------


def test_outcomes_must_follow_a_ring_or_a_dial() -> None:
    session = ForwardingSession(line("401", unconditional="888"), lookup_from([]))
    assert isinstance(session.start(), Voicemail)
    with pytest.raises(OutcomeMismatch):
        session.resume(Answered())
    with pytest.raises(OutcomeMismatch):
        session.start()


def test_lookup_ignores_shared_numbers() -> None:
    a = line("601", number="+33140000400")
    b = line("602", number="+33140000400")
    c = line("401", number="+33140000401")
    lookup = lookup_from([a, b, c])
    assert lookup("+33140000400") is None
    assert lookup("+33140000401") == c
    assert lookup("602") == b


# -- properties --------------------------------------------------------------------------------

EXTENSIONS = ["401", "402", "403", "404"]
DESTINATIONS = st.one_of(st.none(), st.sampled_from([*EXTENSIONS, "888", "499", MOBILE]))


@st.composite
def facts(draw: st.DrawFn, extension: str) -> LineFacts:
    return line(
        extension,
        unconditional=draw(DESTINATIONS),
        busy=draw(DESTINATIONS.filter(lambda d: d != "888")),
        no_answer=draw(DESTINATIONS.filter(lambda d: d != "888")),
        unreachable=draw(DESTINATIONS.filter(lambda d: d != "888")),
        protected=draw(st.booleans()),
        registered=draw(st.booleans()),
        voicemail=draw(st.booleans()),
    )


OUTCOMES = st.sampled_from([Answered(), Closed(), *(Failed(cause) for cause in FailCause)])


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(*(facts(e) for e in EXTENSIONS)),
    st.lists(OUTCOMES, min_size=20, max_size=20),
)
def test_every_call_ends_and_never_rings_a_line_twice(
    lines: tuple[LineFacts, ...], outcomes: list[Answered | Failed | Closed]
) -> None:
    queue = iter(outcomes)
    session = ForwardingSession(lines[0], lookup_from(lines), CALLER)
    actions = simulate(session, lambda _action: next(queue))
    assert is_terminal(actions[-1])
    rung = [a.extension for a in actions if isinstance(a, Ring)]
    assert len(rung) == len(set(rung))
    assert len(actions) <= len(EXTENSIONS) + 2
    for action in actions:
        if isinstance(action, Ring | Dial | DialGroup | Voicemail):
            assert len(action.leg.diversions) <= MAX_HOPS + 1
