"""Typed header views: Via, name-addr, CSeq, generic params, list splitting."""

from __future__ import annotations

import pytest

from switch.sip.errors import ParseError
from switch.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_list,
    unquote,
)
from switch.sip.uri import Uri

# --- canonical names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("v", "Via"),
        ("V", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("x", "Session-Expires"),
        ("call-id", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-forwards", "Max-Forwards"),
        ("MaX-fOrWaRdS", "Max-Forwards"),
        ("x-custom-header", "X-Custom-Header"),
    ],
)
def test_canonical_name(raw: str, canonical: str) -> None:
    assert canonical_name(raw) == canonical


# --- Via -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
            Via("UDP", "pc33.atlanta.com", None, {"branch": "z9hG4bK776asdhds"}),
        ),
        (
            "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1;rport;received=198.51.100.7",
            Via(
                "TCP",
                "192.0.2.1",
                5060,
                {"branch": "z9hG4bK1", "rport": None, "received": "198.51.100.7"},
            ),
        ),
        (
            "SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bK2;received=2001:db8::9;rport=5061",
            Via(
                "TLS",
                "[2001:db8::9]",
                5061,
                {"branch": "z9hG4bK2", "received": "2001:db8::9", "rport": "5061"},
            ),
        ),
        (
            "SIP  /   2.0  / udp  192.0.2.2;branch=390skdjuw",
            Via("UDP", "192.0.2.2", None, {"branch": "390skdjuw"}),
        ),
        (
            "SIP/2.0/TCP spindle.example.com   ;  branch  =   z9hG4bK9ikj8",
            Via("TCP", "spindle.example.com", None, {"branch": "z9hG4bK9ikj8"}),
        ),
        ("SIP/2.0/UDP host : 5060", Via("UDP", "host", 5060)),
        (
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKy",
            Via("WSS", "df7jal23ls0d.invalid", None, {"branch": "z9hG4bKy"}),
        ),
        (
            "SIP/2.0/UDP host;Branch=z9hG4bKX;TTL=16",
            Via("UDP", "host", None, {"branch": "z9hG4bKX", "ttl": "16"}),
        ),
        ('SIP/2.0/UDP host;x="quoted;value"', Via("UDP", "host", None, {"x": '"quoted;value"'})),
        # Lenient on empty parameters (the message parser rejects them).
        ("SIP/2.0/UDP 192.0.2.15;;", Via("UDP", "192.0.2.15")),
    ],
)
def test_parse_via(text: str, expected: Via) -> None:
    assert parse_via(text) == expected


def test_via_properties_and_str() -> None:
    via = parse_via("SIP/2.0/UDP PC33.Atlanta.com:5062;branch=z9hG4bKabc;rport")
    assert via.branch == "z9hG4bKabc"
    assert via.sent_by == ("pc33.atlanta.com", 5062)
    assert str(via) == "SIP/2.0/UDP PC33.Atlanta.com:5062;branch=z9hG4bKabc;rport"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad sent-protocol"),
        ("SIP/2.0 host", "bad sent-protocol"),
        ("SIP/2.0/UDP", "bad sent-protocol"),
        ("SIP/2.0/UDP ", "bad sent-by"),
        ("SIP/2.0/UDP;branch=x host", "bad sent-protocol"),
        ("SIP/2.0/UDP host:port", "bad sent-by"),
        ("SIP/2.0/UDP host:70000", "bad sent-by"),
        ("SIP/2.0/UDP [::1", "bad sent-by"),
        ("SIP/2.0/UDP host;branch=a b", "bad parameter value"),
        ("SIP/2.0/UDP host;=x", "bad parameter"),
        ('SIP/2.0/UDP host;x="open', "unterminated quoted string"),
    ],
)
def test_parse_via_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_via(text)
    assert str(info.value) == reason


