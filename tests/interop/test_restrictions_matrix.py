"""Acceptance of RESTRICTIONS.md, end to end: every profile 1-10 against one number
of each destination class, and the company's lists, on a running switch.

- The switch runs as its own process (``aiguilleur run``) with this file's
  ``directory.yaml``: lines 401-410, line 4PP with profile PP for the calls it
  dials (its direct number ``+331400004PP`` is the ``From`` the trunk sees, so
  every INVITE that arrives names its cell). Profiles 8 and 9 are the company's
  own, with their own allow/deny prefixes; the company bars ``112`` (never
  applied: an emergency number), ``0897`` and ``+44 90`` for every line and lifts
  the high-risk ``+53`` (Cuba).
- One SIPp UAS plays the trunk ``carrier`` at 127.0.0.1:5090 for the whole matrix
  (``-m`` = the number of allowed cells), answers every INVITE ``486`` at once and
  logs what arrives (``-trace_msg``).
- Raw SIP UAs (``tests.adapter.raw_ua``: digest-authenticated lines) place the
  calls, ten lines in parallel; a real pjsua2 phone on line 401 (profile 1) places
  the ``112`` cell.

Each cell is checked three ways: what the caller got (``486`` from the trunk for an
allowed call, ``403`` with the reason phrase for a barred one), whether the INVITE
with the expected Request-URI reached SIPp (exactly once, or never), and the CDR
row (outcome ``busy``, or ``rejected`` with the barring cause). The verdicts are
written out in ``EXPECTED`` below from RESTRICTIONS.md and this directory, never
computed with ``routing.restrictions``.

Port 5090 is shared: run under ``flock /tmp/aiguilleur-5090.lock``.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from switch.sip.message import Response
from tests.adapter.raw_ua import WAIT, OutCall, RawUa
from tests.interop.conftest import registered_phones
from tests.interop.test_trunk import cdr_export, finish, messages, sipp, wait_bound
from tests.sip_support import SwitchConfig, SwitchProcess

pytestmark = pytest.mark.interop

SCENARIO = "uas-expect-486-at-once.xml"
PROFILES = range(1, 11)


def line(profile: int) -> str:
    return f"4{profile:02d}"


DIRECTORY = """\
companies:
  - id: matrice
    name: Matrice
    domain: pbx.test
    contract: {id: C-9000, name: Matrice}
    main_number: "+33140000401"
    restrictions:
      profiles:
        8: {name: Commerciaux, classes: [free, shared_cost, national, azur, mobile],
            allow: ["+41"], deny: ["0970"]}
        9: {name: Accueil, classes: [free, national, overseas],
            allow: ["118"], deny: ["06 92"]}
      allow: ["+53"]
      deny: ["112", "0897", "+44 90"]
    lines:
""" + "".join(
    f"      - {{extension: {line(p)}, name: Profil {p}, "
    f'direct_number: "+33140000{line(p)}", password: "secret{line(p)}", '
    f"device: {{model: softphone}}, restrictions: {{direct: {p}, forwarded: {p}}}}}\n"
    for p in PROFILES
)


@dataclass(frozen=True)
class Row:
    """One destination: what is dialled, what the trunk must receive, which profiles
    reach it, and the CDR cause of the others (by profile when it differs)."""

    what: str
    dialled: str
    ruri: str  # the Request-URI user at the trunk (number_format e164; short as dialled)
    allowed: frozenset[int]
    barred: str  # the cause of a barred cell
    barred_by: tuple[tuple[int, str], ...] = ()  # (profile, cause) exceptions

    def cause(self, profile: int) -> str:
        return dict(self.barred_by).get(profile, self.barred)


def allowed(*profiles: int) -> frozenset[int]:
    return frozenset(profiles)


ALL = allowed(*PROFILES)

# RESTRICTIONS.md row by row (profiles 1-7 and 10), and this file's profiles 8 (free,
# shared_cost, national, azur, mobile; +41 allowed, 0970 denied) and 9 (free, national,
# overseas; 118 allowed, 06 92 denied).
EXPECTED = (
    # -- one number per class (NUMBERING.md) --
    Row("emergency", "112", "112", ALL, ""),  # in the company's deny list, all the same
    Row("free", "0805123456", "+33805123456", ALL, ""),
    Row("free short", "3000", "3000", ALL, ""),
    Row(
        "shared cost",
        "0806123456",
        "+33806123456",
        allowed(2, 3, 4, 5, 6, 7, 8, 10),
        "barred:shared_cost",
    ),
    Row(
        "national",
        "0140000000",
        "+33140000000",
        allowed(2, 3, 4, 5, 6, 7, 8, 9, 10),
        "barred:national",
    ),
    Row("azur", "0811123456", "+33811123456", allowed(3, 4, 5, 6, 7, 8, 10), "barred:azur"),
    Row("mobile", "0612345678", "+33612345678", allowed(4, 5, 6, 7, 8, 10), "barred:mobile"),
    Row("overseas", "0262123456", "+262262123456", allowed(5, 6, 7, 9, 10), "barred:overseas"),
    Row("premium", "0899123456", "+33899123456", allowed(6, 10), "barred:premium"),
    Row("premium short", "3639", "3639", allowed(6, 10), "barred:premium"),
    Row(
        "international",
        "+442079460000",
        "+442079460000",
        allowed(7, 10),
        "barred:international",
    ),
    Row(
        "high-risk international",
        "+88216000000",
        "+88216000000",
        allowed(10),
        "barred:high_risk_international",
    ),
    Row("special", "2424", "2424", allowed(10), "barred:special"),
    # -- the company's lists --
    Row("company deny, national", "0897123456", "+33897123456", allowed(), "barred:company-deny"),
    Row(
        "company deny, international",
        "+449098790000",
        "+449098790000",
        allowed(),
        "barred:company-deny",
    ),
    Row(
        "high-risk lifted by the company",
        "+5372345678",
        "+5372345678",
        allowed(7, 10),
        "barred:international",
    ),
    # -- the custom profiles' own lists --
    Row(
        "profile 8 allow",
        "+41446681800",
        "+41446681800",
        allowed(7, 8, 10),
        "barred:international",
    ),
    Row(
        "profile 8 deny",
        "0970123456",
        "+33970123456",
        allowed(2, 3, 4, 5, 6, 7, 9, 10),
        "barred:national",
        ((8, "barred:profile-deny"),),
    ),
    Row("profile 9 allow", "118712", "118712", allowed(6, 9, 10), "barred:premium"),
    Row(
        "profile 9 deny",
        "0692123456",
        "+262692123456",
        allowed(5, 6, 7, 10),
        "barred:overseas",
        ((9, "barred:profile-deny"),),
    ),
)

PHONE_CELL = (1, "112")  # placed by the pjsua2 phone, not a raw UA


def reason(cause: str) -> str:
    """The reason phrase a barred caller gets (written out, not computed)."""
    if cause in ("barred:company-deny", "barred:profile-deny"):
        return "Destination barred (deny list)"
    return "Destination barred (" + cause.removeprefix("barred:").replace("_", " ") + ")"


def expected_answers() -> dict[tuple[int, str], tuple[int, str]]:
    """(profile, dialled) -> (status, reason phrase) the caller gets."""
    out = {}
    for row in EXPECTED:
        for p in PROFILES:
            if p in row.allowed:
                out[(p, row.dialled)] = (486, "Busy Here")
            else:
                out[(p, row.dialled)] = (403, reason(row.cause(p)))
    return out


@pytest.fixture
def switch_config(switch_config: SwitchConfig) -> SwitchConfig:
    """config/example with this file's directory (clear passwords: hashed at start)."""
    (switch_config.config_dir / "directory.yaml").write_text(DIRECTORY, encoding="utf-8")
    return switch_config


