"""Star codes: every code of STAR-CODES.md, parsed, applied, confirmed; bad ones refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.linesettings import (
    ALL_CONDITIONS,
    CONDITIONAL,
    DEFAULT_RING_S,
    ForwardCondition,
    Forwarding,
    LineSettings,
    PreAnswer,
    VoicePresentation,
)
from routing.restrictions import CustomProfile, PrefixList, RestrictionTable
from routing.starcodes import (
    CODES,
    Action,
    CallGroup,
    CallVoicemail,
    CancelForward,
    Command,
    Invalid,
    JoinGroup,
    LeaveGroup,
    NotAStarCode,
    Pickup,
    PlaceCall,
    QueryClir,
    QueryForward,
    QueryForwardProtection,
    QueryPreAnswer,
    QueryVoicePresentation,
    RecallForward,
    RecordPreAnswer,
    Reply,
    SetClir,
    SetForward,
    SetForwardProtection,
    SetPreAnswer,
    SettingCommand,
    SetVoicePresentation,
    SpeedDial,
    StarContext,
    apply,
    parse,
    resolve_speed_dial,
)

U = ForwardCondition.UNCONDITIONAL
B = ForwardCondition.BUSY
N = ForwardCondition.NO_ANSWER
R = ForwardCondition.UNREACHABLE

MOBILE = "+33612345678"

# STAR-CODES.md, every code as the spec writes it (office table, then GSM table).
SPEC_CODES = {
    "*24*<dest>", "*24", "*24*0", "**24",
    "*27*<dest>", "*27", "*27*0", "**27",
    "*65*1", "*65*0", "**65",
    "*66*<number>",
    "*35*2", "*35*1", "*35*0", "**35",
    "*31*<group>", "*30*<group>", "*31", "*30",
    "*33*0", "**33", "*33*1", "*33*2", "*33*3", "*33*4", "*33*5",
    "*89*1", "*89*0", "**89",
    "888", "999", "700-869",
    "**21*<dest>#", "**61*<dest>[*<seconds>]#", "**62*<dest>#", "**67*<dest>#",
    "*#21#", "*#61#", "*#62#", "*#67#",
    "##21#", "##61#", "##62#", "##67#",
    "##004#", "##002#",
}  # fmt: skip

CTX = StarContext(
    extension="401",
    direct_number="+33140000401",
    forward_profile=10,
    extensions=frozenset({"401", "402", "403", "601"}),
    groups=frozenset({"999", "500", "501"}),
    member_of=frozenset({"999", "500"}),
    speed_dials={"700": "+33145795218", "701": "3639"},
    protected=lambda extension: extension == "403",
)

S0 = LineSettings()


def fw(**kwargs: object) -> LineSettings:
    return LineSettings(forwarding=Forwarding(**kwargs))  # type: ignore[arg-type]


RECORDED = LineSettings(pre_answer=PreAnswer(False, "pre-answer/401.wav"))

# (dialled, syntax, command, settings before, settings after, reply); actions have no
# settings (None) and no reply.
CASES: list[tuple[str, str, Command, LineSettings | None, LineSettings | None, Reply | None]] = [
    # -- office ---------------------------------------------------------------------
    ("*24*0612345678", "*24*<dest>", SetForward((R,), "0612345678"),
     S0, fw(unreachable=MOBILE, last_destination=MOBILE), Reply.ACCEPTED),
    ("*24", "*24", RecallForward((R,)),
     fw(last_destination=MOBILE), fw(unreachable=MOBILE, last_destination=MOBILE), Reply.ACCEPTED),
    ("*24*0", "*24*0", CancelForward((R,)),
     fw(unreachable=MOBILE, last_destination=MOBILE), fw(last_destination=MOBILE), Reply.ACCEPTED),
    ("**24", "**24", QueryForward((R,)),
     fw(unreachable=MOBILE), fw(unreachable=MOBILE), Reply.ACTIVE),
    ("*27*402", "*27*<dest>", SetForward((R, N), "402"),
     S0, fw(unreachable="402", no_answer="402", last_destination="402"), Reply.ACCEPTED),
    ("*27", "*27", RecallForward((R, N)),
     fw(last_destination="402"),
     fw(unreachable="402", no_answer="402", last_destination="402"), Reply.ACCEPTED),
    ("*27*0", "*27*0", CancelForward((R, N)),
     fw(unreachable="402", no_answer="402", busy="402"), fw(busy="402"), Reply.ACCEPTED),
    ("**27", "**27", QueryForward((R, N)),
     fw(unreachable="402"), fw(unreachable="402"), Reply.INACTIVE),
    ("*65*1", "*65*1", SetClir(True), S0, LineSettings(clir=True), Reply.ACCEPTED),
    ("*65*0", "*65*0", SetClir(False), LineSettings(clir=True), S0, Reply.ACCEPTED),
    ("**65", "**65", QueryClir(), LineSettings(clir=True), LineSettings(clir=True), Reply.ACTIVE),
    ("*66*0612345678", "*66*<number>", PlaceCall("0612345678", withheld=True), None, None, None),
    ("*35*2", "*35*2", RecordPreAnswer(max_s=60, end_key="#"), None, None, None),
    ("*35*1", "*35*1", SetPreAnswer(True),
     RECORDED, replace(RECORDED, pre_answer=PreAnswer(True, "pre-answer/401.wav")),
     Reply.ACCEPTED),
    ("*35*0", "*35*0", SetPreAnswer(False),
     replace(RECORDED, pre_answer=PreAnswer(True, "pre-answer/401.wav")), RECORDED,
     Reply.ACCEPTED),
    ("**35", "**35", QueryPreAnswer(), RECORDED, RECORDED, Reply.INACTIVE),
    ("*31*500", "*31*<group>", JoinGroup("500"),
     LineSettings(left_groups=frozenset({"500", "999"})),
     LineSettings(left_groups=frozenset({"999"})), Reply.ACCEPTED),
    ("*30*999", "*30*<group>", LeaveGroup("999"),
     S0, LineSettings(left_groups=frozenset({"999"})), Reply.ACCEPTED),
    ("*31", "*31", JoinGroup(None),
     LineSettings(left_groups=frozenset({"500", "999"})), S0, Reply.ACCEPTED),
    ("*30", "*30", LeaveGroup(None),
     S0, LineSettings(left_groups=frozenset({"500", "999"})), Reply.ACCEPTED),
    *(
        (f"*33*{m}", f"*33*{m}", SetVoicePresentation(VoicePresentation(m)),
         LineSettings(voice_presentation=VoicePresentation((m + 1) % 6)),
         LineSettings(voice_presentation=VoicePresentation(m)), Reply.ACCEPTED)
        for m in range(6)
    ),
    ("**33", "**33", QueryVoicePresentation(),
     LineSettings(voice_presentation=VoicePresentation.CALLER_AND_FORWARDER),
     LineSettings(voice_presentation=VoicePresentation.CALLER_AND_FORWARDER), Reply.ACTIVE),
    ("*89*1", "*89*1", SetForwardProtection(True),
     S0, LineSettings(forward_protection=True), Reply.ACCEPTED),
    ("*89*0", "*89*0", SetForwardProtection(False),
     LineSettings(forward_protection=True), S0, Reply.ACCEPTED),
    ("**89", "**89", QueryForwardProtection(), S0, S0, Reply.INACTIVE),
    ("888", "888", CallVoicemail(), None, None, None),
    ("999", "999", CallGroup("999"), None, None, None),
    ("750", "700-869", SpeedDial("750"), None, None, None),
    # -- mobile style ---------------------------------------------------------------
    ("**21*0612345678#", "**21*<dest>#", SetForward((U,), "0612345678"),
     S0, fw(unconditional=MOBILE, last_destination=MOBILE), Reply.ACCEPTED),
    ("**61*0612345678*30#", "**61*<dest>[*<seconds>]#", SetForward((N,), "0612345678", 30),
     S0, fw(no_answer=MOBILE, ring_s=30, last_destination=MOBILE), Reply.ACCEPTED),
    ("**62*402#", "**62*<dest>#", SetForward((R,), "402"),
     S0, fw(unreachable="402", last_destination="402"), Reply.ACCEPTED),
    ("**67*0145795218#", "**67*<dest>#", SetForward((B,), "0145795218"),
     S0, fw(busy="+33145795218", last_destination="+33145795218"), Reply.ACCEPTED),
    ("*#21#", "*#21#", QueryForward((U,)), fw(unconditional="888"), fw(unconditional="888"),
     Reply.ACTIVE),
    ("*#61#", "*#61#", QueryForward((N,)), S0, S0, Reply.INACTIVE),
    ("*#62#", "*#62#", QueryForward((R,)), fw(unreachable="402"), fw(unreachable="402"),
     Reply.ACTIVE),
    ("*#67#", "*#67#", QueryForward((B,)), fw(no_answer="402"), fw(no_answer="402"),
     Reply.INACTIVE),
    ("##21#", "##21#", CancelForward((U,)), fw(unconditional="402", busy="402"),
     fw(busy="402"), Reply.ACCEPTED),
    ("##61#", "##61#", CancelForward((N,)), fw(no_answer="402", ring_s=30), fw(ring_s=30),
     Reply.ACCEPTED),
    ("##62#", "##62#", CancelForward((R,)), fw(unreachable="402"), S0, Reply.ACCEPTED),
    ("##67#", "##67#", CancelForward((B,)), fw(busy="402"), S0, Reply.ACCEPTED),
    ("##004#", "##004#", CancelForward(CONDITIONAL),
     fw(unconditional="402", busy="402", no_answer="402", unreachable="402"),
     fw(unconditional="402"), Reply.ACCEPTED),
    ("##002#", "##002#", CancelForward(ALL_CONDITIONS),
     fw(unconditional="402", busy="402", no_answer="402", unreachable="402"), S0,
     Reply.ACCEPTED),
]  # fmt: skip


def test_the_table_holds_every_code_of_the_spec_and_only_those() -> None:
    spec_rows = [c.syntax for c in CODES if c.style != "extra"]
    assert len(spec_rows) == len(set(spec_rows))
    assert set(spec_rows) == SPEC_CODES
    assert {c.syntax for c in CODES if c.style == "extra"} == {"*8*<ext>"}


def test_every_code_of_the_spec_has_a_case() -> None:
    assert {case[1] for case in CASES} == SPEC_CODES


@pytest.mark.parametrize(
    ("dialled", "syntax", "command", "before", "after", "reply"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_code(
    dialled: str,
    syntax: str,
    command: Command,
    before: LineSettings | None,
    after: LineSettings | None,
    reply: Reply | None,
) -> None:
    parsed = parse(dialled)
    assert parsed == command
    assert isinstance(parsed, Command)
    assert parsed.dialled == dialled
    if before is None:
        assert isinstance(parsed, Action)
        return
    assert isinstance(parsed, SettingCommand)
    new, confirmation = apply(before, parsed, CTX)
    assert new == after
    assert confirmation.reply is reply
    assert confirmation.because[0] == f"code {dialled}"


# -- syntax variants -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "command"),
    [
        ("*65*1#", SetClir(True)),  # a final # is optional on office codes...
        ("*24*0612345678#", SetForward((R,), "0612345678")),
        ("**21*0612345678", SetForward((U,), "0612345678")),  # ...and on GSM ones
        ("*#61", QueryForward((N,))),
        ("##002", CancelForward(ALL_CONDITIONS)),
        ("**61*0612345678#", SetForward((N,), "0612345678", DEFAULT_RING_S)),
        ("%2A65%2A1", SetClir(True)),  # * and # escaped in a SIP URI
        ("%2a%2321%23", QueryForward((U,))),
        ("*24*0033612345678", SetForward((R,), "0033612345678")),
        ("*66*700", PlaceCall("700")),
        ("*66*112", PlaceCall("112")),
        ("*8*402", Pickup("402")),
        ("869", SpeedDial("869")),
        ("700", SpeedDial("700")),
    ],
)
def test_syntax_variants(dialled: str, command: Command) -> None:
    assert parse(dialled) == command


@pytest.mark.parametrize(
    "dialled", ["401", "601", "699", "870", "0612345678", "+33612345678", "", "3639", "112"]
)
def test_ordinary_numbers_are_not_star_codes(dialled: str) -> None:
    assert parse(dialled) == NotAStarCode(dialled)


@pytest.mark.parametrize(
    ("dialled", "reason", "syntax"),
    [
        ("*24*06", "destination 06 : numéro invalide", "*24*<dest>"),  # wrong number of digits
        ("*24*061234567", "destination 061234567 : numéro invalide", "*24*<dest>"),
        ("**67*1#", "destination 1 : numéro invalide", "**67*<dest>#"),
        ("*24*" + "1" * 21, "trop long", "*24*<dest>"),
        ("*24*", "destination : vide", "*24*<dest>"),
        ("*66*", "numéro : vide", "*66*<number>"),
        ("*31*50", "groupement 50 : 3 chiffres attendus", "*31*<group>"),
        ("*30*5000", "groupement 5000 : 3 chiffres attendus", "*30*<group>"),
        ("*8*40", "poste 40 : 3 chiffres attendus", "*8*<ext>"),
        ("**61*0612345678*4#", "durée de sonnerie 4 : 5 à 60 secondes", None),
        ("**61*0612345678*61#", "durée de sonnerie 61", None),
        ("**61*0612345678*#", "durée de sonnerie (vide)", None),
        ("*65*2", "forme attendue *65*1, *65*0", "*65"),
        ("*65", "forme attendue *65*1, *65*0", "*65"),
        ("*33*6", "forme attendue *33*0, *33*1, *33*2, *33*3, *33*4, *33*5", "*33"),
        ("*35*3", "forme attendue *35*2, *35*1, *35*0", "*35"),
        ("*89*", "forme attendue *89*1, *89*0", "*89"),
        ("*241", "forme attendue *24*0, *24*<dest>, *24", "*24"),
        ("**61*06*20*5#", "forme attendue **61*<dest>[*<seconds>]#", "**61"),
        ("*99", "code inconnu *99", None),
        ("*", "code inconnu *", None),
        ("#", "code inconnu #", None),
        ("##", "code inconnu ##", None),
        ("*#99#", "code inconnu *#99#", None),
        ("**24**", "forme attendue **24", "**24"),
    ],
)
def test_malformed_codes_are_invalid_with_a_reason(
    dialled: str, reason: str, syntax: str | None
) -> None:
    parsed = parse(dialled)
    assert isinstance(parsed, Invalid)
    assert parsed.dialled == dialled
    assert reason in parsed.reason
    if syntax is not None:
        assert parsed.syntax == syntax


@given(st.text(alphabet="0123456789*#", max_size=40))
def test_parse_never_raises_on_keypad_strings(dialled: str) -> None:
    parsed = parse(dialled)
    assert isinstance(parsed, NotAStarCode | Invalid | Command)
    if dialled.startswith(("*", "#")):
        assert not isinstance(parsed, NotAStarCode)


@given(st.text(max_size=40))
def test_parse_never_raises_on_any_text(dialled: str) -> None:
    parse(dialled)


@given(
    st.text(alphabet="0123456789*#", max_size=30),
    st.sampled_from([S0, fw(last_destination="402"), RECORDED, LineSettings(clir=True)]),
    st.integers(min_value=0, max_value=11),
)
def test_apply_never_raises_on_what_parse_returns(
    dialled: str, settings: LineSettings, profile: int
) -> None:
    parsed = parse(dialled)
    if isinstance(parsed, SettingCommand):
        new, confirmation = apply(settings, parsed, replace(CTX, forward_profile=profile))
        if confirmation.reply is Reply.REFUSED:
            assert new == settings


# -- apply: refusals and choices ---------------------------------------------------------


def refused(dialled: str, settings: LineSettings = S0, ctx: StarContext = CTX) -> str:
    parsed = parse(dialled)
    assert isinstance(parsed, SettingCommand)
    new, confirmation = apply(settings, parsed, ctx)
    assert confirmation.reply is Reply.REFUSED
    assert confirmation.refused
    assert new == settings  # a refused code changes nothing
    assert confirmation.because[-1] == "refusé"
    return " | ".join(confirmation.because)


def accepted(dialled: str, settings: LineSettings = S0, ctx: StarContext = CTX) -> LineSettings:
    parsed = parse(dialled)
    assert isinstance(parsed, SettingCommand)
    new, confirmation = apply(settings, parsed, ctx)
    assert confirmation.reply is Reply.ACCEPTED, confirmation.because
    return new


def test_forward_to_a_destination_the_forward_profile_bars_is_refused() -> None:
    ctx = replace(CTX, forward_profile=1)  # Urgences, Gratuits et SAV
    why = refused("*24*0612345678", ctx=ctx)
    assert "profil 1 « Urgences, Gratuits et SAV » : mobile interdit" in why
    assert "surtaxé interdit" in refused("**21*0899123456#", ctx=ctx)
    # The profile for calls dialled is not the one that counts: only the forward profile.
    assert accepted("*24*0800123456", ctx=ctx).forwarding.unreachable == "+33800123456"


def test_forward_to_an_emergency_number_is_never_barred() -> None:
    ctx = replace(CTX, forward_profile=1)
    assert accepted("**21*112#", ctx=ctx).forwarding.unconditional == "112"
    # Not even by a company deny list that names it.
    table = RestrictionTable(deny=PrefixList.parse(["112"]))
    ctx = replace(ctx, restrictions=table)
    assert accepted("**21*112#", ctx=ctx).forwarding.unconditional == "112"


def test_forward_activation_reads_the_company_table() -> None:
    """The company's deny list bars a forward whatever the profile; a custom profile 8
    decides with its own classes and lists."""
    table = RestrictionTable(
        profiles=(
            CustomProfile(8, "Commerciaux", frozenset({"mobile"}), allow=PrefixList.parse(["+41"])),
        ),
        deny=PrefixList.parse(["06 99"]),
    )
    ctx = replace(CTX, restrictions=table)  # 401: forward profile 10
    why = refused("*24*0699123456", ctx=ctx)
    assert "liste d'interdiction de l'entreprise : préfixe 0699 (+33699) interdit" in why
    assert accepted("*24*0612345678", ctx=ctx).forwarding.unreachable == "+33612345678"
    p8 = replace(ctx, forward_profile=8)
    assert accepted("*24*0041446681800", ctx=p8).forwarding.unreachable == "+41446681800"
    assert "profil 8 « Commerciaux » : national interdit" in refused("*24*0140000000", ctx=p8)
    # A speed dial resolves first: the table applies to what it dials (701 → 3639).
    assert "profil 8 « Commerciaux » : surtaxé interdit" in refused("*24*701", ctx=p8)


@pytest.mark.parametrize(
    ("dialled", "why"),
    [
        ("*24*403", "poste 403 protégé contre les renvois (*89*1)"),
        ("*24*401", "renvoi vers son propre poste"),
        ("*24*0140000401", "renvoi vers sa propre ligne directe"),
        ("*24*499", "numéro interne inconnu 499"),
        ("*24*702", "numéro interne inconnu 702"),  # a speed-dial code with no entry
        ("*24", "aucune destination connue"),
        ("*27", "aucune destination connue"),
        ("*35*1", "aucune annonce enregistrée"),
        ("*31*502", "groupement inconnu 502"),
        ("*30*501", "pas membre du groupement 501"),
    ],
)
def test_refusals_say_why(dialled: str, why: str) -> None:
    assert why in refused(dialled)


def test_refused_without_voicemail_when_forwarding_to_it() -> None:
    assert "pas de messagerie vocale" in refused("**21*888#", ctx=replace(CTX, voicemail=False))


def test_join_or_leave_all_needs_a_group() -> None:
    ctx = replace(CTX, member_of=frozenset())
    assert "membre d'aucun groupement" in refused("*31", ctx=ctx)
    assert "membre d'aucun groupement" in refused("*30", ctx=ctx)


def test_recall_checks_the_last_destination_again() -> None:
    settings = fw(last_destination=MOBILE)
    assert "mobile interdit" in refused("*24", settings, replace(CTX, forward_profile=2))
    protected = fw(last_destination="403")
    assert "protégé" in refused("*27", protected)


def test_forward_to_voicemail_is_the_default_for_conditional_forwards() -> None:
    after = accepted("*24*888", fw(unreachable="402", last_destination="402"))
    assert after.forwarding.unreachable is None
    assert after.forwarding.last_destination == "402"  # voicemail is not a "last destination"
    assert accepted("**21*888#").forwarding.unconditional == "888"


def test_forward_to_a_speed_dial_stores_its_number() -> None:
    after = accepted("*24*700")
    assert after.forwarding.unreachable == "+33145795218"
    assert after.forwarding.last_destination == "+33145795218"
    assert accepted("**67*701#").forwarding.busy == "3639"


def test_forward_to_a_group_or_an_internal_line() -> None:
    assert accepted("*24*500").forwarding.unreachable == "500"
    assert accepted("**21*601#").forwarding.unconditional == "601"


def test_ring_time() -> None:
    ringing = fw(ring_s=30)
    # **61 without a ring time goes back to the default ring time...
    assert accepted("**61*402#", ringing).forwarding.ring_s == DEFAULT_RING_S
    # ...the office code *27 has none and keeps the current one.
    assert accepted("*27*402", ringing).forwarding.ring_s == 30
    assert accepted("**61*402*5#").forwarding.ring_s == 5
    assert accepted("**61*402*60#").forwarding.ring_s == 60


def test_activating_twice_is_accepted_twice() -> None:
    once = accepted("*65*1")
    assert accepted("*65*1", once) == once
    assert accepted("*31*500") == S0  # already in the group
    left = accepted("*30*500")
    assert accepted("*30*500", left) == left


def test_one_voice_presentation_at_a_time() -> None:
    one = accepted("*33*1")
    four = accepted("*33*4", one)
    assert four.voice_presentation is VoicePresentation.FORWARDER_STATE
    assert accepted("*33*0", four) == S0


def test_queries_answer_active_only_when_the_service_differs_from_its_initial_state() -> None:
    def reply(dialled: str, settings: LineSettings) -> Reply:
        parsed = parse(dialled)
        assert isinstance(parsed, SettingCommand)
        return apply(settings, parsed, CTX)[1].reply

    assert reply("**24", S0) is Reply.INACTIVE  # to voicemail: the initial state
    assert reply("**27", fw(unreachable="402", no_answer="402")) is Reply.ACTIVE
    assert reply("**35", replace(RECORDED, pre_answer=PreAnswer(True, "x"))) is Reply.ACTIVE
    assert reply("**33", S0) is Reply.INACTIVE
    assert reply("**89", LineSettings(forward_protection=True)) is Reply.ACTIVE
    assert reply("**65", S0) is Reply.INACTIVE


def test_confirmation_explains_itself() -> None:
    parsed = parse("*24*0612345678")
    assert isinstance(parsed, SetForward)
    _, confirmation = apply(S0, parsed, CTX)
    assert confirmation.because == (
        "code *24*0612345678",
        "renvoi sur non-connexion vers +33612345678, renvois : "
        "profil 10 « Tout autorisé » : mobile autorisé",
    )


def test_commands_built_by_hand_need_no_dialled_string() -> None:
    new, confirmation = apply(S0, SetForward((B,), "402"), CTX)
    assert new.forwarding.busy == "402"
    assert confirmation.because == ("renvoi sur occupation vers poste 402",)


def test_recording_does_not_activate_the_pre_answer_message() -> None:
    recorded = S0.with_pre_answer_message("pre-answer/401.wav")
    assert recorded.pre_answer == PreAnswer(False, "pre-answer/401.wav")
    active = accepted("*35*1", recorded)
    assert active.pre_answer.plays
    assert active.with_pre_answer_message(None).pre_answer == PreAnswer(False, None)


# -- speed dials -----------------------------------------------------------------------


def test_resolve_speed_dial() -> None:
    directory = {"700": "+33145795218", "869": "3639", "699": "+33100000000"}
    assert resolve_speed_dial("700", directory) == "+33145795218"
    assert resolve_speed_dial("869", directory) == "3639"
    assert resolve_speed_dial("701", directory) is None  # no entry
    assert resolve_speed_dial("699", directory) is None  # out of range 700-869
    assert resolve_speed_dial("abc", directory) is None


@pytest.mark.parametrize(
    ("conditions", "because"),
    [
        ((U,), "renvoi immédiat annulé"),
        ((B,), "renvoi sur occupation annulé (messagerie vocale)"),
        ((N,), "renvoi sur non-réponse annulé (messagerie vocale)"),
        ((R,), "renvoi sur non-connexion annulé (messagerie vocale)"),
        ((R, N), "renvoi sur non-connexion et renvoi sur non-réponse annulé (messagerie vocale)"),
        (CONDITIONAL, "renvois conditionnels annulé (messagerie vocale)"),
        (ALL_CONDITIONS, "tous les renvois annulé"),
    ],
)
def test_every_condition_has_a_label(
    conditions: tuple[ForwardCondition, ...], because: str
) -> None:
    _, confirmation = apply(S0, CancelForward(conditions), CTX)
    assert confirmation.reply is Reply.ACCEPTED
    assert confirmation.because == (because,)
