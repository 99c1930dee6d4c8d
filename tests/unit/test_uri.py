"""SIP, SIPS, tel and opaque URIs (RFC 3261 §19.1, §25.1; RFC 3966)."""

from __future__ import annotations

import pytest

from switch.sip.errors import ParseError
from switch.sip.uri import Uri, parse_host, parse_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:example.com", Uri("sip", host="example.com")),
        ("sip:alice@atlanta.com", Uri("sip", "alice", host="atlanta.com")),
        ("sips:alice@atlanta.com:5061", Uri("sips", "alice", host="atlanta.com", port=5061)),
        ("sip:alice:secretword@atlanta.com", Uri("sip", "alice", "secretword", "atlanta.com")),
        ("sip:alice:@atlanta.com", Uri("sip", "alice", "", "atlanta.com")),
        ("sip:192.0.2.4", Uri("sip", host="192.0.2.4")),
        ("sip:bob@192.0.2.4:5060", Uri("sip", "bob", host="192.0.2.4", port=5060)),
        ("sip:[2001:db8::1]", Uri("sip", host="[2001:db8::1]")),
        ("sip:bob@[2001:db8::1]:5070", Uri("sip", "bob", host="[2001:db8::1]", port=5070)),
        ("sip:[::ffff:192.0.2.1]", Uri("sip", host="[::ffff:192.0.2.1]")),
        ("sip:host.example.com.", Uri("sip", host="host.example.com.")),
        ("sip:my_host.example.com", Uri("sip", host="my_host.example.com")),
        (
            "sip:proxy.example.com;lr;transport=TCP",
            Uri("sip", host="proxy.example.com", params={"lr": None, "transport": "TCP"}),
        ),
        (
            "sip:+33142000001@gw.example.fr;user=phone",
            Uri("sip", "+33142000001", host="gw.example.fr", params={"user": "phone"}),
        ),
        (
            "sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15",
            Uri("sip", "alice", host="atlanta.com", params={"maddr": "239.255.255.1", "ttl": "15"}),
        ),
        (
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            Uri(
                "sip",
                host="atlanta.com",
                params={"method": "REGISTER"},
                headers={"to": "alice%40atlanta.com"},
            ),
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            Uri(
                "sip",
                "alice",
                host="atlanta.com",
                headers={"subject": "project%20x", "priority": "urgent"},
            ),
        ),
        (
            "sip:bob@biloxi.com?Replaces=abc%40host%3Bto-tag%3D1&empty=",
            Uri(
                "sip",
                "bob",
                host="biloxi.com",
                headers={"Replaces": "abc%40host%3Bto-tag%3D1", "empty": ""},
            ),
        ),
        (
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            Uri("sip", "+1-212-555-1212", "1234", "gateway.com", params={"user": "phone"}),
        ),
        ("sip:*21#@pbx.example.fr", Uri("sip", "*21#", host="pbx.example.fr")),
        ("sip:%61lice@atlanta.com", Uri("sip", "%61lice", host="atlanta.com")),
        (
            "sip:user;par=u%40ex.net@example.com",
            Uri("sip", "user;par=u%40ex.net", host="example.com"),
        ),
        (
            "SIP:Alice@Atlanta.COM;Transport=udp",
            Uri("sip", "Alice", host="Atlanta.COM", params={"transport": "udp"}),
        ),
        ("tel:+33142000001", Uri("tel", "+33142000001")),
        (
            "tel:7042;phone-context=example.com",
            Uri("tel", "7042", params={"phone-context": "example.com"}),
        ),
        ("tel:+1-201-555-0123", Uri("tel", "+1-201-555-0123")),
        ("http://www.example.com", Uri("http", opaque="//www.example.com")),
        (
            "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            Uri("urn", opaque="uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
        ),
        ("isbn:2983792873", Uri("isbn", opaque="2983792873")),
        ("soap.beep://192.0.2.103:3002", Uri("soap.beep", opaque="//192.0.2.103:3002")),
        ("mailto:alice@example.com", Uri("mailto", opaque="alice@example.com")),
    ],
)
def test_parse_uri(text: str, expected: Uri) -> None:
    assert parse_uri(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:bob:pw@[2001:db8::1]:5061;transport=tls;lr?Subject=hi&Priority=urgent",
        "sip:+33142000001@gw.example.fr;user=phone",
        "tel:+33142000001;phone-context=+33",
        "urn:service:sos",
        "sip:proxy.example.com;lr",
    ],
)
def test_str_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_scheme_and_param_names_are_lower_cased() -> None:
    uri = parse_uri("SIPS:host;LR;Transport=TLS")
    assert str(uri) == "sips:host;lr;transport=TLS"
    assert uri.transport == "tls"


