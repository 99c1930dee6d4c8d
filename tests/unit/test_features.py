"""Pure parts of the star-code executor and of the tests' tone classifier."""

from __future__ import annotations

import pytest

from ivr.announcements import tone_frames
from media.g711 import ulaw_decode
from media.tone import ACCEPTED, ACTIVE, INACTIVE, REFUSED, render, silence
from switch.features import LEAD_IN_MS, _silence, phone_from, phone_identity
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
    # Quotes cannot break out of the display name.
    assert phone_from("402", 'Bruno "B" Durand', False, "pbx.test").startswith('"Bruno B Durand"')


@pytest.mark.parametrize(("number", "withheld"), [("401", True), ("", False), ("anonymous", False)])
def test_towards_phones_a_withheld_caller_is_anonymous_without_pai(
    number: str, withheld: bool
) -> None:
    from_ = phone_from(number, "Accueil", withheld, "pbx.test")
    assert from_ == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    assert phone_identity(from_) == ()
