"""Transfers and pickup through the switch with three real pjsua2 phones and real audio.

401, 402 and 403 register over UDP (PCMU only, as desk phones). After each
transfer or pickup, the tone one remaining phone sends is recorded by the other
and its dominant frequency checked both ways (Goertzel, as ``test_calls``): what
is proved is that the relay joined the right two phones, not that packets flow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.interop.phone import Phone
from tests.interop.test_calls import cdr_rows, heard, tone_file
from tests.sip_support import SwitchProcess

pytestmark = pytest.mark.interop


def talk(first: Phone, second: Phone, tmp_path: Path, label: str) -> tuple[float | None, ...]:
    """``first`` sends 1 kHz, ``second`` 2 kHz; what each one hears."""
    first.command("play", path=tone_file(tmp_path / f"{label}-1k.wav", 1000))
    second.command("play", path=tone_file(tmp_path / f"{label}-2k.wav", 2000))
    first.command("record", path=str(tmp_path / f"{label}-first.wav"))
    second.command("record", path=str(tmp_path / f"{label}-second.wav"))
    second.command("sleep", seconds=1.5)
    first.command("sleep", seconds=0.2)
    return heard(tmp_path / f"{label}-first.wav"), heard(tmp_path / f"{label}-second.wav")


def test_blind_transfer_joins_402_and_403_with_audio(
    three: tuple[Phone, Phone, Phone, str], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    p401, p402, p403, switch = three
    p401.command("call", target=f"sip:402@{switch}")
    p402.command("answer")
    p401.command("wait_state", state="CONFIRMED")
    p402.command("wait_state", state="CONFIRMED")

    moved = p402.command("media_changes")["count"]
    p401.command("xfer", target=f"sip:403@{switch}")
    invite = p403.command("answer")["invite"]
    assert "Referred-By: <sip:401@pbx.test>" in invite
    p403.command("wait_state", state="CONFIRMED")
    statuses = [t["status"] for t in p401.command("wait_transfer")["transfers"]]
    assert statuses[0] == 100
    assert statuses[-1] == 200
    p401.command("wait_state", state="DISCONNECTED")  # the switch's BYE

    # 402 was moved by a re-INVITE: the transferee's tone reaches 403, and back.
    p402.command("wait_media_change", above=moved)
    at402, at403 = talk(p402, p403, tmp_path, "blind")
    assert (at402, at403) == (2000, 1000)

    p403.command("hangup")
    p402.command("wait_state", state="DISCONNECTED")
    rows = cdr_rows(switch_process, 2)
    assert rows[0]["cause"] == "transferred"
    assert rows[1]["outcome"] == "answered"


def test_attended_transfer_joins_the_held_402_and_403_with_audio(
    three: tuple[Phone, Phone, Phone, str], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    p401, p402, p403, switch = three
    first = p401.command("call", target=f"sip:402@{switch}")["call"]
    p402.command("answer")
    p401.command("wait_state", state="CONFIRMED", call=first)
    held = p401.command("media_changes", call=first)["count"]
    p401.command("hold", call=first)
    p401.command("wait_media_change", above=held, call=first)

    second = p401.command("call", target=f"sip:403@{switch}")["call"]
    p403.command("answer")
    p401.command("wait_state", state="CONFIRMED", call=second)
    p403.command("wait_state", state="CONFIRMED")

    joined = p402.command("media_changes")["count"]
    p401.command("xfer_replaces", dest=second, call=first)
    statuses = [t["status"] for t in p401.command("wait_transfer")["transfers"]]
    assert statuses[-1] == 200
    p401.command("wait_state", state="DISCONNECTED", call=first)
    p401.command("wait_state", state="DISCONNECTED", call=second)

    p402.command("wait_media_change", above=joined)  # resumed, joined to 403
    at402, at403 = talk(p402, p403, tmp_path, "attended")
    assert (at402, at403) == (2000, 1000)

    p402.command("hangup")
    p403.command("wait_state", state="DISCONNECTED")
    rows = cdr_rows(switch_process, 2)
    assert sorted(str(r["cause"]) for r in rows)[-1] == "transferred"


def test_pickup_of_ringing_402_by_403_with_replaces(
    three: tuple[Phone, Phone, Phone, str], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    p401, p402, p403, switch = three
    p401.command("call", target=f"sip:402@{switch}")
    p402.command("wait_incoming")
    p401.command("wait_state", state="EARLY")
    # What a BLF key knows of 402's ringing dialog (RFC 4235: 402's own view).
    dialog = p402.command("dialog")
    replaces = (
        f"{dialog['call_id']};to-tag={dialog['local']};from-tag={dialog['remote']};early-only"
    )
    p403.command("call", target=f"sip:402@{switch}", headers={"Replaces": replaces})
    p403.command("wait_state", state="CONFIRMED")
    p401.command("wait_state", state="CONFIRMED")
    states = p402.command("wait_state", state="DISCONNECTED")["states"]
    assert states[-1]["status"] == 487  # the switch cancelled 402's ringing INVITE

    at401, at403 = talk(p401, p403, tmp_path, "pickup")
    assert (at401, at403) == (2000, 1000)

    p403.command("hangup")
    p401.command("wait_state", state="DISCONNECTED")
    (row,) = cdr_rows(switch_process, 1)
    assert row["outcome"] == "answered"


def test_reliable_provisionals_end_to_end(switch_process: SwitchProcess, tmp_path: Path) -> None:
    """RFC 3262 through the switch: both phones require 100rel; the callee's
    reliable 180 reaches the caller reliably (PRACKed on each side), audio flows."""
    registrar = f"sip:127.0.0.1:{switch_process.sip_port}"
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
    ):
        for phone, user in ((p401, "401"), (p402, "402")):
            phone.command(
                "init",
                transport="udp",
                codec="PCMU/8000",
                log_level=int(os.environ.get("PJ_LOG", "0")),
            )
            result = phone.command(
                "register", registrar=registrar, user=user, password=f"secret{user}", prack=True
            )
            assert result["status"] == 200, result
        p401.command("call", target=f"sip:402@127.0.0.1:{switch_process.sip_port}")
        invite = p402.command("wait_incoming")["invite"]
        assert "100rel" in invite
        p401.command("wait_state", state="EARLY")
        p402.command("answer")
        p401.command("wait_state", state="CONFIRMED")
        at401, at402 = talk(p401, p402, tmp_path, "prack")
        assert (at401, at402) == (2000, 1000)
        p401.command("hangup")
        p402.command("wait_state", state="DISCONNECTED")
