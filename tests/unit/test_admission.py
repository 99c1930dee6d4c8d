"""Declared devices (real REGISTER samples) and the brute-force throttle with a fake clock."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.admission import Admission, Ban, device_identity, device_mismatch
from switch.directory import Device, Line, load_directory
from switch.sip.message import Headers, Request
from switch.sip.parser import parse_message
from switch.sip.uri import parse_uri

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example"
_DIRECTORY = load_directory(EXAMPLE)


def line(extension: str) -> Line:
    found = _DIRECTORY.line_for(extension, "pbx.test")
    assert found is not None
    return found[1]


VVX_LINE = line("404")  # vvx 0004f2000404
AASTRA_LINE = line("405")  # 67i 00085d000405
SOFT_LINE = line("401")  # softphone, no MAC
SOFT_WITH_MAC = dataclasses.replace(SOFT_LINE, device=Device(model="softphone", mac="0004f2aaaaaa"))


def register(extension: str, *extra: str, contact: str | None = None) -> Request:
    """A REGISTER as phones send them; ``extra`` are whole header lines."""
    contact = contact if contact is not None else f"<sip:{extension}@192.0.2.10:5060>"
    text = (
        "REGISTER sip:pbx.test SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK5f2a1b;rport\r\n"
        f'From: "Someone" <sip:{extension}@pbx.test>;tag=2C8E4F1A-9D3B7A62\r\n'
        f"To: <sip:{extension}@pbx.test>\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Call-ID: 4a1f6e2c-7b3d9e01-5c8a2f4b@192.0.2.10\r\n"
        f"Contact: {contact}\r\n"
        + "".join(f"{h}\r\n" for h in extra)
        + "Max-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


# Contacts and User-Agents as the phones write them.
VVX_UA = "User-Agent: PolycomVVX-VVX_411-UA/6.3.1.8427"


def vvx_contact(mac: str) -> str:
    return (
        "<sip:404@192.0.2.10;line=dkg7j1>;reg-id=1;q=1.0;"
        f'+sip.instance="<urn:uuid:00000000-0000-1000-8000-{mac}>";audio;mobility="fixed";'
        'duplex="full";description="VVX_411";actor="principal";events="talk,hold,conference";'
        'methods="INVITE,ACK,BYE,CANCEL,OPTIONS,INFO,MESSAGE,SUBSCRIBE,NOTIFY,PRACK,UPDATE,REFER"'
    )


AASTRA_HEADERS = (
    "User-Agent: Aastra 6757i/3.3.1.4322",
    "Aastra-Mac: 00085D000405",
    "Aastra-Line: 1",
)
PJSUA_UA = "User-Agent: PJSUA v2.15.1 Linux-6.1.0/x86_64/glibc-2.36"
PJSUA_CONTACT = (
    '<sip:401@192.0.2.30:40112;ob>;reg-id=1;+sip.instance="<urn:uuid:'
    '4b8c6bcd-1c4e-4a8e-9f1d-7a2c3b9e0f11>"'
)
LINPHONE_UA = "User-Agent: Linphone Desktop/5.2.4 (Debian GNU/Linux 12) LinphoneSDK/5.3.30"


# -- device identity -----------------------------------------------------------------


def test_identity_of_a_vvx() -> None:
    ident = device_identity(register("404", VVX_UA, contact=vvx_contact("0004F2000404")))
    assert ident.ua_model == "vvx"
    assert ident.ua_product == "VVX 411"
    assert ident.instance_nodes == ("0004f2000404",)
    assert ident.aastra_mac is None


def test_identity_of_an_aastra() -> None:
    ident = device_identity(register("405", *AASTRA_HEADERS))
    assert (ident.ua_model, ident.ua_product, ident.aastra_mac) == ("67i", "6757i", "00085d000405")


@pytest.mark.parametrize(
    ("ua", "model"),
    [
        ("PolycomVVX-VVX_450-UA/6.4.3.5018", "vvx"),
        ("PolycomVVX-VVX_250-UA/6.3.1.8427", "vvx"),
        ("Poly VVX 350/6.4.0", "vvx"),
        ("Aastra 6731i/3.3.1.4322", "67i"),
        ("Aastra 6757i/3.3.1.4322", "67i"),
        ("Mitel 6867i/5.1.0.1024", "67i"),
        ("PolycomSoundPointIP-SPIP_650-UA/4.0.15.1009", None),
        ("Yealink SIP-T46S 66.86.0.15", None),
        ("PJSUA v2.15.1 Linux-6.1.0/x86_64/glibc-2.36", None),
        ("friendly-scanner", None),
    ],
)
def test_user_agent_models(ua: str, model: str | None) -> None:
    assert device_identity(register("401", f"User-Agent: {ua}")).ua_model == model


@pytest.mark.parametrize(
    ("declared", "request_", "reason"),
    [
        # Poly VVX line 404 (0004f2000404)
        (VVX_LINE, register("404", VVX_UA, contact=vvx_contact("0004F2000404")), None),
        (VVX_LINE, register("404", VVX_UA, contact=vvx_contact("0004f2000404")), None),
        (VVX_LINE, register("404", VVX_UA), None),  # the model alone is an identity
        (VVX_LINE, register("404", contact=vvx_contact("0004f2000404")), None),
        (VVX_LINE, register("404", VVX_UA, contact="*"), None),
        (
            VVX_LINE,
            register("404", VVX_UA, contact=vvx_contact("0004f2999999")),
            "+sip.instance does not end in the declared MAC 0004f2000404",
        ),
        (
            VVX_LINE,
            register("404", *AASTRA_HEADERS),
            "User-Agent 'Aastra 6757i/3.3.1.4322' (6757i) on a line declared for a Poly VVX",
        ),
        (
            VVX_LINE,
            register(
                "404", VVX_UA, "Aastra-Mac: 0004F2000405", contact=vvx_contact("0004f2000404")
            ),
            "Aastra-Mac 0004f2000405 is not the declared MAC 0004f2000404",
        ),
        (
            VVX_LINE,
            register("404", PJSUA_UA, contact=PJSUA_CONTACT),
            "+sip.instance does not end in the declared MAC 0004f2000404",
        ),
        (
            VVX_LINE,
            register("404", PJSUA_UA),
            "no device identity (line declared for a Poly VVX 0004f2000404): "
            "no +sip.instance, Aastra-Mac or User-Agent model",
        ),
        (VVX_LINE, register("404"), "no device identity"),
        # Aastra/Mitel 67i line 405 (00085d000405)
        (AASTRA_LINE, register("405", *AASTRA_HEADERS), None),
        (AASTRA_LINE, register("405", "Aastra-Mac: 00:08:5d:00:04:05"), None),
        (AASTRA_LINE, register("405", "User-Agent: Mitel 6867i/5.1.0.1024"), None),
        (
            AASTRA_LINE,
            register("405", *AASTRA_HEADERS, contact=PJSUA_CONTACT),
            None,  # the instance UUID is not a MAC on these phones
        ),
        (
            AASTRA_LINE,
            register("405", "User-Agent: Aastra 6757i/3.3.1.4322", "Aastra-Mac: 00085D000999"),
            "Aastra-Mac 00085d000999 is not the declared MAC 00085d000405",
        ),
        (
            AASTRA_LINE,
            register("405", "Aastra-Mac: zz"),
            "Aastra-Mac ? is not the declared MAC 00085d000405",
        ),
        (
            AASTRA_LINE,
            register("405", VVX_UA, contact=vvx_contact("00085d000405")),
            "User-Agent 'PolycomVVX-VVX_411-UA/6.3.1.8427' (VVX 411) on a line declared "
            "for an Aastra/Mitel 67i",
        ),
        (AASTRA_LINE, register("405", LINPHONE_UA), "no device identity"),
        # Softphone line 401 (no MAC): any UA that does not claim a desk phone's MAC
        (SOFT_LINE, register("401", PJSUA_UA, contact=PJSUA_CONTACT), None),
        (SOFT_LINE, register("401", LINPHONE_UA, contact=PJSUA_CONTACT), None),
        (SOFT_LINE, register("401"), None),  # SIPp: no User-Agent at all
        (SOFT_LINE, register("401", "User-Agent: Aastra 6757i/3.3.1.4322"), None),
        (SOFT_LINE, register("401", VVX_UA), None),
        (
            SOFT_LINE,
            register("401", VVX_UA, contact=vvx_contact("0004f2000404")),
            "User-Agent 'PolycomVVX-VVX_411-UA/6.3.1.8427' (VVX 411) (+sip.instance "
            "0004f2000404) on a line declared for a softphone",
        ),
        (
            SOFT_LINE,
            register("401", *AASTRA_HEADERS),
            "User-Agent 'Aastra 6757i/3.3.1.4322' (6757i) (Aastra-Mac 00085d000405) on a line "
            "declared for a softphone",
        ),
        (
            SOFT_LINE,
            register("401", "Aastra-Mac: 00085D000405"),
            "an Aastra/Mitel 67i (Aastra-Mac 00085d000405) on a line declared for a softphone",
        ),
        # Softphone line declaring a MAC: that MAC is fine, another is not
        (SOFT_WITH_MAC, register("401", VVX_UA, contact=vvx_contact("0004F2AAAAAA")), None),
        (
            SOFT_WITH_MAC,
            register("401", VVX_UA, contact=vvx_contact("0004f2bbbbbb")),
            "User-Agent 'PolycomVVX-VVX_411-UA/6.3.1.8427' (VVX 411) (+sip.instance "
            "0004f2bbbbbb) on a line declared for a softphone",
        ),
    ],
)
def test_device_mismatch(declared: Line, request_: Request, reason: str | None) -> None:
    got = device_mismatch(declared, request_)
    if reason is None:
        assert got is None
    else:
        assert got is not None
        assert got.startswith(reason)


_HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=60,
)


@given(ua=_HEADER_TEXT, aastra=_HEADER_TEXT, instance=_HEADER_TEXT, contact=_HEADER_TEXT)
@settings(max_examples=300)
def test_device_mismatch_never_raises(ua: str, aastra: str, instance: str, contact: str) -> None:
    headers = Headers(
        [
            ("User-Agent", ua),
            ("Aastra-Mac", aastra),
            ("Contact", f'<sip:404@192.0.2.1>;+sip.instance="{instance}"'),
            ("Contact", contact),
        ]
    )
    request = Request("REGISTER", parse_uri("sip:pbx.test"), headers)
    for declared in (VVX_LINE, AASTRA_LINE, SOFT_LINE, SOFT_WITH_MAC):
        result = device_mismatch(declared, request)
        assert result is None or isinstance(result, str)


# -- throttle ------------------------------------------------------------------------

A, B = "198.51.100.7", "203.0.113.9"
LINE = "401@pbx.test"


def fail(adm: Admission, source: str, times: int, now: float, line_key: str = LINE) -> Ban | None:
    ban = None
    for _ in range(times):
        ban = adm.record_failure(source, line_key, now)
    return ban


def test_ten_failures_from_one_address_ban_it_for_a_day() -> None:
    adm = Admission()
    for i in range(9):
        assert adm.record_failure(A, f"{400 + i}@pbx.test", float(i)) is None
    assert adm.check(A, 9.0) is None
    ban = adm.record_failure(A, "499@pbx.test", 9.0)  # unknown users count the same
    assert ban == Ban(
        A, "10 authentication failures in 300 s from this address", "source", 9.0, 86_409.0
    )
    assert adm.new_bans() == [ban]
    assert adm.new_bans() == []
    assert adm.check(A, 10.0) is ban
    assert adm.check(B, 10.0) is None
    # Banned: further failures change nothing.
    assert adm.record_failure(A, LINE, 11.0) is ban
    assert adm.bans(100.0) == [ban]
    assert adm.bans_total == {"source": 1, "line": 0}
    # Expiry.
    assert adm.check(A, 86_408.9) is ban
    assert adm.check(A, 86_409.0) is None
    assert adm.bans(86_409.0) == []
    # A fresh start after the ban: one failure is one failure.
    assert adm.record_failure(A, LINE, 86_410.0) is None


def test_window_slides() -> None:
    adm = Admission(max_failures=10, window=300.0)
    # One failure every 34 s: never 10 within 300 s (9 x 34 = 306).
    for i in range(100):
        assert adm.record_failure(A, LINE, i * 34.0) is None
    # Every 30 s: the 10th falls at 270 s, within the window.
    adm = Admission(max_failures=10, window=300.0)
    bans = [adm.record_failure(B, LINE, i * 30.0) for i in range(10)]
    assert bans[:9] == [None] * 9
    assert bans[9] is not None


def test_configurable_thresholds_and_silence() -> None:
    adm = Admission(max_failures=3, window=60.0, ban_seconds=600.0, silent=True)
    assert adm.silent
    ban = fail(adm, A, 3, 5.0)
    assert ban is not None
    assert (ban.since, ban.until) == (5.0, 605.0)
    assert ban.reason == "3 authentication failures in 60 s from this address"


def test_a_line_attacked_from_many_addresses_bans_them_all() -> None:
    adm = Admission()
    sources = [f"192.0.2.{i}" for i in range(1, 11)]
    for src in sources[:9]:
        assert adm.record_failure(src, LINE, 1.0) is None
    ban = adm.record_failure(sources[9], LINE, 2.0)
    assert ban is not None
    assert ban.kind == "line"
    assert ban.reason == "10 authentication failures in 300 s against 401@pbx.test"
    new = adm.new_bans()
    assert sorted(b.address for b in new) == sorted(sources)
    assert all(adm.check(src, 3.0) is not None for src in sources)
    # While the line stays over the threshold, a new address is banned at once.
    late = adm.record_failure("192.0.2.200", LINE, 100.0)
    assert late is not None
    assert late.kind == "line"
    # Once the window has passed, one failure is one failure again.
    assert adm.record_failure("192.0.2.201", LINE, 400.0) is None
    # Other lines were never concerned.
    assert adm.record_failure("192.0.2.202", "402@pbx.test", 100.0) is None


def test_unknown_and_known_lines_are_counted_alike() -> None:
    known, unknown = Admission(), Admission()
    for i in range(10):
        a = known.record_failure(f"192.0.2.{i}", "401@pbx.test", float(i))
        b = unknown.record_failure(f"192.0.2.{i}", "498@pbx.test", float(i))
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.address, a.kind, a.since, a.until) == (b.address, b.kind, b.since, b.until)


def test_success_clears_the_line_but_not_the_address() -> None:
    adm = Admission()
    fail(adm, A, 5, 1.0)  # the owner mistypes five times...
    adm.record_success(A, LINE, 2.0)  # ...then gets it right
    for i in range(5):
        assert adm.record_failure(f"192.0.2.{i}", LINE, 3.0) is None  # 5 against the line
    # A's own failures still count for the per-address rule: a valid account
    # must not shield guesses against other lines.
    fail(adm, A, 4, 4.0, "402@pbx.test")
    adm.record_success(A, LINE, 5.0)
    ban = adm.record_failure(A, "403@pbx.test", 6.0)
    assert ban is not None
    assert ban.kind == "source"


def test_allow_list_is_never_counted_nor_banned() -> None:
    adm = Admission(max_failures=2, allow=["192.0.2.0/24", ipaddress.ip_network("2001:db8::/32")])
    for i in range(50):
        assert adm.record_failure("192.0.2.5", LINE, float(i)) is None
        assert adm.record_failure("2001:db8::5", LINE, float(i)) is None
        assert adm.record_challenge("192.0.2.5", f"{i}@pbx.test", float(i)) is None
    assert adm.check("192.0.2.5", 1000.0) is None
    assert adm.is_allowed("192.0.2.77")
    assert not adm.is_allowed(A)
    assert adm.tracked_sources == 0
    assert adm.tracked_lines == 0
    assert adm.bans(1000.0) == []


def test_ipv6_is_tracked_per_64_and_mapped_ipv4_as_ipv4() -> None:
    adm = Admission()
    for i in range(1, 11):
        ban = adm.record_failure(f"2001:db8:1:2::{i:x}", LINE, 1.0)
    assert ban is not None
    assert ban.address == "2001:db8:1:2::/64"
    assert adm.check("2001:db8:1:2:ffff::1", 2.0) is ban
    assert adm.check("2001:db8:1:3::1", 2.0) is None
    adm = Admission(max_failures=2)
    adm.record_failure("::ffff:198.51.100.7", LINE, 1.0)
    ban = adm.record_failure(A, LINE, 1.0)
    assert ban is not None
    assert ban.address == A
    assert adm.check("::ffff:198.51.100.7", 2.0) is ban


def test_answered_challenges_never_ban_an_office_behind_one_address() -> None:
    adm = Admission()
    # Fifty phones behind one NAT boot at once: fifty challenges, then fifty successes.
    for i in range(50):
        assert adm.record_challenge(A, f"{400 + i}@pbx.test", 0.0) is None
    for i in range(50):
        adm.record_success(A, f"{400 + i}@pbx.test", 0.1)
    assert adm.check(A, 100.0) is None
    assert adm.bans(100.0) == []
    # And every hour each refreshes with one more challenge: still nothing.
    for hour in range(1, 5):
        for i in range(50):
            adm.record_challenge(A, f"{400 + i}@pbx.test", hour * 3600.0)
            adm.record_success(A, f"{400 + i}@pbx.test", hour * 3600.0 + 0.05)
        assert adm.check(A, hour * 3600.0 + 60) is None


def test_unanswered_challenges_ban_a_scanner() -> None:
    adm = Admission()
    # svwar: REGISTER without credentials for 100, 101, ... never answered.
    for i in range(20):
        assert adm.record_challenge(A, f"{100 + i}@pbx.test", i * 0.01) is None
    assert adm.check(A, 10.0) is None  # within the grace period: could be phones
    ban = adm.check(A, 32.5)
    assert ban is not None
    assert ban.reason == "10 authentication failures in 300 s from this address"
    # A scanner that stopped sending shows up in bans() all the same.
    adm = Admission()
    for i in range(20):
        adm.record_challenge(B, f"{100 + i}@pbx.test", 0.0)
    assert [b.address for b in adm.bans(40.0)] == [B]
    assert [b.address for b in adm.new_bans()] == [B]


def test_a_fast_scanner_cannot_push_its_own_challenges_out_before_they_count() -> None:
    """svwar run back to back: a new line every 60 ms, so more than ``4 *
    max_failures`` challenges within one grace period. They used to push each other
    out of memory before their grace was over: the scanner was never banned."""
    adm = Admission(max_failures=3, window=60.0, challenge_grace=1.0)
    ban = None
    for i in range(500):
        now = i * 0.06
        ban = adm.check(A, now) or adm.record_challenge(A, f"{i}@pbx.test", now)
        if ban is not None:
            break
    assert ban is not None
    # Banned as soon as the third challenge (t = 0.12) is past its grace.
    assert ban.since == pytest.approx(1.14)
    assert ban.reason == "3 authentication failures in 60 s from this address"


def test_answers_take_back_challenges_pushed_out_of_memory() -> None:
    adm = Admission(max_failures=3, window=60.0, challenge_grace=1.0)
    # Twenty phones behind one NAT challenged at once: eight are pushed out of the
    # twelve remembered with their lines; every phone answers.
    for i in range(20):
        assert adm.record_challenge(A, f"{400 + i}@pbx.test", 0.0) is None
    for i in range(20):
        adm.record_success(A, f"{400 + i}@pbx.test", 0.1)
    assert adm.check(A, 100.0) is None
    # Two of them never answer: two failures, under the threshold of three.
    for i in range(20):
        adm.record_challenge(A, f"{400 + i}@pbx.test", 200.0)
    for i in range(18):
        adm.record_success(A, f"{400 + i}@pbx.test", 200.1)
    assert adm.check(A, 210.0) is None
    adm.record_challenge(A, "500@pbx.test", 211.0)
    assert adm.check(A, 212.0) is not None  # the third


def test_a_challenge_answered_wrongly_counts_once() -> None:
    adm = Admission(max_failures=2)
    adm.record_challenge(A, LINE, 0.0)
    assert adm.record_failure(A, LINE, 0.1) is None
    assert adm.check(A, 100.0) is None  # the challenge does not count a second time
    assert adm.record_failure(A, "402@pbx.test", 101.0) is not None


def test_memory_is_bounded() -> None:
    adm = Admission(max_tracked=100)
    for i in range(1000):
        adm.record_failure(str(ipaddress.IPv4Address(0x0A000000 + i)), f"u{i}@pbx.test", 1.0)
        adm.record_challenge(str(ipaddress.IPv4Address(0x0B000000 + i)), f"v{i}@x", 1.0)
    assert adm.tracked_sources <= 100
    assert adm.tracked_lines <= 100
    # Least recently used first out: the newest are still counted.
    recent = str(ipaddress.IPv4Address(0x0B000000 + 999))
    assert adm.record_failure(recent, "w@x", 2.0) is None
    adm = Admission(max_failures=1, max_tracked=5)
    for i in range(10):
        adm.record_failure(f"192.0.2.{i}", f"{i}@x", float(i))
    assert len(adm.bans(20.0)) == 5
    assert adm.evicted_bans == 5
    assert adm.check("192.0.2.9", 20.0) is not None
    assert adm.check("192.0.2.0", 20.0) is None


def test_per_address_challenge_memory_is_bounded() -> None:
    adm = Admission(max_failures=10)
    for i in range(10_000):
        adm.record_challenge(A, f"{i}@pbx.test", 0.0)
    ban = adm.check(A, 33.0)
    assert ban is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_failures": 0},
        {"window": 0.0},
        {"ban_seconds": -1.0},
        {"max_tracked": 0},
        {"ipv6_prefix": 0},
        {"challenge_grace": 0.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Admission(**kwargs)  # type: ignore[arg-type]


# -- against a reference model --------------------------------------------------------

_EVENT = st.tuples(
    st.integers(min_value=0, max_value=3),  # source
    st.floats(min_value=0.0, max_value=40.0, allow_nan=False),  # time step
)


@given(
    max_failures=st.integers(min_value=1, max_value=5),
    window=st.floats(min_value=1.0, max_value=100.0),
    ban_seconds=st.floats(min_value=1.0, max_value=200.0),
    events=st.lists(_EVENT, max_size=80),
)
@settings(max_examples=200)
def test_per_address_rule_matches_a_reference(
    max_failures: int, window: float, ban_seconds: float, events: list[tuple[int, float]]
) -> None:
    """Failures against distinct lines (no line rule): ban iff N within the window."""
    adm = Admission(max_failures, window, ban_seconds)
    history: dict[int, list[float]] = {}
    banned_until: dict[int, float] = {}
    now = 0.0
    for n, (source, step) in enumerate(events):
        now += step
        address = f"192.0.2.{source}"
        ban = adm.record_failure(address, f"line{n}@x", now)
        if banned_until.get(source, -1.0) > now:
            assert ban is not None
            continue
        if source in banned_until:  # expired: fresh start
            del banned_until[source]
            history[source] = []
        times = [*history.get(source, []), now]
        history[source] = times
        expected = sum(1 for t in times if now - t < window) >= max_failures
        assert (ban is not None) == expected
        if ban is not None:
            assert ban.until == pytest.approx(now + ban_seconds)
            banned_until[source] = now + ban_seconds
            history[source] = []
