"""SDES-SRTP terminated at the relay, with real pjsua2 phones and real audio.

401 registers over TLS with SRTP mandatory (and TLS required for it); 402 is a
plain RTP phone over UDP. 401 calls 402: the switch answers 401 with its own
``a=crypto`` and offers 402 plain RTP/AVP, and the relay decrypts/encrypts on
401's leg. A 1 kHz tone sent by 401 must be heard by 402, a 2 kHz tone the other
way (dominant frequency of each recording).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.interop.phone import Phone
from tests.interop.test_calls import cdr_rows, heard, tone_file
from tests.sip_support import SwitchProcess

pytestmark = pytest.mark.interop


def test_srtp_phone_over_tls_calls_plain_phone_audio_both_ways(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    level = int(os.environ.get("PJ_LOG", "0"))
    tls = f"sip:127.0.0.1:{switch_process.tls_port};transport=tls"
    udp = f"sip:127.0.0.1:{switch_process.sip_port}"
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
    ):
        p401.command("init", transport="tls", codec="PCMU/8000", log_level=level)
        p402.command("init", transport="udp", codec="PCMU/8000", log_level=level)
        result = p401.command(
            "register", registrar=tls, user="401", password="secret401", srtp=2, srtp_signaling=1
        )
        assert result["status"] == 200, result
        result = p402.command("register", registrar=udp, user="402", password="secret402")
        assert result["status"] == 200, result

        p401.command("call", target=f"sip:402@127.0.0.1:{switch_process.tls_port};transport=tls")
        invite = p402.command("answer")["invite"]
        assert " RTP/AVP " in invite
        assert "a=crypto" not in invite
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

        p401.command("hangup")
        p402.command("wait_state", state="DISCONNECTED")
        row = cdr_rows(switch_process, 1)[-1]
        assert row["outcome"] == "answered"
        assert str(row["cause"]).startswith("caller-")
