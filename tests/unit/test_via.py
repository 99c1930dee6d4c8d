"""RFC 3261 §18.2.1/§18.2.2 and RFC 3581 §4: stamping requests, routing responses."""

from __future__ import annotations

import pytest

from switch.sip.endpoint import Endpoint
from switch.sip.headers import parse_via
from switch.sip.message import Headers, Request
from switch.sip.uri import Uri
from switch.sip.via import (
    has_magic_cookie,
    response_destination,
    stamp_received,
)


def request_with_vias(*vias: str) -> Request:
    headers = Headers([("Via", v) for v in vias])
    headers.add("Call-ID", "c1")
    headers.add("CSeq", "1 OPTIONS")
    return Request("OPTIONS", Uri("sip", host="example.com"), headers)


UDP_SOURCE = Endpoint("UDP", "192.0.2.10", 5062)


def top(request: Request) -> dict[str, str | None]:
    return request.top_via.params


# ------------------------------------------------------------------ stamp_received


def test_same_ip_and_no_rport_is_left_alone() -> None:
    req = request_with_vias("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1")
    stamp_received(req, UDP_SOURCE)
    assert req.headers.get("Via") == "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1"


def test_different_ip_gets_received() -> None:
    req = request_with_vias("SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1")
    stamp_received(req, UDP_SOURCE)
    assert top(req) == {"branch": "z9hG4bK1", "received": "192.0.2.10"}


def test_domain_name_sent_by_always_gets_received() -> None:
    req = request_with_vias("SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bK1")
    stamp_received(req, UDP_SOURCE)
    assert top(req)["received"] == "192.0.2.10"


def test_empty_rport_is_filled_and_received_added_even_when_equal() -> None:
    # RFC 3581 §4: received "even if it is identical to the value of the sent-by".
    req = request_with_vias("SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1")
    stamp_received(req, UDP_SOURCE)
    assert top(req) == {"rport": "5062", "branch": "z9hG4bK1", "received": "192.0.2.10"}


def test_rport_with_value_is_not_rewritten() -> None:
    req = request_with_vias("SIP/2.0/UDP 192.0.2.10:5060;rport=1234;branch=z9hG4bK1")
    stamp_received(req, UDP_SOURCE)
    assert top(req)["rport"] == "1234"
    assert "received" not in top(req)


def test_only_the_top_via_is_stamped_and_order_is_kept() -> None:
    req = request_with_vias(
        "SIP/2.0/UDP 10.0.0.7;rport;branch=z9hG4bK1",
        "SIP/2.0/UDP 10.0.0.8;rport;branch=z9hG4bK2",
    )
    stamp_received(req, UDP_SOURCE)
    vias = req.vias
    assert vias[0].params == {"rport": "5062", "branch": "z9hG4bK1", "received": "192.0.2.10"}
    assert vias[1].params == {"rport": None, "branch": "z9hG4bK2"}


def test_ipv6_literals_compare_as_addresses() -> None:
    req = request_with_vias("SIP/2.0/UDP [2001:db8::0001]:5060;branch=z9hG4bK1")
    stamp_received(req, Endpoint("UDP", "2001:db8::1", 5060))
    assert "received" not in top(req)
    stamp_received(req, Endpoint("UDP", "2001:db8::2", 5060))
    assert top(req)["received"] == "2001:db8::2"


def test_request_without_via_is_left_alone() -> None:
    req = request_with_vias()
    stamp_received(req, UDP_SOURCE)
    assert "Via" not in req.headers


