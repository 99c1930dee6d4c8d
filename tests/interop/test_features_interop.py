"""Star codes from a real phone (pjsua2), and CLIR seen by SIPp playing the trunk.

- Line 401 dials codes; what its phone recorded is the confirmation for the code
  (``tests.features_support.confirmation``: the cadence of the 440 Hz tone), and
  the store file of the running switch holds the change (read from another
  connection while the switch runs). A malformed code gets the refused tone and
  changes nothing.
- ``*65*1`` then a call out: SIPp at 127.0.0.1:5090 (the trunk ``carrier``)
  receives ``Privacy: id``, a ``P-Asserted-Identity`` with the real number and an
  anonymous ``From`` (the scenario fails otherwise); ``*65*0`` presents again;
  ``*66*0612345678`` withholds one call only.

Run with ``flock /tmp/aiguilleur-5090.lock`` (port 5090 is shared).
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import pytest

from media.tone import dominant_frequency, sine
from routing.linesettings import LineSettings
from switch.line_settings import SqliteLineSettingsStore, line_settings_db_path
from tests.features_support import confirmation
from tests.interop.phone import Phone
from tests.interop.test_calls import heard, tone_file
from tests.interop.test_trunk import finish, messages, sipp, wait_bound
from tests.sip_support import SwitchProcess

pytestmark = pytest.mark.interop


def stored(switch: SwitchProcess, key: str = "401@pbx.test") -> LineSettings:
    store = SqliteLineSettingsStore(line_settings_db_path(switch.data_dir))
    try:
        return store.load(key)
    finally:
        store.close()


def phone(switch: SwitchProcess, tmp_path: Path, name: str) -> Phone:
    p401 = Phone(name=name, log_path=str(tmp_path / f"{name}.log"))
    p401.command(
        "init", transport="udp", codec="PCMU/8000", log_level=int(os.environ.get("PJ_LOG", "0"))
    )
    result = p401.command(
        "register", registrar=f"sip:127.0.0.1:{switch.sip_port}", user="401", password="secret401"
    )
    assert result["status"] == 200, result
    return p401


def dial_and_listen(
    switch: SwitchProcess, tmp_path: Path, code: str
) -> tuple[str | None, list[int]]:
    """Line 401 dials ``code`` from a fresh phone; the confirmation its recording
    holds, and the call's statuses (the phone process ends: the WAV is complete)."""
    record = tmp_path / f"{len(list(tmp_path.glob('*.wav')))}.wav"
    with phone(switch, tmp_path, f"401-{record.stem}") as p401:
        target = code.replace("#", "%23")
        p401.command("call", target=f"sip:{target}@127.0.0.1:{switch.sip_port}")
        p401.command("record", path=str(record), timeout=5.0)
        states = p401.command("wait_state", state="DISCONNECTED", timeout=15.0)["states"]
    with wave.open(str(record)) as heard:
        pcm = heard.readframes(heard.getnframes())
        rate = heard.getframerate()
    return confirmation(pcm, rate), [s["status"] for s in states]


