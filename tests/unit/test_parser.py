"""parse_message and StreamFramer: corpus round trips, facts, one test per fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.sip.errors import BadUriScheme, MessageTooLarge, ParseError
from switch.sip.headers import CSeq
from switch.sip.message import Headers, Request, Response, make_response
from switch.sip.parser import KEEPALIVE_PING, StreamFramer, parse_message
from switch.sip.uri import Uri

CORPUS = Path(__file__).parent / "corpus"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.sip"))


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


# --- corpus ---------------------------------------------------------------------


def test_corpus_is_there() -> None:
    assert len(CORPUS_FILES) >= 9


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_round_trip(name: str) -> None:
    data = corpus(name)
    msg = parse_message(data)
    assert parse_message(msg.to_bytes()) == msg


@pytest.mark.parametrize(
    "name", ["ack.sip", "bye.sip", "notify_dialog_info.sip", "unauthorized.sip"]
)
def test_canonical_corpus_serialises_back_to_the_same_bytes(name: str) -> None:
    # Written in canonical form: full names, one field per value.
    data = corpus(name)
    assert parse_message(data).to_bytes() == data


def test_invite_with_sdp() -> None:
    msg = parse_message(corpus("invite_sdp.sip"))
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri == Uri("sip", "0800123456", host="sbc.example.fr", params={"user": "phone"})
    assert msg.branch == "z9hG4bK776asdhds"
    assert msg.top_via.params == {"branch": "z9hG4bK776asdhds", "rport": None}
    assert msg.from_.display == '"Alice Dupont"'
    assert msg.from_tag == "1928301774"
    assert msg.to_tag is None
    assert msg.cseq.seq == 314159
    assert msg.call_id == "a84b4c76e66710@pc33.example.fr"
    assert msg.content_type == "application/sdp"
    assert msg.body.startswith(b"v=0\r\n")
    assert msg.body.endswith(b"a=sendrecv\r\n")
    assert msg.headers.get_all("Allow")[:3] == ["INVITE", "ACK", "CANCEL"]
    assert len(msg.headers.get_all("Allow")) == 9
    assert msg.headers.get_all("Supported") == ["replaces", "timer", "100rel"]
    assert msg.headers.get("Session-Expires") == "1800;refresher=uac"


def test_register_authorization_is_not_split() -> None:
    msg = parse_message(corpus("register_digest.sip"))
    auth = msg.headers.get_all("Authorization")
    assert len(auth) == 1
    assert auth[0].startswith('Digest username="201", realm="pbx.example.fr"')
    assert auth[0].endswith('opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    contact = msg.headers.get_all("Contact")
    assert len(contact) == 1
    assert "+sip.instance" in contact[0]
    assert msg.top_via.transport == "TCP"


def test_www_authenticate_is_not_split() -> None:
    msg = parse_message(corpus("unauthorized.sip"))
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (401, "Unauthorized")
    assert len(msg.headers.get_all("WWW-Authenticate")) == 1


def test_record_route_list_is_split_in_order() -> None:
    msg = parse_message(corpus("ok_record_route.sip"))
    assert isinstance(msg, Response)
    assert msg.headers.get_all("Record-Route") == [
        "<sip:192.0.2.1;lr;ftag=1928301774>",
        "<sip:[2001:db8::1]:5061;transport=tls;lr>",
    ]
    assert [v.host for v in msg.vias] == ["192.0.2.1", "192.0.2.10"]
    assert msg.to_tag == "a6c85cf"
    assert msg.is_success
    assert msg.is_final


def test_compact_forms_are_expanded() -> None:
    msg = parse_message(corpus("ringing_compact.sip"))
    assert isinstance(msg, Response)
    names = [n for n, _ in msg.headers]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
        "Supported",
        "RSeq",
        "Content-Length",
    ]
    assert msg.is_provisional
    assert msg.to_bytes().startswith(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP")


def test_notify_dialog_info_body() -> None:
    msg = parse_message(corpus("notify_dialog_info.sip"))
    assert msg.content_type == "application/dialog-info+xml"
    assert b"<state>confirmed</state>" in msg.body
    assert msg.headers.get("Subscription-State") == "active;expires=3540"


def test_tel_request_uri_and_ipv6() -> None:
    msg = parse_message(corpus("options_tel.sip"))
    assert isinstance(msg, Request)
    assert msg.uri == Uri("tel", "+33142000001", params={"phone-context": "+33"})
    assert msg.top_via.host == "[2001:db8::10]"
    assert msg.top_via.port == 5061
    assert msg.headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"  # not split at ","
    assert msg.headers.get_all("Accept") == ["application/sdp", "application/pidf+xml"]


# --- facts of the wire format -------------------------------------------------------

BASE = (
    "OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710\r\n"
    "CSeq: 63104 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def make(
    replace: dict[str, str | None] | None = None, *, start: str | None = None, body: str = ""
) -> bytes:
    """BASE with header lines replaced (None drops), keyed by their name."""
    lines = BASE.split("\r\n")[:-2]
    if start is not None:
        lines[0] = start
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(":", 1)[0]
        if replace and name in replace:
            if replace[name] is not None:
                out.append(replace[name] or "")
            continue
        out.append(line)
    for name, value in (replace or {}).items():
        if name.startswith("+") and value is not None:
            out.append(value)
    return ("\r\n".join(out) + "\r\n\r\n" + body).encode()


def test_base_parses() -> None:
    msg = parse_message(make())
    assert isinstance(msg, Request)
    assert msg.method == "OPTIONS"


def test_header_names_are_case_insensitive() -> None:
    msg = parse_message(make({"CSeq": "cSeQ: 63104 OPTIONS", "Call-ID": "CALL-ID: x"}))
    assert msg.headers.get("CSeq") == "63104 OPTIONS"
    assert msg.call_id == "x"


def test_folded_lines_are_unfolded() -> None:
    msg = parse_message(
        make(
            {
                "Via": "Via: SIP/2.0/UDP\r\n   pc33.atlanta.example.com"
                "\r\n\t;branch=z9hG4bKhjhs8ass877"
            }
        )
    )
    assert (
        msg.headers.get("Via") == "SIP/2.0/UDP pc33.atlanta.example.com ;branch=z9hG4bKhjhs8ass877"
    )
    assert msg.branch == "z9hG4bKhjhs8ass877"


def test_unknown_headers_are_kept_in_order() -> None:
    msg = parse_message(make({"+1": "X-B: 2", "+2": "x-a: 1", "+3": "X-B: 3, 4"}))
    assert [(n, v) for n, v in msg.headers][-3:] == [("X-B", "2"), ("X-A", "1"), ("X-B", "3, 4")]


def test_leading_crlfs_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n\r\n" + make()) == parse_message(make())


def test_bare_lf_line_ends_are_accepted() -> None:
    assert parse_message(make().replace(b"\r\n", b"\n")) == parse_message(make())


def test_missing_final_empty_line_is_tolerated() -> None:
    assert parse_message(make()[:-2]) == parse_message(make())


def test_body_is_cut_to_content_length() -> None:
    msg = parse_message(make({"Content-Length": "Content-Length: 5"}, body="hello, and more"))
    assert msg.body == b"hello"


def test_missing_content_length_takes_the_datagram_and_is_added() -> None:
    msg = parse_message(make({"Content-Length": None}, body="abc"))
    assert msg.body == b"abc"
    assert msg.headers.get_all("Content-Length") == ["3"]


def test_content_length_is_normalised() -> None:
    msg = parse_message(make({"Content-Length": "l:  003"}, body="abc"))
    assert msg.headers.get("Content-Length") == "3"


def test_whitespace_around_colon_and_value() -> None:
    msg = parse_message(make({"Call-ID": "Call-ID \t:   abc@host  \t"}))
    assert msg.call_id == "abc@host"


def test_empty_header_value_is_kept() -> None:
    msg = parse_message(make({"+1": "Subject:", "+2": "Supported: "}))
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get_all("Supported") == [""]


def test_contact_star() -> None:
    msg = parse_message(
        make(
            {"+1": "Contact: *", "+2": "Expires: 0", "CSeq": "CSeq: 2 REGISTER"},
            start="REGISTER sip:x.example.com SIP/2.0",
        )
    )
    assert msg.headers.get("Contact") == "*"


def test_quoted_comma_in_contact_list() -> None:
    msg = parse_message(
        make({"+1": 'Contact: "Doe, J" <sip:j@d.example>;q=0.5, <sip:k@d.example>'})
    )
    assert msg.headers.get_all("Contact") == [
        '"Doe, J" <sip:j@d.example>;q=0.5',
        "<sip:k@d.example>",
    ]


def test_empty_elements_of_token_lists_are_skipped() -> None:
    msg = parse_message(make({"+1": "Allow: INVITE, , ACK,"}))
    assert msg.headers.get_all("Allow") == ["INVITE", "ACK"]


def test_utf8_display_name_and_reason() -> None:
    data = make({"From": 'From: "Élodie" <sip:e@example.fr>;tag=9'})
    assert parse_message(data).from_.display == '"Élodie"'
    resp = parse_message(
        b"SIP/2.0 486 Occup\xc3\xa9\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(resp, Response)
    assert resp.reason == "Occupé"


def test_response_without_reason_phrase_space() -> None:
    msg = parse_message(
        b"SIP/2.0 100\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (100, "")


def test_dblreq_second_message_ignored() -> None:
    second = make(start="BYE sip:bob@biloxi.example.com SIP/2.0")
    msg = parse_message(make() + second)
    assert isinstance(msg, Request)
    assert msg.method == "OPTIONS"
    assert msg.body == b""


def test_headers_built_by_the_parser_behave() -> None:
    msg = parse_message(make())
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
    assert msg.branch == "z9hG4bKp1"
    assert isinstance(msg.headers, Headers)
    assert parse_message(msg.to_bytes()) == msg


def test_typed_views_are_kept_until_a_field_changes() -> None:
    msg = parse_message(make())
    assert isinstance(msg, Request)
    assert msg.cseq is msg.cseq  # kept: the layers above read it many times
    assert (msg.branch, msg.from_tag, msg.to_tag) == ("z9hG4bKhjhs8ass877", "1928301774", None)
    msg.headers.set("CSeq", "7 OPTIONS")
    assert msg.cseq == CSeq(7, "OPTIONS")
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
    assert msg.branch == "z9hG4bKp1"
    msg.headers.replace_first("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp2")
    assert msg.branch == "z9hG4bKp2"
    assert msg.headers.pop_first("Via") is not None
    assert msg.branch == "z9hG4bKhjhs8ass877"
    msg.headers.remove("From")
    with pytest.raises(ParseError):
        _ = msg.from_tag
    msg.headers.add("From", "<sip:carol@chicago.example.com>;tag=c1")
    assert msg.from_tag == "c1"
    msg.headers.set("To", "<sip:bob@biloxi.example.com>;tag=b1")
    assert msg.to_tag == "b1"
    copy = msg.headers.copy()
    copy.set("To", "<sip:bob@biloxi.example.com>;tag=b2")
    assert (msg.to_tag, Request("OPTIONS", msg.uri, copy).to_tag) == ("b1", "b2")


def test_header_tokens_are_split_stripped_and_lower_cased() -> None:
    headers = Headers([("Supported", "100rel, Timer"), ("k", " path ,"), ("Require", "x")])
    assert headers.tokens("Supported") == {"100rel", "timer", "path"}
    assert headers.tokens("Unsupported") == set()


def test_max_forwards_zero_is_parsed() -> None:
    assert (
        parse_message(make({"Max-Forwards": "Max-Forwards: 0"})).headers.get("Max-Forwards") == "0"
    )


def test_missing_max_forwards_is_accepted() -> None:
    # RFC 4475 §3.4.1 (inv2543): servers are liberal here.
    assert "Max-Forwards" not in parse_message(make({"Max-Forwards": None})).headers


# --- one test per fault: (bytes, status, respondable, reason) ---------------------------

FAULTS: dict[str, tuple[bytes, int, bool, str]] = {
    "no empty line": (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: x",
        400,
        False,
        "Missing empty line after headers",
    ),
    "bad utf8": (make().replace(b"Alice", b"Al\xffce"), 400, False, "Bad UTF-8 in headers"),
    "bare cr": (make({"+1": "X-A: a\rb"}), 400, False, "Bad line ending"),
    "garbage start": (b"\x00\x01\x02 \r\n\r\n", 400, False, "Bad Request-Line"),
    "only crlf": (b"\r\n\r\n", 400, False, "Missing empty line after headers"),
    "empty start line": (b"\r\n\r\nX: 1\r\n\r\n", 400, False, "Bad Request-Line"),
    "two fields in start": (
        make(start="OPTIONS sip:bob@biloxi.example.com"),
        400,
        True,
        "Bad Request-Line",
    ),
    "four fields in start": (
        make(start="OPTIONS sip:bob@biloxi.example.com SIP/2.0 x"),
        400,
        True,
        "Bad Request-Line",
    ),
    "tab in start": (
        make(start="OPTIONS\tsip:bob@biloxi.example.com SIP/2.0"),
        400,
        True,
        "Bad Request-Line",
    ),
    "bad version": (
        make(start="OPTIONS sip:bob@biloxi.example.com HTTP/1.1"),
        400,
        True,
        "Bad SIP-Version",
    ),
    "version 3": (
        make(start="OPTIONS sip:bob@biloxi.example.com SIP/3.0"),
        505,
        True,
        "Version Not Supported",
    ),
    "bad request-uri": (make(start="OPTIONS sip:bob@ SIP/2.0"), 400, True, "Bad Request-URI"),
    "uri headers": (
        make(start="OPTIONS sip:bob@biloxi.example.com?X=1 SIP/2.0"),
        400,
        True,
        "Bad Request-URI: headers not allowed",
    ),
    "http uri": (
        make(start="OPTIONS http://biloxi.example.com/ SIP/2.0"),
        416,
        True,
        "Unsupported URI Scheme",
    ),
    "urn uri": (make(start="OPTIONS urn:service:sos SIP/2.0"), 416, True, "Unsupported URI Scheme"),
    "line without colon": (make({"+1": "NoColonHere"}), 400, True, "Bad header line"),
    "empty header name": (make({"+1": ": value"}), 400, True, "Bad header line"),
    "bad header name": (make({"+1": "X A: 1"}), 400, True, "Bad header name"),
    "missing via": (make({"Via": None}), 400, False, "Missing Via"),
    "bad via": (make({"Via": "Via: SIP/2.0/UDP"}), 400, False, "Bad Via: bad sent-protocol"),
    "bad via host": (
        make({"Via": "Via: SIP/2.0/UDP bad host;branch=z9hG4bK1"}),
        400,
        False,
        "Bad Via: bad sent-by",
    ),
    "empty via element": (
        make({"Via": "Via: SIP/2.0/UDP a;branch=z9hG4bK1, ,SIP/2.0/UDP b"}),
        400,
        True,
        "Bad Via: empty element",
    ),
    "via empty param": (
        make({"Via": "Via: SIP/2.0/UDP a;;branch=z9hG4bK1"}),
        400,
        True,
        "Bad Via: empty parameter",
    ),
    "second via bad": (make({"+1": "Via: SIP/2.0/UDP"}), 400, True, "Bad Via: bad sent-protocol"),
    "empty branch": (
        make({"Via": "Via: SIP/2.0/UDP a;branch="}),
        400,
        False,
        "Bad Via: bad parameter value",
    ),
    "cookie-only branch": (
        make({"Via": "Via: SIP/2.0/UDP a;branch=z9hG4bK"}),
        400,
        True,
        "Bad Via: empty branch",
    ),
    "missing from": (make({"From": None}), 400, True, "Missing From"),
    "missing to": (make({"To": None}), 400, True, "Missing To"),
    "two from": (make({"+1": "f: <sip:x@y>;tag=2"}), 400, True, "Multiple From"),
    "two to": (make({"+1": "t: <sip:x@y>"}), 400, True, "Multiple To"),
    "bad from": (
        make({"From": "From: Alice, B <sip:a@b>"}),
        400,
        True,
        "Bad From: bad display name",
    ),
    "bad to uri": (make({"To": "To: <sip:bob@>"}), 400, True, "Bad To: bad SIP URI"),
    "to unterminated": (
        make({"To": 'To: "Bob <sip:bob@b>'}),
        400,
        True,
        "Bad To: unterminated quoted string",
    ),
    "to missing >": (make({"To": "To: <sip:bob@b"}), 400, True, "Bad To: missing >"),
    "missing call-id": (make({"Call-ID": None}), 400, True, "Missing Call-ID"),
    "two call-id": (make({"+1": "i: other"}), 400, True, "Multiple Call-ID"),
    "empty call-id": (make({"Call-ID": "Call-ID:"}), 400, True, "Bad Call-ID"),
    "spaced call-id": (make({"Call-ID": "Call-ID: a b"}), 400, True, "Bad Call-ID"),
    "missing cseq": (make({"CSeq": None}), 400, True, "Missing CSeq"),
    "two cseq": (make({"+1": "CSeq: 2 OPTIONS"}), 400, True, "Multiple CSeq"),
    "bad cseq": (make({"CSeq": "CSeq: OPTIONS"}), 400, True, "Bad CSeq"),
    "negative cseq": (make({"CSeq": "CSeq: -1 OPTIONS"}), 400, True, "Bad CSeq"),
    "huge cseq": (
        make({"CSeq": "CSeq: 2147483648 OPTIONS"}),
        400,
        True,
        "Bad CSeq: sequence number too large",
    ),
    "cseq mismatch": (make({"CSeq": "CSeq: 1 INVITE"}), 400, True, "Bad CSeq: method mismatch"),
    "cseq case mismatch": (
        make({"CSeq": "CSeq: 1 options"}),
        400,
        True,
        "Bad CSeq: method mismatch",
    ),
    "two max-forwards": (make({"+1": "Max-Forwards: 5"}), 400, True, "Multiple Max-Forwards"),
    "bad max-forwards": (
        make({"Max-Forwards": "Max-Forwards: seventy"}),
        400,
        True,
        "Bad Max-Forwards",
    ),
    "max-forwards 256": (
        make({"Max-Forwards": "Max-Forwards: 256"}),
        400,
        True,
        "Bad Max-Forwards",
    ),
    "bad contact": (
        make({"+1": "Contact: sip:a@b?x=y"}),
        400,
        True,
        "Bad Contact: URI with , or ? not in <>",
    ),
    "contact empty params": (
        make({"+1": 'Contact: "Joe" <sip:joe@example.org>;;;;'}),
        400,
        True,
        "Bad Contact: bad name-addr",
    ),
    "bad route": (make({"+1": "Route: <sip:proxy;lr"}), 400, True, "Bad Route: missing >"),
    "bad record-route": (
        make({"+1": "Record-Route: proxy.example.com"}),
        400,
        True,
        "Bad Record-Route: bad URI scheme",
    ),
    "two content-length": (make({"+1": "l: 0"}), 400, True, "Multiple Content-Length"),
    "negative content-length": (
        make({"Content-Length": "Content-Length: -1"}),
        400,
        True,
        "Bad Content-Length",
    ),
    "garbage content-length": (
        make({"Content-Length": "Content-Length: 1e3"}),
        400,
        True,
        "Bad Content-Length",
    ),
    "short body": (
        make({"Content-Length": "Content-Length: 10"}, body="abc"),
        400,
        True,
        "Bad Content-Length: larger than body",
    ),
    "ack never respondable": (
        make(
            {"CSeq": "CSeq: 1 ACK", "Call-ID": None}, start="ACK sip:bob@biloxi.example.com SIP/2.0"
        ),
        400,
        False,
        "Missing Call-ID",
    ),
    "response bad status": (
        b"SIP/2.0 99 Low\r\n" + make()[make().index(b"\r\n") + 2 :],
        400,
        False,
        "Bad Status-Code",
    ),
    "response 700": (
        b"SIP/2.0 700 High\r\n" + make()[make().index(b"\r\n") + 2 :],
        400,
        False,
        "Bad Status-Code",
    ),
    "response version": (
        b"SIP/3.0 200 OK\r\n" + make()[make().index(b"\r\n") + 2 :],
        400,
        False,
        "Bad Status-Line",
    ),
    "response missing call-id": (
        b"SIP/2.0 200 OK\r\n" + make({"Call-ID": None})[make().index(b"\r\n") + 2 :],
        400,
        False,
        "Missing Call-ID",
    ),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_fault(case: str) -> None:
    data, status, respondable, reason = FAULTS[case]
    with pytest.raises(ParseError) as info:
        parse_message(data)
    err = info.value
    assert (err.status_code, err.respondable, str(err)) == (status, respondable, reason)
    assert reason.isascii()
    assert "\r" not in reason
    assert "\n" not in reason
    if respondable:
        assert isinstance(err.partial, Request)
    else:
        assert err.partial is None


def test_bad_scheme_is_its_own_class() -> None:
    with pytest.raises(BadUriScheme):
        parse_message(make(start="OPTIONS mailto:bob@biloxi.example.com SIP/2.0"))


def test_first_fault_wins() -> None:
    data = make(
        {"CSeq": "CSeq: 1 INVITE", "Call-ID": None},
        start="OPTIONS sip:bob@biloxi.example.com SIP/3.0",
    )
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status_code == 505


def test_partial_can_be_answered() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(make({"CSeq": "CSeq: 1 INVITE"}))
    err = info.value
    assert isinstance(err.partial, Request)
    resp = make_response(err.partial, err.status_code, str(err))
    assert resp.reason == "Bad CSeq: method mismatch"
    assert resp.headers.get("CSeq") == "1 INVITE"
    assert resp.top_via.host == "pc33.atlanta.example.com"
    again = parse_message(resp.to_bytes())
    resp.headers.add("Content-Length", "0")  # the parser always records it
    assert again == resp


def test_partial_with_unusable_request_uri_has_placeholder() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(make(start="OPTIONS  sip:bob@biloxi.example.com SIP/2.0"))
    partial = info.value.partial
    assert isinstance(partial, Request)
    assert partial.method == "OPTIONS"
    assert partial.uri == Uri("sip", "bob", host="biloxi.example.com")
    with pytest.raises(ParseError) as info:
        parse_message(make(start="OPTIONS <sip:bob@biloxi.example.com> SIP/2.0"))
    partial = info.value.partial
    assert isinstance(partial, Request)
    assert str(partial.uri) == "sip:invalid"


def test_too_large() -> None:
    data = make({"+1": "X-Pad: " + "a" * 70000})
    with pytest.raises(MessageTooLarge) as info:
        parse_message(data)
    assert info.value.status_code == 513
    assert not info.value.respondable
    assert isinstance(parse_message(data, max_size=100_000), Request)
    with pytest.raises(MessageTooLarge):
        parse_message(make(), max_size=100)


def test_hostile_long_lines_stay_linear() -> None:
    # Near-misses that would make a backtracking regex quadratic.
    for value in (" " * 30000 + "x", "a" * 30000 + " ", ";" * 30000, '"' + "\\" * 30000):
        with pytest.raises(ParseError):
            parse_message(make({"To": "To: " + value}))
        parse_message(make({"+1": "X-Long: " + value}))


# --- StreamFramer -----------------------------------------------------------------------


def test_framer_one_message() -> None:
    framer = StreamFramer()
    data = corpus("invite_sdp.sip")
    assert framer.feed(data) == [data]
    assert framer.buffered == 0


def test_framer_byte_by_byte() -> None:
    framer = StreamFramer()
    a, b = corpus("invite_sdp.sip"), corpus("ok_record_route.sip")
    out: list[bytes] = []
    for i in range(len(a + b)):
        out += framer.feed((a + b)[i : i + 1])
    assert out == [a, b]


def test_framer_several_in_one_segment_and_split_body() -> None:
    framer = StreamFramer()
    a, b, c = corpus("ack.sip"), corpus("invite_sdp.sip"), corpus("bye.sip")
    stream = a + b + c
    cut = len(a) + len(b) - 10  # inside b's body
    assert framer.feed(stream[:cut]) == [a]
    assert framer.feed(stream[cut:]) == [b, c]


def test_framer_compact_content_length() -> None:
    framer = StreamFramer()
    data = make({"Content-Length": "l: 4"}, body="abcdEXTRA")
    assert framer.feed(data) == [data[:-5]]
    assert framer.buffered == 5


def test_framer_keepalive_ping_is_reported_in_order() -> None:
    framer = StreamFramer()
    a = corpus("ack.sip")
    out = framer.feed(b"\r\n\r\n" + a + b"\r\n\r\n\r\n\r\n")
    assert out == [KEEPALIVE_PING, a, KEEPALIVE_PING, KEEPALIVE_PING]
    assert out[0] is KEEPALIVE_PING


def test_framer_ping_split_across_segments() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KEEPALIVE_PING]


def test_framer_lone_crlf_before_message_is_dropped() -> None:
    framer = StreamFramer()
    a = corpus("bye.sip")
    assert framer.feed(b"\r\n" + a) == [a]


def test_framer_requires_content_length() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError, match=r"^Missing Content-Length$"):
        framer.feed(make({"Content-Length": None}))


@pytest.mark.parametrize("value", ["-1", "abc", "", "1 2", "0x10"])
def test_framer_bad_content_length(value: str) -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError, match=r"^Bad Content-Length$") as info:
        framer.feed(make({"Content-Length": f"Content-Length: {value}"}))
    assert info.value.status_code == 400


def test_framer_conflicting_content_length() -> None:
    with pytest.raises(ParseError, match=r"^Multiple Content-Length$"):
        StreamFramer().feed(make({"+1": "l: 3"}, body="abc"))


def test_framer_size_cap_on_headers_and_body() -> None:
    framer = StreamFramer(max_size=1000)
    with pytest.raises(MessageTooLarge):
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 2000)
    framer = StreamFramer(max_size=1000)
    with pytest.raises(MessageTooLarge):
        framer.feed(make({"Content-Length": "Content-Length: 5000"}))


def test_framer_output_parses() -> None:
    framer = StreamFramer()
    stream = b"".join(corpus(n) for n in CORPUS_FILES)
    out = framer.feed(stream)
    assert [parse_message(m) for m in out] == [parse_message(corpus(n)) for n in CORPUS_FILES]


# --- memos of pure checks (parser._request_uri, parser._valid_name_addr) -------------


def test_messages_with_the_same_request_uri_do_not_share_it() -> None:
    start = "OPTIONS sip:pbx.test;transport=udp SIP/2.0"
    first = parse_message(make(start=start))
    second = parse_message(make(start=start))
    assert isinstance(first, Request)
    assert isinstance(second, Request)
    assert first.uri == second.uri
    assert first.uri is not second.uri
    first.uri.params["lr"] = None
    first.uri.host = "other.test"
    third = parse_message(make(start=start))
    assert isinstance(third, Request)
    assert third.uri == second.uri
    assert third.uri.params == {"transport": "udp"}


def test_a_remembered_name_addr_does_not_vouch_for_another() -> None:
    assert isinstance(parse_message(make({"To": "To: <sip:bob@pbx.test>"})), Request)
    with pytest.raises(ParseError, match="Bad To"):
        parse_message(make({"To": "To: <sip:bob@pbx.test"}))
    long_to = "<sip:" + "b" * 300 + "@pbx.test>"  # longer than what the memo keeps
    for _ in range(2):
        msg = parse_message(make({"To": f"To: {long_to}"}))
        assert msg.headers.get("To") == long_to


def test_the_same_request_uri_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ParseError, match="Bad Request-URI"):
            parse_message(make(start="OPTIONS sip:pbx..test SIP/2.0"))
