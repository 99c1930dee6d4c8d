"""SDES-SRTP offered to callees (B legs), with real pjsua2 phones and real audio.

402 is declared ``device: {srtp: require}`` and registers over TLS with SRTP
mandatory (and TLS required for it): pjsua2 then refuses any RTP/AVP offer, so
the switch's INVITE must offer RTP/SAVP with its own ``a=crypto``. 403 is
declared ``srtp: offer`` and registers with SRTP optional: it gets RTP/AVP with
``a=crypto`` (best effort). A 1 kHz tone sent by the caller must be heard by the
callee, a 2 kHz tone the other way (dominant frequency of each recording): the
relay's b side decrypts and encrypts with the keys of the callee's answer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.interop.phone import Phone
from tests.interop.test_calls import cdr_rows, heard, tone_file
from tests.sip_support import SwitchConfig, SwitchProcess

pytestmark = pytest.mark.interop

LEVEL = int(os.environ.get("PJ_LOG", "0"))


def declare_srtp(text: str, extension: str, mode: str) -> str:
    """``directory.yaml`` with the device of ``extension`` declared ``srtp: mode``."""
    pattern = rf"(- extension: {extension}\n(?:\s+[^-\n].*\n)*?\s+device: \{{model: softphone)\}}"
    text, count = re.subn(pattern, rf"\1, srtp: {mode}}}", text)
    assert count == 1, f"no softphone device for {extension}"
    return text


@pytest.fixture
def switch_config(switch_config: SwitchConfig) -> SwitchConfig:
    path = switch_config.config_dir / "directory.yaml"
    text = path.read_text(encoding="utf-8")
    text = declare_srtp(declare_srtp(text, "402", "require"), "403", "offer")
    path.write_text(text, encoding="utf-8")
    return switch_config


def talk(caller: Phone, callee: Phone, tmp_path: Path) -> None:
    """Both phones play a tone and record; each must hear the other's."""
    caller.command("play", path=tone_file(tmp_path / "1k.wav", 1000))
    callee.command("play", path=tone_file(tmp_path / "2k.wav", 2000))
    caller.command("record", path=str(tmp_path / "at-caller.wav"))
    callee.command("record", path=str(tmp_path / "at-callee.wav"))
    callee.command("sleep", seconds=1.5)
    caller.command("sleep", seconds=0.2)
    assert heard(tmp_path / "at-callee.wav") == 1000
    assert heard(tmp_path / "at-caller.wav") == 2000


def hang_up(caller: Phone, callee: Phone, switch: SwitchProcess) -> None:
    caller.command("hangup")
    callee.command("wait_state", state="DISCONNECTED")
    row = cdr_rows(switch, 1)[-1]
    assert row["outcome"] == "answered"
    assert str(row["cause"]).startswith("caller-")


def ready(phone: Phone, transport: str, registrar: str, **srtp: int) -> None:
    """``phone`` started on ``transport`` and registered (``srtp``: pjsua2's SRTP
    settings for the account, ``srtp`` and ``srtp_signaling``)."""
    phone.command("init", transport=transport, codec="PCMU/8000", log_level=LEVEL)
    user = phone.name
    result = phone.command(
        "register", registrar=registrar, user=user, password=f"secret{user}", **srtp
    )
    assert result["status"] == 200, result


def connect(caller: Phone, callee: Phone, target: str) -> str:
    """``caller`` calls ``target``, ``callee`` answers: the INVITE it got."""
    caller.command("call", target=target)
    invite: str = callee.command("answer")["invite"]
    caller.command("wait_state", state="CONFIRMED")
    callee.command("wait_state", state="CONFIRMED")
    return invite


def test_plain_phone_calls_srtp_only_phone_over_tls_audio_both_ways(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    tls = f"sip:127.0.0.1:{switch_process.tls_port};transport=tls"
    udp = f"sip:127.0.0.1:{switch_process.sip_port}"
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
    ):
        ready(p401, "udp", udp)
        ready(p402, "tls", tls, srtp=2, srtp_signaling=1)
        invite = connect(p401, p402, f"sip:402@127.0.0.1:{switch_process.sip_port}")
        assert " RTP/SAVP " in invite
        assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in invite
        talk(p401, p402, tmp_path)
        hang_up(p401, p402, switch_process)


def test_srtp_phone_calls_srtp_only_phone_each_leg_terminated(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    tls = f"sip:127.0.0.1:{switch_process.tls_port};transport=tls"
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
    ):
        ready(p401, "tls", tls, srtp=2, srtp_signaling=1)
        ready(p402, "tls", tls, srtp=2, srtp_signaling=1)
        invite = connect(p401, p402, f"sip:402@127.0.0.1:{switch_process.tls_port};transport=tls")
        assert " RTP/SAVP " in invite
        # The switch's own keys, not the caller's: the INVITE 402 gets offers every
        # suite of the switch (tags 1-4), whatever 401 offered.
        assert re.findall(r"a=crypto:(\d) ", invite) == ["1", "2", "3", "4"]
        talk(p401, p402, tmp_path)
        hang_up(p401, p402, switch_process)


def test_plain_phone_calls_srtp_optional_phone_best_effort_offer(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    tls = f"sip:127.0.0.1:{switch_process.tls_port};transport=tls"
    udp = f"sip:127.0.0.1:{switch_process.sip_port}"
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="403", log_path=str(tmp_path / "403.log")) as p403,
    ):
        ready(p401, "udp", udp)
        ready(p403, "tls", tls, srtp=1)
        invite = connect(p401, p403, f"sip:403@127.0.0.1:{switch_process.sip_port}")
        assert " RTP/AVP " in invite
        assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in invite
        talk(p401, p403, tmp_path)
        hang_up(p401, p403, switch_process)