def test_host_bare_strips_ipv6_brackets() -> None:
    assert parse_uri("sip:[2001:db8::1]:5060").host_bare == "2001:db8::1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad URI scheme"),
        ("alice@atlanta.com", "bad URI scheme"),
        (":alice@atlanta.com", "bad URI scheme"),
        ("<sip:alice@atlanta.com>", "bad URI scheme"),
        ("1sip:host", "bad URI scheme"),
        ("sip:", "bad SIP URI"),
        ("sip:alice@", "bad SIP URI"),
        ("sip:@atlanta.com", "bad SIP URI"),
        ("sip:alice@atlanta .com", "bad SIP URI"),
        ("sip:alice@atlanta.com ", "bad SIP URI"),
        ("sip:al ice@atlanta.com", "bad SIP URI"),
        ("sip:alice@atlanta.com:", "bad SIP URI"),
        ("sip:alice@atlanta.com:65536", "bad SIP URI"),
        ("sip:alice@atlanta.com:123456", "bad SIP URI"),
        ("sip:alice@atlanta.com:50x", "bad SIP URI"),
        ("sip:alice@[2001:db8::1", "bad SIP URI"),
        ("sip:alice@[]", "bad SIP URI"),
        ("sip:alice@[::1]x", "bad SIP URI"),
        ("sip:alice@atlanta.com;", "bad SIP URI"),
        ("sip:alice@atlanta.com;;lr", "bad SIP URI"),
        ("sip:alice@atlanta.com;=x", "bad SIP URI"),
        ("sip:alice@atlanta.com;lr=", "bad SIP URI"),
        ("sip:alice@atlanta.com?", "bad SIP URI"),
        ("sip:alice@atlanta.com?noequals", "bad SIP URI"),
        ("sip:al%zzice@atlanta.com", "bad SIP URI"),
        ("sip:al%4@atlanta.com", "bad SIP URI"),
        ("sip:alice@at<lanta.com", "bad SIP URI"),
        ('sip:"alice"@atlanta.com', "bad SIP URI"),
        ("sip:alice@atlanta.com>", "bad SIP URI"),
        ("sip:alice@@atlanta.com", "bad SIP URI"),
        ("tel:", "bad tel URI"),
        ("tel:+33 1 42", "bad tel URI"),
        ("tel:+331;", "bad tel URI"),
        ("http:", "bad URI"),
        ("http://exa mple.com", "bad URI"),
        ("http://example.com/<x>", "bad URI"),
    ],
)
def test_parse_uri_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert str(info.value) == reason
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:5060", ("example.com", 5060)),
        ("192.0.2.1:0", ("192.0.2.1", 0)),
        ("[::1]:65535", ("[::1]", 65535)),
    ],
)
def test_parse_host(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize("text", ["", ":5060", "host:", "host:99999", "ho st", "[::1"])
def test_parse_host_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"^bad host$"):
        parse_host(text)


def test_long_hostile_uri_is_rejected_quickly() -> None:
    # Possessive repetitions: no backtracking blow-up on a near-miss.
    text = "sip:" + "a;" * 20000 + "@"
    with pytest.raises(ParseError):
        parse_uri(text)
    text = "sip:" + "a" * 60000 + "!"
    with pytest.raises(ParseError):
        parse_uri(text)
