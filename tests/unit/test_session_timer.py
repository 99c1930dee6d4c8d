"""RFC 4028 negotiation and deadlines."""

from __future__ import annotations

import pytest

from switch.sip.errors import SipError
from switch.sip.message import Request, make_response
from switch.sip.session_timer import (
    IntervalTooSmall,
    Negotiated,
    SessionTimer,
    expiry_margin,
    interval_after_422,
    parse_session_expires,
    uac_negotiated,
    uas_negotiate,
    uas_response_headers,
)
from tests.unit.test_transaction import make_request


def _invite(*headers: tuple[str, str]) -> Request:
    r = make_request("INVITE")
    for n, v in headers:
        r.headers.add(n, v)
    return r


def test_parse() -> None:
    se = parse_session_expires("1800;refresher=UAS")
    assert (se.interval, se.refresher) == (1800, "uas")
    assert str(se) == "1800;refresher=uas"
    with pytest.raises(SipError, match="Bad Session-Expires") as info:
        parse_session_expires("soon")
    assert info.value.status_code == 400


def test_too_small_is_422_with_min_se() -> None:
    with pytest.raises(IntervalTooSmall) as err:
        uas_negotiate(_invite(("Supported", "timer"), ("Session-Expires", "60")), local_min_se=90)
    assert err.value.status_code == 422
    assert err.value.min_se == 90


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((("Supported", "timer"), ("Session-Expires", "900")), Negotiated(900, "uac", True)),
        (
            (("Supported", "timer"), ("Session-Expires", "900;refresher=uas")),
            Negotiated(900, "uas", True),
        ),
        ((("Session-Expires", "900"),), Negotiated(900, "uas", False)),  # no Supported: timer
        ((), Negotiated(1800, "uas", False)),  # the switch inserts its own, refreshes
        ((("Supported", "timer"), ("Session-Expires", "7200")), Negotiated(1800, "uac", True)),
        ((("Supported", "timer"), ("Min-SE", "2000")), Negotiated(2000, "uac", True)),
    ],
)
def test_uas_refresher_choice(headers: list[tuple[str, str]], expected: object) -> None:
    assert uas_negotiate(_invite(*headers)) == expected


def test_response_headers() -> None:
    assert uas_response_headers(Negotiated(900, "uac", True)) == [
        ("Session-Expires", "900;refresher=uac"),
        ("Require", "timer"),
    ]
    assert uas_response_headers(Negotiated(900, "uas", False)) == [
        ("Session-Expires", "900;refresher=uas")
    ]


def test_uac_side() -> None:
    invite = _invite()
    ok = make_response(invite, 200, to_tag="t", extra=[("Session-Expires", "600;refresher=uas")])
    assert uac_negotiated(ok, 1800) == Negotiated(600, "uas", True)
    bare = make_response(invite, 200, to_tag="t")
    assert uac_negotiated(bare, 1800) == Negotiated(1800, "uac", False)
    assert uac_negotiated(bare, 1800, refresh_anyway=False) is None
    too_small = make_response(invite, 422, to_tag="t", extra=[("Min-SE", "300")])
    assert interval_after_422(too_small, 90) == 300


def test_deadlines() -> None:
    assert expiry_margin(90) == 30
    assert expiry_margin(1800) == 32
    t = SessionTimer.start(Negotiated(1800, "uac", True), we_are_uac=True, now=10)
    assert t.we_refresh
    assert t.deadline() == 910
    t = SessionTimer.start(Negotiated(1800, "uac", True), we_are_uac=False, now=10)
    assert not t.we_refresh
    assert t.deadline() == 10 + 1800 - 32
