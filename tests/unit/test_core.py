"""The stateless core: which requests get which answer, with which headers."""

from __future__ import annotations

import pytest

from switch.sip.core import Capabilities, StatelessCore, reason_phrase
from switch.sip.errors import MessageTooLarge, ParseError
from switch.sip.message import Headers, Request, Response
from switch.sip.uri import parse_uri


def request(
    method: str = "OPTIONS", *extra: tuple[str, str], to: str = "<sip:pbx.test>"
) -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-1;rport"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@pbx.test>;tag=a1"),
            ("To", to),
            ("Call-ID", "call-1@192.0.2.1"),
            ("CSeq", f"1 {method}"),
        ]
    )
    for name, value in extra:
        if name == "Max-Forwards":
            headers.set(name, value)
        else:
            headers.add(name, value)
    return Request(method, parse_uri("sip:pbx.test"), headers)


@pytest.fixture
def core() -> StatelessCore:
    return StatelessCore(Capabilities(server="Aiguilleur/test", tag_secret=b"k"))


def answer(core: StatelessCore, req: Request) -> Response:
    response = core.answer(req)
    assert response is not None
    return response


def test_options_gets_200_with_capabilities(core: StatelessCore) -> None:
    response = answer(core, request())
    assert response.status == 200
    h = response.headers
    assert h.get("Allow") == "OPTIONS, ACK, CANCEL, BYE"
    assert h.get("Accept") == "application/sdp"
    assert h.get("Accept-Encoding") == "identity"
    assert h.get("Accept-Language") == "en, fr"
    assert "Supported" in h  # empty: no extension implemented yet (RFC 3261 §20.37)
    assert h.get("Server") == "Aiguilleur/test"


def test_response_copies_the_transaction_headers(core: StatelessCore) -> None:
    req = request()
    response = answer(core, req)
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.headers.get_all(name) == req.headers.get_all(name)


def test_to_tag_is_added_and_stable_for_retransmissions(core: StatelessCore) -> None:
    """§8.2.7: a stateless UAS generates the same tag for the same request."""
    first = answer(core, request()).to_tag
    again = answer(core, request()).to_tag
    assert first is not None
    assert first == again
    other = request()
    other.headers.set("Call-ID", "call-2@192.0.2.1")
    assert answer(core, other).to_tag != first


def test_tag_depends_on_the_secret() -> None:
    a = StatelessCore(Capabilities(tag_secret=b"one")).to_tag(request())
    b = StatelessCore(Capabilities(tag_secret=b"two")).to_tag(request())
    assert a != b


def test_unknown_method_gets_405_with_allow(core: StatelessCore) -> None:
    response = answer(core, request("FOOBAR"))
    assert response.status == 405
    assert response.headers.get("Allow") == "OPTIONS, ACK, CANCEL, BYE"


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "FOOBAR", "BYE"])
def test_max_forwards_zero_gets_483(core: StatelessCore, method: str) -> None:
    response = answer(core, request(method, ("Max-Forwards", "0")))
    assert (response.status, response.reason) == (483, "Too Many Hops")


def test_invalid_max_forwards_gets_400(core: StatelessCore) -> None:
    req = request()
    req.headers.set("Max-Forwards", "seventy")
    response = answer(core, req)
    assert (response.status, response.reason) == (400, "Invalid Max-Forwards")


def test_missing_max_forwards_is_accepted(core: StatelessCore) -> None:
    req = request()
    req.headers.remove("Max-Forwards")
    assert answer(core, req).status == 200


def test_unsupported_require_gets_420_listing_each_tag_once(core: StatelessCore) -> None:
    req = request("OPTIONS", ("Require", "foo"), ("Require", "100rel"), ("Require", "foo"))
    response = answer(core, req)
    assert response.status == 420
    assert response.headers.get_all("Unsupported") == ["foo, 100rel"]


def test_require_of_a_supported_tag_is_accepted() -> None:
    core = StatelessCore(Capabilities(supported=("timer",)))
    assert answer(core, request("OPTIONS", ("Require", "Timer"))).status == 200
    assert answer(core, request("OPTIONS", ("Require", "timer, path"))).headers.get(
        "Unsupported"
    ) == ("path")


