"""Phone-to-phone calls through the switch with real pjsua2 phones and real audio.

401 and 402 register over UDP; 401 calls 402 (digest 407 answered by pjsua2);
the audio each phone sends (a WAV sine) is recorded by the other and its
dominant frequency checked, so what is proved is that the relay carries the
content both ways, not that packets flow.
"""

from __future__ import annotations

import sqlite3
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from media.tone import dominant_frequency, sine
from tests.interop.phone import Phone
from tests.sip_support import SwitchProcess

pytestmark = pytest.mark.interop


def tone_file(path: Path, freq: int) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sine(freq, 3000, 8000, 0.3))
    return str(path)


def heard(path: Path, *, seconds: float = 1.2, timeout: float = 5.0) -> float | None:
    """The dominant frequency (1 or 2 kHz) of the last second of a pjsua2 recording.

    The WAV header is written late (by the conference bridge): read the raw
    samples after the 44-byte header, the rate from the header bytes, once the
    file holds ``seconds`` of audio.
    """
    deadline = time.monotonic() + timeout
    data = b""
    rate = 0
    while time.monotonic() < deadline:
        data = path.read_bytes() if path.exists() else b""
        rate = int.from_bytes(data[24:28], "little") if len(data) >= 44 else 0
        if rate and len(data) > 44 + int(seconds * rate) * 2:
            break
        time.sleep(0.1)
    pcm = data[44:]
    pcm = pcm[len(pcm) - rate * 2 :] if rate else b""
    return dominant_frequency(pcm, rate or 8000, [1000, 2000])


def cdr_rows(switch: SwitchProcess, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The CDR rows once there are ``count`` of them (a row is written as a call ends).

    The phone sees its call end a moment before the switch writes the row: poll
    the table (another process's file) with a deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(switch.data_dir / "cdr.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM cdr ORDER BY started_at")]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_401_calls_402_audio_both_ways_hold_resume_and_bye(
    phones: tuple[Phone, Phone, str], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    p401, p402, target = phones
    p401.command("call", target=target)
    invite = p402.command("answer")["invite"]
    assert "c=IN IP4 127.0.0.1" in invite
    p401.command("wait_state", state="CONFIRMED")
    p402.command("wait_state", state="CONFIRMED")

    p401.command("play", path=tone_file(tmp_path / "1k.wav", 1000))
    p402.command("play", path=tone_file(tmp_path / "2k.wav", 2000))
    p401.command("record", path=str(tmp_path / "at401.wav"))
    p402.command("record", path=str(tmp_path / "at402.wav"))
    p402.command("sleep", seconds=1.5)
    p401.command("sleep", seconds=0.2)
    assert heard(tmp_path / "at402.wav") == 1000
    assert heard(tmp_path / "at401.wav") == 2000

    # Hold and resume (a=sendonly re-INVITE relayed), then audio again.
    p401.command("hold")
    p401.command("sleep", seconds=0.5)
    p402.command("sleep", seconds=0.2)
    p401.command("unhold")
    p401.command("sleep", seconds=0.5)
    # pjsua2 rebuilds the call's stream on a re-INVITE: connect the player again.
    p401.command("play", path=str(tmp_path / "1k.wav"))
    p402.command("record", path=str(tmp_path / "again402.wav"))
    p402.command("sleep", seconds=1.5)
    p401.command("sleep", seconds=0.2)
    assert heard(tmp_path / "again402.wav") == 1000

    p402.command("hangup")  # BYE from the callee
    p401.command("wait_state", state="DISCONNECTED")
    rows = cdr_rows(switch_process, 1)
    assert rows[-1]["outcome"] == "answered"
    assert rows[-1]["cause"].startswith("callee-bye")
    assert "PCMU" in rows[-1]["codecs"] or "PCMA" in rows[-1]["codecs"]


def test_cancel_before_answer_and_busy(
    phones: tuple[Phone, Phone, str], switch_process: SwitchProcess
) -> None:
    p401, p402, target = phones
    p401.command("call", target=target)
    p401.command("wait_state", state="EARLY")  # 180 relayed
    p401.command("hangup")  # CANCEL
    p402.command("wait_state", state="DISCONNECTED")
    states = p401.command("wait_state", state="DISCONNECTED")["states"]
    assert states[-1]["status"] == 487

    p402.command("busy", code=486)
    p401.command("call", target=target)
    states = p401.command("wait_state", state="DISCONNECTED")["states"]
    assert states[-1]["status"] == 486
    outcomes = [(r["outcome"], r["cause"]) for r in cdr_rows(switch_process, 2)]
    assert outcomes == [("cancelled", "caller-cancelled"), ("busy", "486")]