def test_phone_dials_codes_and_hears_each_confirmation(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    assert stored(switch_process) == LineSettings()
    heard, statuses = dial_and_listen(switch_process, tmp_path, "*65*1")
    assert heard == "accepted"
    assert 200 in statuses  # answered by the switch, then its BYE
    assert stored(switch_process).clir
    assert dial_and_listen(switch_process, tmp_path, "**65")[0] == "active"
    assert dial_and_listen(switch_process, tmp_path, "**89")[0] == "inactive"
    assert dial_and_listen(switch_process, tmp_path, "*65*0#")[0] == "accepted"
    assert stored(switch_process) == LineSettings()


def test_malformed_code_gets_the_refused_tone_and_changes_nothing(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    assert dial_and_listen(switch_process, tmp_path, "*65*7")[0] == "refused"
    assert stored(switch_process) == LineSettings()
    assert "features.invalid" in switch_process.log()


def call_out(
    p401: Phone, switch: SwitchProcess, tmp_path: Path, dialled: str, scenario: str
) -> str:
    """401 calls ``dialled``; SIPp as the trunk runs ``scenario``; its message log."""
    proc = sipp(scenario, tmp_path)
    wait_bound(proc)
    p401.command("call", target=f"sip:{dialled}@127.0.0.1:{switch.sip_port}")
    states = p401.command("wait_state", state="DISCONNECTED", timeout=15.0)["states"]
    assert states[-1]["status"] == 486, states
    out = finish(proc)
    assert proc.returncode == 0, out
    log = messages(tmp_path, scenario)
    for stale in (tmp_path / scenario.removesuffix(".xml")).glob("*_messages.log"):
        stale.unlink()  # the next run of the same scenario writes its own
    return log


def test_clir_permanent_then_per_call_as_the_trunk_sees_it(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    assert dial_and_listen(switch_process, tmp_path, "*65*1")[0] == "accepted"
    assert stored(switch_process).clir
    with phone(switch_process, tmp_path, "401-calls") as p401:
        log = call_out(p401, switch_process, tmp_path, "0612345678", "uas-expect-privacy-486.xml")
        assert "P-Asserted-Identity: <sip:+33140000401@pbx.test;user=phone>" in log
        assert "+33140000401@pbx.test>;tag=" not in log  # not in From
    assert dial_and_listen(switch_process, tmp_path, "*65*0")[0] == "accepted"
    with phone(switch_process, tmp_path, "401-calls-2") as p401:
        log = call_out(
            p401, switch_process, tmp_path, "*66*0612345678", "uas-expect-privacy-486.xml"
        )
        assert "INVITE sip:+33612345678@127.0.0.1:5090" in log
        # The next call is presented again: the number in From, PAI, no Privacy.
        log = call_out(p401, switch_process, tmp_path, "0612345678", "uas-expect-486.xml")
        assert "From: <sip:+33140000401@pbx.test>" in log
        assert "P-Asserted-Identity: <sip:+33140000401@pbx.test;user=phone>" in log
        assert "Privacy:" not in log
        assert "anonymous.invalid" not in log


def test_record_pre_answer_from_a_phone_then_callers_hear_it(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    """``*35*2`` from line 401: the phone speaks (an 800 Hz WAV) after the beep and
    ends with ``#`` (RFC 4733); the switch stores a WAV holding that audio and the
    phone hears the accepted tone. ``*35*1`` activates it."""
    voice = tmp_path / "voice.wav"
    with wave.open(str(voice), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sine(800, 1000))
    record = tmp_path / "heard.wav"
    with phone(switch_process, tmp_path, "401-record") as p401:
        p401.command("call", target=f"sip:*35*2@127.0.0.1:{switch_process.sip_port}")
        p401.command("record", path=str(record), timeout=5.0)
        p401.command("play", path=str(voice))
        p401.command("sleep", seconds=2.5)  # the user speaks (the beep ends after 0.65 s)
        p401.command("dtmf", digits="#")
        p401.command("wait_state", state="DISCONNECTED", timeout=15.0)
    with wave.open(str(record)) as heard:
        assert confirmation(heard.readframes(heard.getnframes()), heard.getframerate()) == (
            "accepted"
        )
    settings = stored(switch_process)
    assert settings.pre_answer.message == "pre_answer/401@pbx.test.wav"
    with wave.open(str(switch_process.data_dir / settings.pre_answer.message)) as kept:
        pcm = kept.readframes(kept.getnframes())
        rate = kept.getframerate()
    assert len(pcm) / 2 / rate >= 1.0
    assert dominant_frequency(pcm, rate, [440, 800, 1000]) == 800
    assert dial_and_listen(switch_process, tmp_path, "*35*1")[0] == "accepted"
    assert stored(switch_process).pre_answer.plays


def test_forward_set_by_star_code_sends_calls_for_unregistered_401_to_402(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    """The issue's example end to end: 401's phone dials ``*24*402`` and hears it
    accepted, then unregisters; 403 calls 401 and it is 402 that rings and talks."""
    registrar = f"sip:127.0.0.1:{switch_process.sip_port}"
    with (
        phone(switch_process, tmp_path, "401-desk") as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
        Phone(name="403", log_path=str(tmp_path / "403.log")) as p403,
    ):
        for other, user in ((p402, "402"), (p403, "403")):
            other.command("init", transport="udp", codec="PCMU/8000")
            result = other.command(
                "register", registrar=registrar, user=user, password=f"secret{user}"
            )
            assert result["status"] == 200, result
        record = tmp_path / "code.wav"
        p401.command("call", target=f"sip:*24*402@127.0.0.1:{switch_process.sip_port}")
        p401.command("record", path=str(record), timeout=5.0)
        p401.command("wait_state", state="DISCONNECTED", timeout=15.0)
        assert stored(switch_process).forwarding.unreachable == "402"
        assert p401.command("unregister")["status"] == 200

        p403.command("call", target=f"sip:401@127.0.0.1:{switch_process.sip_port}")
        invite = p402.command("wait_incoming")
        assert invite  # 402 rings for 401
        p402.command("answer")
        p403.command("wait_state", state="CONFIRMED")
        p402.command("play", path=tone_file(tmp_path / "1k.wav", 1000))
        p403.command("record", path=str(tmp_path / "at403.wav"))
        p403.command("sleep", seconds=1.5)
        p403.command("hangup")
        p402.command("wait_state", state="DISCONNECTED")
    with wave.open(str(record)) as confirmation_wav:
        pcm = confirmation_wav.readframes(confirmation_wav.getnframes())
        assert confirmation(pcm, confirmation_wav.getframerate()) == "accepted"
    assert heard(tmp_path / "at403.wav") == 1000