# --- name-addr / addr-spec ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '"Alice Dupont" <sip:alice@atlanta.com>;tag=1928301774',
            NameAddr(
                Uri("sip", "alice", host="atlanta.com"), '"Alice Dupont"', {"tag": "1928301774"}
            ),
        ),
        (
            "Alice <sip:alice@atlanta.com>",
            NameAddr(Uri("sip", "alice", host="atlanta.com"), "Alice"),
        ),
        (
            "A. G. Bell <sip:agb@bell-telephone.com> ;tag=a48s",
            NameAddr(Uri("sip", "agb", host="bell-telephone.com"), "A. G. Bell", {"tag": "a48s"}),
        ),
        (
            "caller<sip:caller@example.com>",
            NameAddr(Uri("sip", "caller", host="example.com"), "caller"),
        ),
        ("<sip:bob@biloxi.com>", NameAddr(Uri("sip", "bob", host="biloxi.com"))),
        (
            "sip:+12125551212@phone2net.com;tag=887s",
            NameAddr(
                Uri("sip", "+12125551212", host="phone2net.com"), None, {"tag": "887s"}, False
            ),
        ),
        (
            "sip:user@example.com;user=phone",  # addr-spec: user=phone is a header param
            NameAddr(Uri("sip", "user", host="example.com"), None, {"user": "phone"}, False),
        ),
        (
            "<sip:user@example.com;user=phone>",
            NameAddr(Uri("sip", "user", host="example.com", params={"user": "phone"})),
        ),
        (
            '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com> ; tag = 98asjd8',
            NameAddr(
                Uri("sip", "jdrosen", host="example.com"),
                '"J Rosenberg \\\\\\""',
                {"tag": "98asjd8"},
            ),
        ),
        (
            '"" <sip:anon@anonymous.invalid>',
            NameAddr(Uri("sip", "anon", host="anonymous.invalid"), '""'),
        ),
        (
            '"Élodie Müller" <sip:elodie@example.fr>',
            NameAddr(Uri("sip", "elodie", host="example.fr"), '"Élodie Müller"'),
        ),
        ("<tel:+33142000001>;tag=x", NameAddr(Uri("tel", "+33142000001"), None, {"tag": "x"})),
        ("tel:+33142000001", NameAddr(Uri("tel", "+33142000001"), None, {}, False)),
        ("<urn:service:sos>", NameAddr(Uri("urn", opaque="service:sos"))),
        (
            '<sip:201@10.0.0.23;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
            NameAddr(
                Uri("sip", "201", host="10.0.0.23", params={"ob": None}),
                None,
                {
                    "reg-id": "1",
                    "+sip.instance": '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
                },
            ),
        ),
        (
            "<sip:bob@biloxi.com?Replaces=abc%40h>;expires=60;q=0.7",
            NameAddr(
                Uri("sip", "bob", host="biloxi.com", headers={"Replaces": "abc%40h"}),
                None,
                {"expires": "60", "q": "0.7"},
            ),
        ),
        ("  <sip:x@y>  ", NameAddr(Uri("sip", "x", host="y"))),
        (
            "<sip:x@y>;TAG=AbC;lr;maddr=[2001:db8::1];tag=last",
            NameAddr(
                Uri("sip", "x", host="y"),
                None,
                {"tag": "last", "lr": None, "maddr": "[2001:db8::1]"},
            ),
        ),
    ],
)
def test_parse_name_addr(text: str, expected: NameAddr) -> None:
    assert parse_name_addr(text) == expected


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ('"Alice" <sip:alice@atlanta.com>;tag=1', '"Alice" <sip:alice@atlanta.com>;tag=1'),
        ("sip:alice@atlanta.com;tag=1", "sip:alice@atlanta.com;tag=1"),
        ("Alice<sip:a@b>", "Alice <sip:a@b>"),
        ("<sip:a@b> ; Tag = 5", "<sip:a@b>;tag=5"),
    ],
)
def test_name_addr_str(text: str, out: str) -> None:
    assert str(parse_name_addr(text)) == out


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"Mr. J. User <sip:j.user@example.com>', "unterminated quoted string"),
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "bad display name"),
        ('"Watson, Thomas" < sip:t.watson@example.org >', "spaces inside <>"),
        ("<sip:alice@atlanta.com", "missing >"),
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "URI with , or ? not in <>"),
        ("", "bad addr-spec"),
        ("<sip:alice@atlanta.com>junk", "bad name-addr"),
        ("<sip:alice@atlanta.com>;", "bad name-addr"),
        ("<sip:alice@atlanta.com>;tag=a b", "bad name-addr"),
        ("<nope>", "bad URI scheme"),
        ("<sip:alice@>", "bad SIP URI"),
        ('"Alice" sip:alice@atlanta.com', "missing <"),
    ],
)
def test_parse_name_addr_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_name_addr(text)
    assert str(info.value) == reason


