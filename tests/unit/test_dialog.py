"""Dialogs (RFC 3261 §12): creation both sides, routing, CSeq, matching."""

from __future__ import annotations

import pytest

from switch.sip.dialog import (
    TRANSITIONS,
    CSeqOutOfOrder,
    Dialog,
    DialogError,
    DialogInput,
    DialogSet,
    DialogState,
)
from switch.sip.message import Request, Response, make_response
from tests.unit.test_transaction import make_request

RR = ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]


def _invite(record_route: list[str] | None = None) -> Request:
    invite = make_request("INVITE", call_id="c1", from_tag="ft")
    for rr in record_route or []:
        invite.headers.add("Record-Route", rr)
    return invite


def _response(
    invite: Request, status: int, *, tag: str = "tt", contact: str = "<sip:bob@192.0.2.9>"
) -> Response:
    extra = [("Contact", contact)] + [
        ("Record-Route", v) for v in invite.headers.get_all("Record-Route")
    ]
    return make_response(invite, status, to_tag=tag, extra=extra)


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    invite = _invite(RR)
    d = Dialog.as_uac(invite, _response(invite, 200))
    assert d.state is DialogState.CONFIRMED
    assert (d.call_id, d.local_tag, d.remote_tag) == ("c1", "ft", "tt")
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example;lr", "sip:p1.example;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.9"
    assert d.local_seq == 1
    assert d.remote_seq is None
    bye = d.create_request("BYE", via=("UDP", "192.0.2.1:5060"))
    assert str(bye.uri) == "sip:bob@192.0.2.9"  # loose routing: R-URI = remote target
    assert bye.headers.get_all("Route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert bye.cseq.seq == 2
    assert bye.headers.get("Max-Forwards") == "70"
    assert bye.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060"
    assert bye.to_tag == "tt"
    assert bye.from_tag == "ft"
    assert str(d.next_hop()) == "sip:p2.example;lr"


def test_uas_dialog_keeps_record_route_order() -> None:
    invite = _invite(RR)
    d = Dialog.as_uas(invite, "lt")
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example;lr", "sip:p2.example;lr"]
    assert d.local_seq is None
    assert d.remote_seq == 1
    assert str(d.remote_target) == "sip:alice@192.0.2.1:5060"
    req = d.create_request("BYE")
    assert req.cseq.seq == 1
    assert req.from_tag == "lt"
    assert req.to_tag == "ft"
    assert "Via" not in req.headers


def test_strict_route() -> None:
    invite = _invite(["<sip:strict.example;maddr=10.0.0.1>", "<sip:p2.example;lr>"])
    d = Dialog.as_uas(invite, "lt")
    req = d.create_request("INFO")
    # §12.2.1.1: first route into the R-URI, the rest plus the remote target as Route.
    assert str(req.uri) == "sip:strict.example;maddr=10.0.0.1"
    assert req.headers.get_all("Route") == ["<sip:p2.example;lr>", "<sip:alice@192.0.2.1:5060>"]
    assert str(d.next_hop()) == "sip:strict.example;maddr=10.0.0.1"


def test_no_route_set_no_route_header() -> None:
    invite = _invite()
    d = Dialog.as_uac(invite, _response(invite, 180))
    assert d.state is DialogState.EARLY
    assert "Route" not in d.create_request("PRACK").headers


def test_out_of_order_cseq_is_500_and_target_refresh() -> None:
    d = Dialog.as_uas(_invite(), "lt")
    d.receive_request(make_request("INFO", call_id="c1", from_tag="ft", to_tag="lt", cseq=5))
    with pytest.raises(CSeqOutOfOrder) as err:
        d.receive_request(make_request("INFO", call_id="c1", from_tag="ft", to_tag="lt", cseq=4))
    assert err.value.status_code == 500
    reinvite = make_request("INVITE", call_id="c1", from_tag="ft", to_tag="lt", cseq=6)
    reinvite.headers.set("Contact", "<sip:alice@198.51.100.7>")
    d.receive_request(reinvite)
    assert str(d.remote_target) == "sip:alice@198.51.100.7"
    ack = make_request("ACK", call_id="c1", from_tag="ft", to_tag="lt", cseq=6)
    d.receive_request(ack)  # not checked
    assert d.remote_seq == 6


def test_response_target_refresh() -> None:
    invite = _invite()
    d = Dialog.as_uac(invite, _response(invite, 200))
    reinvite = d.create_request("INVITE")
    d.receive_response(reinvite, _response(reinvite, 200, contact="<sip:bob@203.0.113.5>"))
    assert str(d.remote_target) == "sip:bob@203.0.113.5"


def test_forked_early_dialogs_in_a_set_and_matching() -> None:
    invite = _invite()
    dialogs = DialogSet()
    x = dialogs.add(Dialog.as_uac(invite, _response(invite, 180, tag="x")))
    y = dialogs.add(Dialog.as_uac(invite, _response(invite, 183, tag="y")))
    assert len(dialogs) == 2
    assert x.id != y.id
    incoming = make_request("BYE", call_id="c1", from_tag="y", to_tag="ft")
    assert dialogs.match_request(incoming) is y
    assert (
        dialogs.match_request(make_request("BYE", call_id="c1", from_tag="z", to_tag="ft")) is None
    )
    assert dialogs.match_response(_response(invite, 200, tag="x")) is x
    x.advance(DialogInput.SUCCESS)
    y.advance(DialogInput.FAILURE)
    assert (x.state, y.state) == (DialogState.CONFIRMED, DialogState.TERMINATED)
    with pytest.raises(DialogError):
        x.advance(DialogInput.PROVISIONAL)


def test_dialog_table_is_monotone() -> None:
    order = [DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED]
    for (state, _), nxt in TRANSITIONS.items():
        assert order.index(nxt) >= order.index(state)


def test_uac_needs_a_tag() -> None:
    invite = _invite()
    with pytest.raises(ValueError, match="To tag"):
        Dialog.as_uac(invite, make_response(invite, 180))
