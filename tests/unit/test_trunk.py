"""Trunks: who is one, what may be called through one, and digest towards one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from routing.restrictions import CustomProfile, PrefixList, RestrictionTable
from switch.directory import Directory, Group, RestrictionProfiles, load_directory
from switch.settings import TrunkSettings, load_settings
from switch.sip.auth import ha1, parse_credentials, response_digest
from switch.sip.dialog_events import CallAnswered, CallFailed
from switch.sip.endpoint import Endpoint
from switch.sip.invite import InviteSession
from switch.sip.message import Headers, Request, Response
from switch.sip.uri import parse_uri
from switch.trunk import (
    ANONYMOUS,
    Outbound,
    Refusal,
    Trunk,
    Trunks,
    identity_headers,
    presented_number,
)
from tests.unit.sip_legs import ANSWER, Side, net

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example"


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(EXAMPLE)


def carrier(**kw: object) -> Trunk:
    base: dict[str, object] = {
        "name": "carrier",
        "address": {"host": "127.0.0.1", "port": 5090},
        "username": "pbx",
        "password": "s3cret",
    }
    base.update(kw)
    return Trunk.from_settings(TrunkSettings.model_validate(base))


# -- settings --------------------------------------------------------------------------


def test_example_defines_the_carrier_trunk_on_udp_5090() -> None:
    settings = load_settings(EXAMPLE)
    (trunk,) = settings.trunks
    assert (trunk.name, trunk.address.host, trunk.address.port, trunk.transport) == (
        "carrier",
        "127.0.0.1",
        5090,
        "udp",
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"password": "x", "ha1": "0" * 32}, "exclude each other"),
        ({"username": None, "password": "x"}, "need a username"),
        ({"inbound": ["not-a-net"]}, "not a network"),
        ({"number_format": "local"}, "number_format"),
    ],
)
def test_invalid_trunk_settings(extra: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "t", "address": {"host": "192.0.2.1"}, "username": "u"}
    base.update(extra)
    with pytest.raises(ValidationError, match=message):
        TrunkSettings.model_validate(base)


# -- who is a trunk ------------------------------------------------------------------------


def test_a_trunk_source_is_its_address_and_port() -> None:
    trunks = Trunks([carrier()])
    assert trunks.by_source(Endpoint("UDP", "127.0.0.1", 5090)) is not None
    # The same host, another port: a phone on this machine, not the trunk.
    assert trunks.by_source(Endpoint("UDP", "127.0.0.1", 5091)) is None
    assert trunks.by_source(Endpoint("UDP", "192.0.2.7", 5090)) is None


def test_inbound_networks_add_sources() -> None:
    trunks = Trunks([carrier(inbound=["192.0.2.0/28"])])
    assert trunks.by_source(Endpoint("UDP", "192.0.2.7", 5060)) is not None
    assert trunks.by_source(Endpoint("UDP", "192.0.2.17", 5060)) is None


# -- no open relay ----------------------------------------------------------------------


def test_a_trunk_reaches_only_direct_numbers(directory: Directory) -> None:
    find = directory.line_by_direct_number
    found = Trunks.inbound("+33140000401", find)
    assert not isinstance(found, Refusal)
    assert found[1].extension == "401"
    national = Trunks.inbound("0140000402", find)  # the national form of +33140000402
    assert not isinstance(national, Refusal)
    assert national[1].extension == "402"
    # An extension, or a public number that is not ours: never routed (out again).
    assert Trunks.inbound("401", find) == Refusal(404, "not-found")
    assert Trunks.inbound("+33612345678", find) == Refusal(404, "not-found")


def test_lines_call_out_public_and_emergency_numbers_only(directory: Directory) -> None:
    trunks = Trunks([carrier()])
    company, caller = directory.line_for("401", "pbx.test") or (None, None)
    assert caller is not None
    out = trunks.outbound("06 12 34 56 78", caller, company)
    assert out == Outbound(
        trunks.trunks[0], "+33612345678", "+33612345678", "+33140000401", "+33140000401"
    )
    emergency = trunks.outbound("112", caller, company)
    assert isinstance(emergency, Outbound)
    assert emergency.number == "112"
    assert trunks.outbound("499", caller, company) == Refusal(404, "not-found")
    assert trunks.outbound("abc", caller, company) == Refusal(404, "not-found")
    assert Trunks().outbound("0612345678", caller, company) == Refusal(404, "no-trunk")


def test_national_format_and_company_number_for_6xx(directory: Directory) -> None:
    trunks = Trunks([carrier(number_format="national")])
    company, caller = directory.line_for("601", "pbx.test") or (None, None)
    assert caller is not None
    assert company is not None
    # 601 has profile 1 (emergency, free): a free number goes out.
    out = trunks.outbound("+33800123456", caller, company)
    assert isinstance(out, Outbound)
    assert out.number == "0800123456"
    assert out.e164 == "+33800123456"
    assert out.presented == company.company_number
    assert trunks.outbound("15", caller, company) == Outbound(
        trunks.trunks[0], "15", "15", company.company_number, company.company_number
    )


def test_withheld_call_out_is_anonymous_with_privacy_id_and_the_real_pai(
    directory: Directory,
) -> None:
    """RFC 3323 §4.1.1.3 anonymous From, RFC 3325 PAI with the real number, Privacy: id."""
    trunks = Trunks([carrier()])
    company, caller = directory.line_for("402", "pbx.test") or (None, None)
    assert caller is not None
    out = trunks.outbound("0612345678", caller, company, withheld=True)
    assert isinstance(out, Outbound)
    from_, extra = identity_headers(out, "pbx.test")
    assert from_ == ANONYMOUS == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    assert extra == (
        ("P-Asserted-Identity", "<sip:+33140000402@pbx.test;user=phone>"),
        ("Privacy", "id"),
    )


def test_presented_call_out_shows_the_presented_number_and_asserts_the_real_one(
    directory: Directory,
) -> None:
    trunks = Trunks([carrier()])
    company, caller = directory.line_for("402", "pbx.test") or (None, None)
    assert caller is not None
    assert company is not None
    out = trunks.outbound("0612345678", caller, company)
    assert isinstance(out, Outbound)
    assert identity_headers(out, "pbx.test") == (
        "<sip:+33140000402@pbx.test>",
        (("P-Asserted-Identity", "<sip:+33140000402@pbx.test;user=phone>"),),
    )
    # The company number instead of the direct line: PAI stays the real number.
    company_wide = dataclasses.replace(caller, presented_number="company")
    out = trunks.outbound("0612345678", company_wide, company)
    assert isinstance(out, Outbound)
    from_, extra = identity_headers(out, "pbx.test")
    assert from_ == f"<sip:{company.company_number}@pbx.test>"
    assert extra == (("P-Asserted-Identity", "<sip:+33140000402@pbx.test;user=phone>"),)


def test_presented_number_options(directory: Directory) -> None:
    company, line = directory.line_for("402", "pbx.test") or (None, None)
    assert company is not None
    assert line is not None
    assert presented_number(line, company) == "+33140000402"
    assert presented_number(dataclasses.replace(line, presented_number="company"), company) == (
        company.company_number
    )
    with_group = dataclasses.replace(
        company, groups=(Group("500", "Commercial", "sequential", "+33140000500"),)
    )
    grouped = dataclasses.replace(line, presented_number="500")
    assert presented_number(grouped, with_group) == "+33140000500"
    # A group without a direct number (the loader refuses it): the direct line.
    assert presented_number(grouped, company) == "+33140000402"
    # 601 has no direct line: the company number.
    _, internal = directory.line_for("601", "pbx.test") or (None, None)
    assert internal is not None
    assert presented_number(internal, company) == company.company_number


def test_a_service_number_dials_out_presenting_itself_without_a_line_profile() -> None:
    trunks = Trunks([carrier(number_format="national")])
    # A premium number: a routing program may overflow anywhere, no line profile applies.
    assert trunks.service_out("0899123456", "0800100100") == Outbound(
        trunks.trunks[0], "0899123456", "+33899123456", "0800100100"
    )
    assert trunks.service_out("401", "0800100100") == Refusal(404, "not-found")
    # Short numbers as dialled (a forward to 3639 or 112 was checked by its line's profile).
    assert trunks.service_out("3639", "+33140000401") == Outbound(
        trunks.trunks[0], "3639", "3639", "+33140000401"
    )
    assert isinstance(trunks.service_out("112", "+33140000401"), Outbound)
    assert trunks.service_out("*21*", "+33140000401") == Refusal(404, "not-found")
    assert Trunks().service_out("0612345678", "0800100100") == Refusal(404, "no-trunk")


@pytest.mark.parametrize(
    ("line", "dialled", "barred"),
    [
        ("601", "0612345678", "mobile"),
        ("601", "0899123456", "premium"),
        ("601", "+447700900123", "international"),
        ("401", "+88216000000", None),  # profile 10: everything, high-risk included
        ("401", "0899123456", None),
        ("601", "0800123456", None),
        ("601", "112", None),  # emergency: never barred
    ],
)
def test_calls_out_follow_the_line_profile_for_direct_calls(
    directory: Directory, line: str, dialled: str, barred: str | None
) -> None:
    trunks = Trunks([carrier()])
    company, caller = directory.line_for(line, "pbx.test") or (None, None)
    assert caller is not None
    out = trunks.outbound(dialled, caller, company)
    if barred is None:
        assert isinstance(out, Outbound)
    else:
        assert out == Refusal(403, f"barred:{barred}", f"Destination barred ({barred})")


@pytest.mark.parametrize(
    ("line", "dialled", "verdict"),
    [
        ("601", "3000", "out"),  # free short (3BPQ gratuit): profile 1 allows it
        ("601", "3901", "out"),  # the operator's customer service: free
        ("601", "116006", "out"),  # 116XYZ: free
        ("601", "3639", "barred:premium"),
        ("601", "118712", "barred:premium"),
        ("601", "2424", "barred:special"),  # unlisted: profile 10 only
        ("401", "3639", "out"),
        ("401", "118712", "out"),
        ("401", "2424", "out"),
        ("401", "1012", "out"),  # 10YT: special
        ("401", "499", "not-found"),  # an internal number we do not have
        ("601", "499", "not-found"),
        ("401", "115", "out"),  # emergency (3 digits, not internal)
    ],
)
def test_short_numbers_go_out_as_dialled_under_the_line_profile(
    directory: Directory, line: str, dialled: str, verdict: str
) -> None:
    """Short numbers of a known class reach the trunk as dialled, never +33-prefixed,
    whatever its number format."""
    trunks = Trunks([carrier(number_format="national")])
    company, caller = directory.line_for(line, "pbx.test") or (None, None)
    assert caller is not None
    out = trunks.outbound(dialled, caller, company)
    if verdict == "out":
        assert isinstance(out, Outbound)
        assert (out.number, out.e164) == (dialled, dialled)
    elif verdict == "not-found":
        assert out == Refusal(404, "not-found")
    else:
        assert isinstance(out, Refusal)
        assert (out.status, out.cause) == (403, verdict)


def test_calls_out_follow_the_company_table(directory: Directory) -> None:
    """The caller's company table: its deny list, its custom profile 8, its exceptions
    to the high-risk list (``routing.restrictions`` has every step)."""
    company, caller = directory.line_for("401", "pbx.test") or (None, None)
    assert caller is not None
    assert company is not None
    table = RestrictionTable(
        profiles=(
            CustomProfile(8, "Commerciaux", frozenset({"national"}), PrefixList.parse(["+41"])),
        ),
        allow=PrefixList.parse(["+53"]),
        deny=PrefixList.parse(["0897", "3639"]),
    )
    company = dataclasses.replace(company, restriction_table=table)
    trunks = Trunks([carrier()])
    barred = trunks.outbound("0897123456", caller, company)  # 401 has profile 10
    assert barred == Refusal(403, "barred:company-deny", "Destination barred (deny list)")
    assert isinstance(barred, Refusal)
    assert barred.because == (
        "liste d'interdiction de l'entreprise : préfixe 0897 (+33897) interdit"
    )
    assert trunks.outbound("3639", caller, company) == Refusal(
        403, "barred:company-deny", "Destination barred (deny list)"
    )
    assert isinstance(trunks.outbound("112", caller, company), Outbound)
    p8 = dataclasses.replace(caller, restrictions=RestrictionProfiles(direct=8, forwarded=8))
    assert isinstance(trunks.outbound("+41446681800", p8, company), Outbound)
    assert isinstance(trunks.outbound("0140000000", p8, company), Outbound)
    mobile = trunks.outbound("0612345678", p8, company)
    assert mobile == Refusal(403, "barred:mobile", "Destination barred (mobile)")
    assert isinstance(mobile, Refusal)
    assert mobile.because == "profil 8 « Commerciaux » : mobile interdit"
    p7 = dataclasses.replace(caller, restrictions=RestrictionProfiles(direct=7, forwarded=7))
    assert isinstance(trunks.outbound("+5372345678", p7, company), Outbound)
    assert trunks.outbound("+88216000000", p7, company) == Refusal(
        403, "barred:high_risk_international", "Destination barred (high risk international)"
    )
    # Without a company (none found for the caller's domain): the operator's table.
    assert isinstance(trunks.outbound("0897123456", caller, None), Outbound)


# -- digest towards the trunk ------------------------------------------------------------


def _challenge(status: int, name: str) -> Response:
    headers = Headers()
    headers.add(name, 'Digest realm="carrier.test", nonce="abc", qop="auth", algorithm=MD5')
    headers.add("CSeq", "1 INVITE")
    return Response(status, "Auth", headers)


def _invite() -> Request:
    return Request("INVITE", parse_uri("sip:+33612345678@127.0.0.1:5090"), Headers(), b"")


@pytest.mark.parametrize(
    ("status", "challenge", "answer"),
    [
        (401, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
def test_authorize_answers_with_the_realm_of_the_challenge(
    status: int, challenge: str, answer: str
) -> None:
    for trunk in (carrier(), carrier(password=None, ha1=ha1("pbx", "carrier.test", "s3cret"))):
        result = trunk.authorize(_challenge(status, challenge), _invite())
        assert result is not None
        name, value = result
        assert name == answer
        creds = parse_credentials(value)
        assert creds.realm == "carrier.test"
        expected = response_digest(
            ha1("pbx", "carrier.test", "s3cret"),
            algorithm="MD5",
            method="INVITE",
            uri="sip:+33612345678@127.0.0.1:5090",
            nonce="abc",
            nc=creds.nc,
            cnonce=creds.cnonce,
            qop="auth",
        )
        assert creds.response == expected


def test_no_credentials_no_answer() -> None:
    trunk = carrier(username=None, password=None)
    assert trunk.authorize(_challenge(407, "Proxy-Authenticate"), _invite()) is None
    assert carrier().authorize(_challenge(403, "Proxy-Authenticate"), _invite()) is None


def _challenging_uas(side: Side, leg: InviteSession, now: float) -> None:
    assert leg.invite is not None
    if "Proxy-Authorization" in leg.invite.headers:
        leg.respond(200, body=ANSWER, now=now)
    else:
        challenge = 'Digest realm="carrier.test", nonce="n1", qop="auth"'
        leg.respond(407, now=now, extra=[("Proxy-Authenticate", challenge)])


def test_leg_resends_the_invite_with_credentials_and_a_new_cseq() -> None:
    trunk = carrier()
    n = net(a_authenticate=trunk.authorize)
    n.b.on_invite = _challenging_uas
    n.call()
    n.run(5)
    invites = n.sent(n.a, "INVITE")
    assert [i.cseq.seq for i in invites] == [1, 2]
    assert invites[0].call_id == invites[1].call_id
    assert invites[0].from_tag == invites[1].from_tag
    assert "Proxy-Authorization" in invites[1].headers
    assert n.sent(n.a, "ACK")  # the 407 is acknowledged (by its transaction)
    assert n.a.of(CallAnswered)


def test_leg_gives_up_after_the_allowed_attempts() -> None:
    def always_407(side: Side, leg: InviteSession, now: float) -> None:
        challenge = 'Digest realm="carrier.test", nonce="n1", qop="auth"'
        leg.respond(407, now=now, extra=[("Proxy-Authenticate", challenge)])

    n = net(a_authenticate=carrier().authorize)
    n.b.on_invite = always_407
    n.call()
    n.run(10)
    assert len(n.sent(n.a, "INVITE")) == 3  # the first, then two answered challenges
    failed = n.a.of(CallFailed)
    assert len(failed) == 1
    assert isinstance(failed[0], CallFailed)
    assert failed[0].status == 407