# ------------------------------------------------------------ response_destination


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        pytest.param(
            "SIP/2.0/TCP 10.0.0.7:5060;branch=z9hG4bK1;received=192.0.2.10",
            Endpoint("TCP", "192.0.2.10", 40000, conn_id=7),
            Endpoint("TCP", "192.0.2.10", 40000, conn_id=7),
            id="reliable-back-on-the-connection",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.7:5070;maddr=239.1.1.1;branch=z9hG4bK1;received=192.0.2.10",
            UDP_SOURCE,
            Endpoint("UDP", "239.1.1.1", 5070),
            id="maddr-with-sent-by-port",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.7;maddr=239.1.1.1;branch=z9hG4bK1",
            UDP_SOURCE,
            Endpoint("UDP", "239.1.1.1", 5060),
            id="maddr-default-port",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.7:5060;rport=5062;branch=z9hG4bK1;received=192.0.2.10",
            UDP_SOURCE,
            Endpoint("UDP", "192.0.2.10", 5062),
            id="rport-to-source",
        ),
        pytest.param(
            "SIP/2.0/UDP 10.0.0.7:5070;branch=z9hG4bK1;received=192.0.2.10",
            UDP_SOURCE,
            Endpoint("UDP", "192.0.2.10", 5070),
            id="received-with-sent-by-port",
        ),
        pytest.param(
            "SIP/2.0/UDP host.example;branch=z9hG4bK1;received=192.0.2.10",
            UDP_SOURCE,
            Endpoint("UDP", "192.0.2.10", 5060),
            id="received-default-port",
        ),
        pytest.param(
            "SIP/2.0/UDP 192.0.2.10:5080;branch=z9hG4bK1",
            UDP_SOURCE,
            Endpoint("UDP", "192.0.2.10", 5080),
            id="sent-by",
        ),
        pytest.param(
            "SIP/2.0/TCP 198.51.100.9:5060;branch=z9hG4bK1;received=192.0.2.10",
            UDP_SOURCE,
            Endpoint("UDP", "192.0.2.10", 5060),
            id="forged-tcp-via-over-udp-is-answered-over-udp",
        ),
        pytest.param(
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1",
            Endpoint("UDP", "2001:db8::1", 5060),
            Endpoint("UDP", "2001:db8::1", 5060),
            id="ipv6-sent-by-without-brackets",
        ),
    ],
)
def test_response_destination(via: str, source: Endpoint, expected: Endpoint) -> None:
    dest = response_destination(parse_via(via), source)
    assert dest == expected
    # The stack answers statelessly on this alone: never another transport.
    assert dest.transport == source.transport


def test_stamp_then_route_sends_back_to_the_nat_binding() -> None:
    req = request_with_vias("SIP/2.0/UDP 10.0.0.7:5060;rport;branch=z9hG4bK1")
    source = Endpoint("UDP", "203.0.113.9", 61000)
    stamp_received(req, source)
    assert response_destination(req.top_via, source) == source


def test_magic_cookie() -> None:
    assert has_magic_cookie("z9hG4bK776asdhds")
    assert not has_magic_cookie("776asdhds")
    assert not has_magic_cookie(None)


# ------------------------------------------------------ stamp_received's return value


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1",
        "SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1",
        "SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bK1;received=192.0.2.10",
        "sip / 2.0 / udp  10.0.0.7 : 5060 ; branch = z9hG4bK1 ; rport",
        'SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK1;x="a;b"',
    ],
)
def test_stamp_returns_the_top_via_as_it_now_stands(via: str) -> None:
    req = request_with_vias(via, "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bK2")
    top = stamp_received(req, UDP_SOURCE)
    assert top == req.top_via
    assert top is not None
    assert response_destination(top, UDP_SOURCE) == response_destination(req.top_via, UDP_SOURCE)


def test_the_returned_via_is_the_callers_own() -> None:
    req = request_with_vias("SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK1")
    top = stamp_received(req, UDP_SOURCE)
    assert top is not None
    top.params["maddr"] = "239.1.1.1"
    assert "maddr" not in req.top_via.params


def test_stamp_returns_none_without_via() -> None:
    assert stamp_received(request_with_vias(), UDP_SOURCE) is None


@pytest.mark.parametrize(
    ("sent_by", "source_host", "stamped"),
    [
        pytest.param("192.0.2.10", "192.0.2.10", False, id="same-ipv4-text"),
        pytest.param("192.0.2.010", "192.0.2.10", True, id="leading-zero-is-not-an-address"),
        pytest.param("192.0.2.11", "192.0.2.10", True, id="other-ipv4"),
        pytest.param("[::ffff:192.0.2.10]", "192.0.2.10", True, id="v4-mapped-is-not-v4"),
        pytest.param("[2001:DB8::A]", "2001:db8:0:0:0:0:0:a", False, id="ipv6-spellings"),
        pytest.param("[2001:db8::a]", "2001:db8::b", True, id="other-ipv6"),
        pytest.param("localhost", "localhost", True, id="same-name-is-not-an-address"),
    ],
)
def test_sent_by_compares_as_an_address(sent_by: str, source_host: str, stamped: bool) -> None:
    req = request_with_vias(f"SIP/2.0/UDP {sent_by};branch=z9hG4bK1")
    stamp_received(req, Endpoint("UDP", source_host, 5060))
    assert ("received" in top(req)) is stamped


def test_replace_first_is_pop_first_then_prepend() -> None:
    for items in (
        [("Via", "a"), ("Via", "b"), ("To", "t")],
        [("Via", "a"), ("To", "t"), ("Via", "b")],
        [("To", "t"), ("Via", "a"), ("X", "x"), ("Via", "b"), ("Via", "c")],
        [("To", "t"), ("Via", "a")],
        [("Via", "a"), ("To", "t")],
        [("To", "t")],
        [],
    ):
        one, two = Headers(items), Headers(items)
        one.replace_first("v", "new")
        two.pop_first("Via")
        two.prepend("Via", "new")
        assert one == two