def test_ack_and_cancel_are_left_to_the_transaction_layer(core: StatelessCore) -> None:
    """ACK is never answered; CANCEL is answered 200/481 by the transaction layer (§9.2)."""
    assert core.answer(request("ACK")) is None
    assert core.answer(request("ACK", ("Max-Forwards", "0"))) is None
    assert core.answer(request("CANCEL", ("Require", "foo"))) is None


def test_methods_of_later_issues_get_501(core: StatelessCore) -> None:
    for method in ("INVITE", "REGISTER", "SUBSCRIBE", "MESSAGE", "REFER"):
        assert answer(core, request(method)).status == 501, method


def test_stateful_methods_are_left_to_the_transaction_layer() -> None:
    core = StatelessCore(Capabilities(allow=("OPTIONS", "INVITE"), stateful=("INVITE",)))
    assert core.answer(request("INVITE")) is None
    # Max-Forwards is still checked statelessly.
    assert answer(core, request("INVITE", ("Max-Forwards", "0"))).status == 483


def test_requests_inside_a_dialog_get_481(core: StatelessCore) -> None:
    assert answer(core, request("BYE")).status == 481
    assert answer(core, request("OPTIONS", to="<sip:pbx.test>;tag=xyz")).status == 481


def test_reject_uses_the_error_status_and_reason(core: StatelessCore) -> None:
    req = request()
    response = core.reject(req, ParseError("Bad CSeq\r\nX: y"))
    assert (response.status, response.reason) == (400, "Bad CSeq  X: y")
    assert core.reject(req, MessageTooLarge("Message Too Large")).status == 513


def test_reason_phrase_is_one_printable_line() -> None:
    assert reason_phrase("a\x00b\nc") == "a b c"
    assert reason_phrase("") == "Bad Request"
    assert len(reason_phrase("x" * 500)) == 120


@pytest.mark.parametrize(
    "to",
    ["<sip:pbx.test>", "sip:pbx.test", '"Désiré" <sip:pbx.test;transport=tcp>', "<sip:x@y>;tag=t9"],
)
def test_reply_is_make_response_built_in_one_pass(core: StatelessCore, to: str) -> None:
    from switch.sip.message import make_response

    req = request("OPTIONS", ("Via", "SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK-2"), to=to)
    expected = make_response(
        req, 481, to_tag=core.to_tag(req), extra=[("Server", "Aiguilleur/test")]
    )
    assert core.reply(req, 481) == expected


@pytest.mark.parametrize(
    ("method", "extra", "to"),
    [
        ("OPTIONS", (), "<sip:pbx.test>"),
        ("OPTIONS", (), '"Désiré" <sip:pbx.test>;tag=t9'),
        ("OPTIONS", (("Max-Forwards", "0"),), "<sip:pbx.test>"),
        ("OPTIONS", (("Max-Forwards", "x"),), "<sip:pbx.test>"),
        ("OPTIONS", (("Require", "foo, bar"), ("Require", "foo")), "<sip:pbx.test>"),
        ("OPTIONS", (("Via", "SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK-2"),), "sip:pbx.test"),
        ("FOO", (), "<sip:pbx.test>"),
        ("INVITE", (), "<sip:pbx.test>"),
        ("BYE", (), "<sip:pbx.test>;tag=t1"),
        ("INFO", (), "<sip:pbx.test>"),
    ],
)
def test_answer_wire_is_answer_to_bytes(
    method: str, extra: tuple[tuple[str, str], ...], to: str
) -> None:
    core = StatelessCore(
        Capabilities(
            allow=("OPTIONS", "ACK", "CANCEL", "BYE", "INFO"),
            supported=("100rel",),
            server="Aiguilleur/test",
            tag_secret=b"k",
        )
    )
    req = request(method, *extra, to=to)
    response = answer(core, req)
    assert core.answer_wire(req) == (response.status, response.to_bytes())


@pytest.mark.parametrize("method", ["ACK", "CANCEL", "REGISTER"])
def test_answer_wire_leaves_what_answer_leaves(method: str) -> None:
    core = StatelessCore(Capabilities(stateful=("REGISTER",)))
    assert core.answer(request(method)) is None
    assert core.answer_wire(request(method)) is None