# --- CSeq ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("314159 INVITE", CSeq(314159, "INVITE")),
        ("0009 INVITE", CSeq(9, "INVITE")),
        ("0 ACK", CSeq(0, "ACK")),
        ("2147483647 BYE", CSeq(2**31 - 1, "BYE")),
        ("  1   OPTIONS  ", CSeq(1, "OPTIONS")),
        (
            "7 !interesting-Method0123456789_*+`.%indeed'~",
            CSeq(7, "!interesting-Method0123456789_*+`.%indeed'~"),
        ),
    ],
)
def test_parse_cseq(text: str, expected: CSeq) -> None:
    assert parse_cseq(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad CSeq"),
        ("INVITE", "bad CSeq"),
        ("1", "bad CSeq"),
        ("-1 INVITE", "bad CSeq"),
        ("1INVITE", "bad CSeq"),
        ("1 INVITE extra", "bad CSeq"),
        ("١ INVITE", "bad CSeq"),  # non-ASCII digit
        ("1 INV<ITE", "bad CSeq"),
        ("2147483648 INVITE", "sequence number too large"),
        ("36893488147419103232 REGISTER", "sequence number too large"),
        ("9" * 5000 + " INVITE", "sequence number too large"),  # past int()'s digit limit
    ],
)
def test_parse_cseq_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_cseq(text)
    assert str(info.value) == reason


# --- generic params ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        (";tag=1", {"tag": "1"}),
        ("tag=1;lr", {"tag": "1", "lr": None}),
        (" ; A = b ; C ", {"a": "b", "c": None}),
        (';text="a;b=c \\" d"', {"text": '"a;b=c \\" d"'}),
        (";received=[2001:db8::1]", {"received": "[2001:db8::1]"}),
        (";a;;b", {"a": None, "b": None}),  # empty items skipped
    ],
)
def test_parse_params(text: str, expected: dict[str, str | None]) -> None:
    assert parse_params(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (";=1", "bad parameter"),
        (";a b=1", "bad parameter"),
        (";a=<x>", "bad parameter value"),
        (';a="x', "unterminated quoted string"),
    ],
)
def test_parse_params_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_params(text)
    assert str(info.value) == reason


# --- comma lists ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INVITE, ACK,BYE", ["INVITE", "ACK", "BYE"]),
        ("a", ["a"]),
        ("a,,b", ["a", "", "b"]),
        ('"Doe, John" <sip:j@d>, <sip:x@y>', ['"Doe, John" <sip:j@d>', "<sip:x@y>"]),
        ("<sip:a@b;x=1,2>;q=1, <sip:c@d>", ["<sip:a@b;x=1,2>;q=1", "<sip:c@d>"]),
        ('"a \\" , b" <sip:a@b>', ['"a \\" , b" <sip:a@b>']),
        ("SIP/2.0/UDP a;branch=1 , SIP/2.0/UDP b", ["SIP/2.0/UDP a;branch=1", "SIP/2.0/UDP b"]),
    ],
)
def test_split_list(text: str, expected: list[str]) -> None:
    assert split_list(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [('"open, <sip:a@b>', "unterminated quoted string"), ("<sip:a@b, c", "unterminated <")],
)
def test_split_list_rejects(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        split_list(text)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport",
        "SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bK-1;RPort;received=2001:db8::1",
        "SIP/2.0/UDP h.example ;branch = z9hG4bK-1 ; ttl=1",
        'SIP/2.0/UDP h.example;x="a;b=c";branch=z9hG4bK-1',
        "SIP/2.0/UDP h.example;branch=1;branch=2;maddr=[2001:db8::1]",
        "SIP/2.0/UDP h.example",
    ],
)
def test_parse_via_params_are_parse_params_of_their_text(via: str) -> None:
    # parse_via splits already-matched parameters itself; same result as parse_params.
    text = via.split(" ", 1)[1]
    params = text[text.find(";") :] if ";" in text else ""
    assert parse_via(via).params == parse_params(params)


def test_parse_via_gives_a_new_via_each_time() -> None:
    text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport"
    first = parse_via(text)
    first.params["received"] = "192.0.2.9"
    first.port = 1
    assert parse_via(text) == Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK-1", "rport": None})


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ('"Accueil"', "Accueil"),
        ('"Jean \\"JD\\" Dupont"', 'Jean "JD" Dupont'),
        ('"a\\\\b"', "a\\b"),
        ('""', ""),
        ("Accueil", "Accueil"),  # a token display-name: unchanged
        ('"unterminated', '"unterminated'),  # not a quoted-string: unchanged
    ],
)
def test_unquote_takes_the_quotes_and_quoted_pairs_off(text: str, plain: str) -> None:
    assert unquote(text) == plain
