"""Pure parts of the star-code executor and of the tests' tone classifier."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ivr.announcements import tone_frames
from media.g711 import ulaw_decode
from media.tone import ACCEPTED, ACTIVE, INACTIVE, REFUSED, render, silence
from switch.features import LEAD_IN_MS, _silence, phone_from, phone_identity
from switch.sip.headers import NAME_ADDR_VALUE_RE, QUOTED_STRING, parse_name_addr
from tests.features_support import confirmation


@pytest.mark.parametrize(
    ("cadence", "name"),
    [(ACCEPTED, "accepted"), (REFUSED, "refused"), (ACTIVE, "active"), (INACTIVE, "inactive")],
)
def test_each_confirmation_cadence_is_told_apart(
    cadence: tuple[tuple[float, int], ...], name: str
) -> None:
    pcm = silence(300) + render(cadence) + silence(300)
    assert confirmation(pcm, 8000) == name
    # The same at 16 kHz (what a pjsua2 recorder may write).
    assert confirmation(silence(300, 16000) + render(cadence, 16000), 16000) == name


def test_silence_or_another_tone_is_no_confirmation() -> None:
    assert confirmation(silence(2000), 8000) is None
    assert confirmation(render(((1000.0, 100), (0.0, 100)) * 3), 8000) is None


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
def test_lead_in_silence_is_whole_20_ms_frames(codec: str) -> None:
    frames = _silence(LEAD_IN_MS, codec)
    assert len(frames) == LEAD_IN_MS // 20
    assert {len(f) for f in frames} == {160}


def test_a_played_confirmation_decodes_to_its_cadence() -> None:
    frames = [*_silence(LEAD_IN_MS, "PCMU"), *tone_frames("inactive", "PCMU")]
    assert confirmation(ulaw_decode(b"".join(frames)), 8000) == "inactive"


def test_towards_phones_the_caller_is_its_number_at_our_domain_with_a_name() -> None:
    from_ = phone_from("401", "Accueil", False, "pbx.test")
    assert from_ == '"Accueil" <sip:401@pbx.test>'
    assert phone_identity(from_) == (("P-Asserted-Identity", from_),)
    # A trunk caller without a display name: the number shows.
    assert phone_from("+33612345678", None, False, "pbx.test") == (
        '"+33612345678" <sip:+33612345678@pbx.test>'
    )


@pytest.mark.parametrize(
    ("display", "shown"),
    [
        # RFC 3261 §25.1: '"' and '\\' are escaped as quoted-pairs, not dropped.
        ('Bruno "B" Durand', r'"Bruno \"B\" Durand"'),
        ("C:\\Partage", r'"C:\\Partage"'),
        ('\\"', r'"\\\""'),
        # Non-ASCII is qdtext (UTF8-NONASCII): shown as it is.
        ("Élodie Müller 李", '"Élodie Müller 李"'),
        # Control characters (C0, tab, line breaks, DEL, C1) are dropped.
        ("Acc\x00ueil\r\n", '"Accueil"'),
        ("Jean\tDupont\x7f\x85", '"JeanDupont"'),
        # A display-name as a trunk's From carries it is unquoted first.
        (r'"Jean \"JD\" Dupont"', r'"Jean \"JD\" Dupont"'),
        ('"Accueil"', '"Accueil"'),
        # Not a quoted-string (the inner quote is not escaped): plain text.
        ('"a" et "b"', r'"\"a\" et \"b\""'),
        # Nothing to show: the number.
        (None, '"401"'),
        ("", '"401"'),
        ("   ", '"401"'),
        ('""', '"401"'),
        ("\x07\x1b", '"401"'),
        # Bidi overrides/isolates and other invisible format characters are dropped
        # (a name could otherwise show in another order than written) ...
        ("\u202e1010", '"1010"'),
        ("Banque \u2067\u202dService\u2069\u200b\ufeff", '"Banque Service"'),
        ("\u202e\u2066", '"401"'),
        # ... right-to-left text itself stays, and so do the joiners Persian needs.
        ("שלום", '"שלום"'),
        ("می\u200cخواهم", '"می\u200cخواهم"'),
    ],
)
def test_towards_phones_the_display_name_is_a_quoted_string(
    display: str | None, shown: str
) -> None:
    assert phone_from("401", display, False, "pbx.test") == f"{shown} <sip:401@pbx.test>"


def test_towards_phones_the_number_keeps_what_can_be_dialled_back() -> None:
    assert phone_from("+33 1-40.00 04 01", None, False, "pbx.test") == (
        '"+33140000401" <sip:+33140000401@pbx.test>'
    )
    # Non-ASCII digits are not ASCII digits: nothing to dial back.
    assert phone_from("٤٠١", "Accueil", False, "pbx.test") == (
        '"Anonymous" <sip:anonymous@anonymous.invalid>'
    )


@given(st.text(max_size=40), st.booleans())
def test_any_display_name_parses_back_as_what_phones_show(text: str, as_written: bool) -> None:
    visible = "".join(
        c
        for c in text
        if unicodedata.category(c) != "Cc"
        and (unicodedata.category(c) != "Cf" or c in "\u200c\u200d")
    )
    if as_written:  # as a trunk's From carries it: a quoted-string
        display = '"' + visible.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:  # plain text (a line's name)
        assume(not re.fullmatch(QUOTED_STRING, text.strip()))
        display = text
    from_ = phone_from("401", display, False, "pbx.test")
    assert NAME_ADDR_VALUE_RE.fullmatch(from_), from_
    parsed = parse_name_addr(from_)
    assert str(parsed.uri) == "sip:401@pbx.test"
    assert parsed.display is not None
    shown = re.sub(r"\\(.)", r"\1", parsed.display[1:-1], flags=re.DOTALL)
    assert shown == (visible.strip() or "401")


@pytest.mark.parametrize(("number", "withheld"), [("401", True), ("", False), ("anonymous", False)])
def test_towards_phones_a_withheld_caller_is_anonymous_without_pai(
    number: str, withheld: bool
) -> None:
    from_ = phone_from(number, "Accueil", withheld, "pbx.test")
    assert from_ == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    assert phone_identity(from_) == ()