async def final(out: OutCall) -> Response:
    """The final response to ``out``'s INVITE (whatever it is), ACKed."""
    queue = out.ua.box(out.call_id)
    async with asyncio.timeout(WAIT):
        while True:
            message = await queue.get()
            if (
                isinstance(message, Response)
                and message.status >= 200
                and message.cseq.method == "INVITE"
            ):
                out.ack_failure(message)
                return message


async def dial_all(profile: int, port: int) -> dict[tuple[int, str], tuple[int, str]]:
    """Line ``4PP`` dials every row, one call after the other."""
    ua = await RawUa.open(line(profile), f"secret{line(profile)}", port)
    got = {}
    try:
        for row in EXPECTED:
            if (profile, row.dialled) == PHONE_CELL:
                continue
            response = await final(await ua.call(row.dialled))
            got[(profile, row.dialled)] = (response.status, response.reason)
    finally:
        ua.close()
    return got


_INVITE = re.compile(r"^INVITE sip:([^@;>\s]+)@", re.M)
_FROM = re.compile(r"^From:.*<sip:([^@>]+)@", re.M)
_CALL_ID = re.compile(r"^Call-ID:\s*(\S+)", re.M)


def arrivals(log: str) -> Counter[tuple[int, str]]:
    """(profile, Request-URI user) of every INVITE SIPp received, once per Call-ID."""
    seen: dict[str, tuple[int, str]] = {}
    for block in log.split("message received")[1:]:
        invite = _INVITE.search(block)
        if invite is None:
            continue
        caller = _FROM.search(block)
        call_id = _CALL_ID.search(block)
        assert caller is not None
        assert call_id is not None
        number = caller.group(1)
        assert number.startswith("+331400004"), number
        seen[call_id.group(1)] = (int(number[-2:]), invite.group(1))
    return Counter(seen.values())


async def test_every_profile_against_every_class(
    switch_process: SwitchProcess, tmp_path: Path
) -> None:
    expected = expected_answers()
    reached = sum(len(row.allowed) for row in EXPECTED)
    peer = sipp(SCENARIO, tmp_path, calls=reached, timeout=50)
    wait_bound(peer)
    port = switch_process.sip_port

    # Ten lines in parallel, each placing its calls one after the other.
    results = await asyncio.gather(*(dial_all(p, port) for p in PROFILES))
    got = {cell: answer for result in results for cell, answer in result.items()}

    # 112 under profile 1 from a real phone (line 401 is in the company's deny list
    # for 112 too: an emergency number is never barred).
    with registered_phones(switch_process, tmp_path, line(1)) as (phone,):
        phone.command("call", target=f"sip:112@127.0.0.1:{port}")
        states = phone.command("wait_state", state="DISCONNECTED", timeout=15.0)["states"]
    got[PHONE_CELL] = (states[-1]["status"], states[-1]["reason"])

    assert got == expected

    out = finish(peer)
    assert peer.returncode == 0, out
    arrived = arrivals(messages(tmp_path, SCENARIO))
    want = Counter((p, row.ruri) for row in EXPECTED for p in row.allowed)
    assert arrived == want  # each allowed cell once, with its number; no barred one

    rows = cdr_export(switch_process)
    assert len(rows) == len(expected)
    cdr = {(str(r["caller"]), str(r["called"])): r for r in rows}
    for row in EXPECTED:
        for p in PROFILES:
            record = cdr[(f"{line(p)}@pbx.test", row.dialled)]
            if p in row.allowed:
                assert record["outcome"] == "busy", (p, row.what, record)
            else:
                assert (record["outcome"], record["cause"]) == ("rejected", row.cause(p)), (
                    p,
                    row.what,
                    record,
                )
