"""TransactionLayer: matching, the deadline heap, CANCEL, RFC 2543 peers, errors."""

from __future__ import annotations

import pytest

from switch.sip.endpoint import Endpoint
from switch.sip.events import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.headers import CSeq
from switch.sip.message import Request, Response, make_response
from switch.sip.parser import parse_message
from switch.sip.transaction import (
    ClientKey,
    ServerKey,
    State,
    TimerConfig,
    UnexpectedInput,
    build_cancel,
)
from switch.sip.transaction_layer import NoSuchTransaction, TransactionLayer
from tests.unit.test_transaction import drain, make_request, new_layer, response_to

ALICE = Endpoint("UDP", "192.0.2.1", 5060)  # the peer that sends requests to us
BOB = Endpoint("UDP", "192.0.2.2", 5060)  # the peer our requests go to
T1 = 0.5


def sent(layer: TransactionLayer) -> list[tuple[Request | Response, Endpoint]]:
    """Datagrams, parsed back (what a peer would see)."""
    return [(parse_message(data), dest) for data, dest in layer.datagrams_to_send()]


def run_timers(layer: TransactionLayer, until: float) -> None:
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)


# ------------------------------------------------------------------ client side


def test_send_request_adds_a_branch_and_sends_to_dest() -> None:
    layer = new_layer()
    invite = make_request(branch=None)
    key = layer.send_request(invite, BOB, 0.0)
    assert key == ClientKey("z9hG4bK-gen1", "INVITE")
    [(wire, dest)] = sent(layer)
    assert dest == BOB
    assert isinstance(wire, Request)
    assert wire.branch == "z9hG4bK-gen1"
    assert wire.vias[0].host == "192.0.2.1"
    assert layer.get_timer() == T1


def test_send_request_keeps_a_cookie_branch_and_refuses_others() -> None:
    layer = new_layer()
    assert layer.send_request(make_request(branch="z9hG4bKmine"), BOB, 0.0).branch == (
        "z9hG4bKmine"
    )
    with pytest.raises(ValueError, match="magic cookie"):
        layer.send_request(make_request(branch="old-style"), BOB, 0.0)
    with pytest.raises(ValueError, match="already exists"):
        layer.send_request(make_request(branch="z9hG4bKmine"), BOB, 0.0)
    for method in ("ACK", "CANCEL"):
        with pytest.raises(ValueError, match=method):
            layer.send_request(make_request(method), BOB, 0.0)
    with pytest.raises(ValueError, match="CSeq"):
        layer.send_request(make_request("INFO", cseq_method="BYE"), BOB, 0.0)
    no_via = make_request("OPTIONS", branch="z9hG4bK2")
    no_via.headers.remove("Via")
    with pytest.raises(ValueError, match="no Via"):
        layer.send_request(no_via, BOB, 0.0)


def test_new_branch_without_cookie_is_refused() -> None:
    layer = TransactionLayer(new_branch=lambda: "abc")
    with pytest.raises(ValueError, match="must start with"):
        layer.send_request(make_request(branch=None), BOB, 0.0)


def test_response_matched_by_branch_and_cseq_method() -> None:
    layer = new_layer()
    invite = make_request(branch="z9hG4bK-a")
    key = layer.send_request(invite, BOB, 0.0)
    ringing = response_to(invite, 180)
    layer.receive(ringing, BOB, 0.1)
    assert drain(layer) == [ResponseReceived(ringing, key)]
    # same branch, other method (the response to a CANCEL we never sent): stray
    other = response_to(invite, 200)
    other.headers.set("CSeq", "1 CANCEL")
    layer.receive(other, BOB, 0.2)
    # other branch: stray
    stranger = response_to(make_request(branch="z9hG4bK-b"), 200)
    layer.receive(stranger, BOB, 0.3)
    assert drain(layer) == [
        StrayResponseReceived(other, BOB),
        StrayResponseReceived(stranger, BOB),
    ]


def test_invite_timeout_events_and_cleanup() -> None:
    layer = new_layer()
    key = layer.send_request(make_request(), BOB, 0.0)
    run_timers(layer, 100)
    assert len(sent(layer)) == 7
    assert drain(layer) == [TransactionTimedOut(key, "INVITE"), TransactionTerminated(key)]
    assert layer.get_timer() is None
    assert len(layer) == 0
    assert layer.get_transaction(key) is None


def test_handle_timer_with_a_late_clock_fires_each_due_timer_once() -> None:
    layer = new_layer()
    key = layer.send_request(make_request(), BOB, 0.0)
    layer.handle_timer(40.0)  # A (0.5) and B (32) are both overdue
    assert len(sent(layer)) == 2  # the INVITE and a single retransmission
    assert drain(layer) == [TransactionTimedOut(key, "INVITE"), TransactionTerminated(key)]


def test_non_2xx_final_ack_goes_to_the_invite_destination() -> None:
    layer = new_layer()
    invite = make_request()
    key = layer.send_request(invite, BOB, 0.0)
    sent(layer)
    busy = response_to(invite, 486)
    layer.receive(busy, BOB, 0.2)
    [(ack, dest)] = sent(layer)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert dest == BOB
    assert drain(layer) == [ResponseReceived(busy, key)]
    layer.receive(busy, BOB, 1.0)  # retransmission: ACK again, nothing to the TU
    assert [m.method for m, _ in sent(layer)] == ["ACK"]  # type: ignore[union-attr]
    assert drain(layer) == []
    run_timers(layer, 100)
    assert drain(layer) == [TransactionTerminated(key)]


def test_2xx_is_not_acked_by_the_layer_and_retransmissions_reach_the_tu() -> None:
    layer = new_layer()
    invite = make_request()
    key = layer.send_request(invite, BOB, 0.0)
    sent(layer)
    ok = response_to(invite, 200)
    layer.receive(ok, BOB, 0.1)
    layer.receive(ok, BOB, 0.6)
    assert sent(layer) == []
    assert drain(layer) == [ResponseReceived(ok, key), ResponseReceived(ok, key)]
    assert layer.get_transaction(key).state is State.ACCEPTED  # type: ignore[union-attr]
    ack = make_request("ACK", to_tag="to-1", branch=None)
    layer.send_ack_2xx(ack, BOB)
    [(wire, dest)] = sent(layer)
    assert dest == BOB
    assert wire.branch == "z9hG4bK-gen1"
    assert wire.branch != invite.branch
    with pytest.raises(ValueError, match="ACK"):
        layer.send_ack_2xx(make_request("BYE"), BOB)
    run_timers(layer, 100)
    assert drain(layer) == [TransactionTerminated(key)]
    layer.receive(ok, BOB, 101)  # after Timer M: stray
    assert drain(layer) == [StrayResponseReceived(ok, BOB)]


def test_provisional_after_final_is_discarded() -> None:
    layer = new_layer()
    invite = make_request()
    layer.send_request(invite, BOB, 0.0)
    layer.receive(response_to(invite, 200), BOB, 0.1)
    drain(layer)
    layer.receive(response_to(invite, 180), BOB, 0.2)
    assert drain(layer) == []


def test_unparseable_via_in_a_response_is_dropped() -> None:
    layer = new_layer()
    bad = response_to(make_request(), 200)
    bad.headers.set("Via", "garbage")
    layer.receive(bad, BOB, 0.0)
    no_via = response_to(make_request(), 200)
    no_via.headers.remove("Via")
    layer.receive(no_via, BOB, 0.0)
    assert drain(layer) == []


# --------------------------------------------------------------------- CANCEL (UAC)


def test_cancel_waits_for_a_provisional_then_goes_with_same_branch() -> None:
    layer = new_layer()
    invite = make_request(routes=["<sip:p1.example.com;lr>"])
    key = layer.send_request(invite, BOB, 0.0)
    sent(layer)
    cancel_key = layer.cancel(key, 0.1, extra=[("Reason", "SIP;cause=487")])
    assert cancel_key == ClientKey(key.branch, "CANCEL")
    assert layer.cancel(key, 0.15) == cancel_key  # idempotent
    run_timers(layer, 0.6)
    assert [m.method for m, _ in sent(layer)] == ["INVITE"]  # type: ignore[union-attr]
    ringing = response_to(invite, 180)
    layer.receive(ringing, BOB, 0.7)
    [(cancel, dest)] = sent(layer)
    assert dest == BOB
    assert isinstance(cancel, Request)
    assert cancel.method == "CANCEL"
    assert cancel.branch == invite.branch
    assert cancel.cseq == CSeq(1, "CANCEL")
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert cancel.headers.get("Reason") == "SIP;cause=487"
    assert layer.cancel(key, 0.8) == cancel_key  # nothing more is sent
    assert sent(layer) == []
    ok = response_to(cancel, 200)
    layer.receive(ok, BOB, 0.9)
    terminated = response_to(invite, 487)
    layer.receive(terminated, BOB, 1.0)
    events = drain(layer)
    assert ResponseReceived(ok, cancel_key) in events
    assert ResponseReceived(terminated, key) in events
    assert [m.method for m, _ in sent(layer)] == ["ACK"]  # type: ignore[union-attr]


def test_cancel_in_proceeding_is_sent_at_once() -> None:
    layer = new_layer()
    invite = make_request()
    key = layer.send_request(invite, BOB, 0.0)
    layer.receive(response_to(invite, 100), BOB, 0.1)
    sent(layer)
    assert layer.cancel(key, 0.2) is not None
    assert [m.method for m, _ in sent(layer)] == ["CANCEL"]  # type: ignore[union-attr]


def test_held_cancel_dropped_when_final_comes_first() -> None:
    layer = new_layer()
    invite = make_request()
    key = layer.send_request(invite, BOB, 0.0)
    layer.cancel(key, 0.1)
    sent(layer)
    layer.receive(response_to(invite, 200), BOB, 0.2)
    assert sent(layer) == []
    assert layer.cancel(key, 0.3) is None  # final received: nothing to cancel
    assert layer.cancel(ClientKey("z9hG4bK-nope", "INVITE"), 0.3) is None
    with pytest.raises(ValueError, match="INVITE"):
        layer.cancel(ClientKey(key.branch, "BYE"), 0.3)


def test_invite_given_up_64_t1_after_an_unanswered_cancel() -> None:
    layer = new_layer()
    invite = make_request()
    key = layer.send_request(invite, BOB, 0.0)
    layer.receive(response_to(invite, 180), BOB, 0.1)
    cancel_key = layer.cancel(key, 1.0)
    assert cancel_key is not None
    layer.receive(response_to(build_cancel(invite), 200), BOB, 1.1)
    drain(layer)
    run_timers(layer, 200)
    events = drain(layer)
    assert TransactionTimedOut(key, "INVITE") in events
    assert TransactionTerminated(key) in events
    assert layer.get_transaction(key) is None


def test_held_cancel_dropped_on_timeout() -> None:
    layer = new_layer()
    key = layer.send_request(make_request(), BOB, 0.0)
    layer.cancel(key, 0.1)
    run_timers(layer, 100)
    assert [m.method for m, _ in sent(layer)] == ["INVITE"] * 7  # type: ignore[union-attr]
    assert layer.cancel(key, 101) is None


# ------------------------------------------------------------------ server side


def test_invite_creates_ist_sends_100_to_response_destination() -> None:
    layer = new_layer()
    invite = make_request(via_host="10.0.0.7", rport=True)
    source = Endpoint("UDP", "203.0.113.9", 61000)
    layer.receive(invite, source, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    assert event.source == source
    assert event.key == ServerKey("z9hG4bK-1", ("10.0.0.7", 5060), "INVITE")
    assert event.request.top_via.params["received"] == "203.0.113.9"
    [(trying, dest)] = sent(layer)
    assert trying.status == 100  # type: ignore[union-attr]
    assert dest == source  # rport: back through the NAT binding
    assert trying.top_via.params["rport"] == "61000"


def test_invite_retransmission_absorbed_and_last_provisional_resent() -> None:
    layer = new_layer()
    invite = make_request()
    layer.receive(invite, ALICE, 0.0)
    [event] = drain(layer)
    sent(layer)
    assert isinstance(event, RequestReceived)
    ringing = response_to(event.request, 180)
    layer.send_response(ringing, 0.1)
    assert [m.status for m, _ in sent(layer)] == [180]  # type: ignore[union-attr]
    layer.receive(make_request(), ALICE, 0.5)
    assert drain(layer) == []
    assert [m.status for m, _ in sent(layer)] == [180]  # type: ignore[union-attr]


def test_same_branch_other_sent_by_is_another_transaction() -> None:
    layer = new_layer()
    layer.receive(make_request("OPTIONS"), ALICE, 0.0)
    layer.receive(make_request("OPTIONS", via_host="192.0.2.99"), ALICE, 0.0)
    assert len([e for e in drain(layer) if isinstance(e, RequestReceived)]) == 2


def test_2xx_accepted_ack_for_2xx_and_absorbed_invite() -> None:
    layer = new_layer()
    invite = make_request()
    layer.receive(invite, ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    ok = response_to(event.request, 200)
    layer.send_response(ok, 1.0)
    sent(layer)
    assert layer.get_transaction(event.key).state is State.ACCEPTED  # type: ignore[union-attr]
    layer.receive(make_request(), ALICE, 1.2)  # retransmitted INVITE: absorbed
    assert drain(layer) == []
    assert sent(layer) == []
    layer.send_response(ok, 1.5)  # the TU retransmits its 2xx
    assert [m.status for m, _ in sent(layer)] == [200]  # type: ignore[union-attr]
    # the ACK for a 2xx has its own branch: no transaction, straight to the TU
    ack = make_request("ACK", branch="z9hG4bK-ack", to_tag="to-1")
    layer.receive(ack, ALICE, 1.6)
    assert drain(layer) == [AckReceived(ack, ALICE, None)]
    # an ACK reusing the INVITE's branch reaches the Accepted IST: passed up
    same_branch_ack = make_request("ACK", to_tag="to-1")
    layer.receive(same_branch_ack, ALICE, 1.7)
    assert drain(layer) == [AckReceived(same_branch_ack, ALICE, event.key)]
    run_timers(layer, 100)
    assert drain(layer) == [TransactionTerminated(event.key)]
    with pytest.raises(NoSuchTransaction):
        layer.send_response(ok, 101)


def test_non_2xx_g_retransmissions_and_ack_absorbed() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    sent(layer)
    layer.send_response(response_to(event.request, 486), 0.0)
    run_timers(layer, 1.6)
    assert [t.status for t, _ in sent(layer)] == [486, 486, 486]  # type: ignore[union-attr]
    layer.receive(make_request("ACK", to_tag="to-1"), ALICE, 2.0)
    assert drain(layer) == []
    run_timers(layer, 100)
    assert sent(layer) == []
    assert drain(layer) == [TransactionTerminated(event.key)]


def test_timer_h_reports_the_missing_ack() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(response_to(event.request, 603), 0.0)
    run_timers(layer, 100)
    assert drain(layer) == [
        TransactionTimedOut(event.key, "INVITE"),
        TransactionTerminated(event.key),
    ]


def test_stray_ack_goes_to_the_tu() -> None:
    layer = new_layer()
    ack = make_request("ACK", branch="z9hG4bK-nothing", to_tag="x")
    layer.receive(ack, ALICE, 0.0)
    assert drain(layer) == [AckReceived(ack, ALICE, None)]
    assert len(layer) == 0


def test_ack_before_any_final_is_discarded() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    drain(layer)
    layer.receive(make_request("ACK"), ALICE, 0.1)
    assert drain(layer) == []


def test_request_with_mismatched_cseq_method_is_dropped() -> None:
    layer = new_layer()
    layer.receive(make_request("INVITE", cseq_method="BYE"), ALICE, 0.0)
    assert drain(layer) == []
    assert sent(layer) == []


def test_nist_retransmissions_and_tu_mistakes() -> None:
    layer = new_layer()
    layer.receive(make_request("OPTIONS"), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    assert sent(layer) == []  # no 100 for non-INVITE
    layer.receive(make_request("OPTIONS"), ALICE, 0.1)  # Trying: discarded
    assert sent(layer) == []
    layer.send_response(response_to(event.request, 200), 0.2)
    layer.receive(make_request("OPTIONS"), ALICE, 0.3)
    assert [m.status for m, _ in sent(layer)] == [200, 200]  # type: ignore[union-attr]
    assert drain(layer) == []
    bogus = response_to(event.request, 200)
    bogus.headers.set("CSeq", "1 ACK")
    with pytest.raises(ValueError, match="ACK"):
        layer.send_response(bogus, 0.4)
    run_timers(layer, 100)
    assert drain(layer) == [TransactionTerminated(event.key)]


def test_tu_response_in_a_state_that_refuses_it_raises() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(response_to(event.request, 486), 0.0)
    with pytest.raises(UnexpectedInput):
        layer.send_response(response_to(event.request, 200), 0.1)


# --------------------------------------------------------------------- CANCEL (UAS)


def test_cancel_for_pending_invite_answered_200_and_reported() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [invited] = drain(layer)
    assert isinstance(invited, RequestReceived)
    layer.send_response(response_to(invited.request, 180, to_tag="uas-tag"), 0.1)
    sent(layer)
    cancel = make_request("CANCEL")
    layer.receive(cancel, ALICE, 0.5)
    [(ok, dest)] = sent(layer)
    assert isinstance(ok, Response)
    assert (ok.status, ok.cseq, dest) == (200, CSeq(1, "CANCEL"), ALICE)
    assert ok.to_tag == "uas-tag"  # §9.2: SHOULD equal the INVITE response's
    assert drain(layer) == [CancelReceived(invited.key, cancel)]
    # a retransmitted CANCEL: 200 again, no new event
    layer.receive(make_request("CANCEL"), ALICE, 0.6)
    assert [m.status for m, _ in sent(layer)] == [200]  # type: ignore[union-attr]
    assert drain(layer) == []
    # the TU answers the INVITE with 487; the ACK for it is absorbed
    layer.send_response(response_to(invited.request, 487, to_tag="uas-tag"), 0.7)
    assert [m.status for m, _ in sent(layer)] == [487]  # type: ignore[union-attr]
    layer.receive(make_request("ACK", to_tag="uas-tag"), ALICE, 0.8)
    assert drain(layer) == []


def test_cancel_matching_nothing_gets_481() -> None:
    layer = new_layer()
    layer.receive(make_request("CANCEL", branch="z9hG4bK-unknown"), ALICE, 0.0)
    [(response, _)] = sent(layer)
    assert response.status == 481  # type: ignore[union-attr]
    assert response.to_tag  # a tag is added (§8.2.6.2)
    assert drain(layer) == []


def test_cancel_after_the_final_response_gets_200_but_no_event() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [invited] = drain(layer)
    assert isinstance(invited, RequestReceived)
    layer.send_response(response_to(invited.request, 200), 0.1)
    sent(layer)
    layer.receive(make_request("CANCEL"), ALICE, 0.2)
    [(ok, _)] = sent(layer)
    assert ok.status == 200  # type: ignore[union-attr]
    assert ok.to_tag == "to-1"
    assert drain(layer) == []


def test_cancel_of_a_non_invite_gets_200_but_no_event() -> None:
    layer = new_layer()
    layer.receive(make_request("OPTIONS"), ALICE, 0.0)
    drain(layer)
    layer.receive(make_request("CANCEL", cseq_method="CANCEL"), ALICE, 0.2)
    [(ok, _)] = sent(layer)
    assert ok.status == 200  # type: ignore[union-attr]
    assert drain(layer) == []


def test_cancel_from_another_sent_by_does_not_match() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    drain(layer)
    sent(layer)
    layer.receive(make_request("CANCEL", via_host="192.0.2.66"), ALICE, 0.2)
    [(response, _)] = sent(layer)
    assert response.status == 481  # type: ignore[union-attr]


# -------------------------------------------------------------------- RFC 2543 peers


def legacy(method: str = "INVITE", **kwargs: object) -> Request:
    return make_request(method, branch=None, **kwargs)  # type: ignore[arg-type]


def test_rfc2543_invite_retransmission_matches_without_branch() -> None:
    layer = new_layer()
    layer.receive(legacy(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    assert event.key.legacy
    layer.receive(legacy(), ALICE, 0.5)
    assert drain(layer) == []
    assert [m.status for m, _ in sent(layer)] == [100, 100]  # type: ignore[union-attr]
    # a different CSeq or Call-ID is a different transaction
    layer.receive(legacy(cseq=2), ALICE, 0.6)
    layer.receive(legacy(call_id="other"), ALICE, 0.6)
    assert len(drain(layer)) == 2


def test_rfc2543_responses_ack_and_cancel() -> None:
    layer = new_layer()
    layer.receive(legacy(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    sent(layer)
    # CANCEL matched by Request-URI, tags, Call-ID, CSeq number and top Via
    layer.receive(legacy("CANCEL"), ALICE, 0.1)
    assert [m.status for m, _ in sent(layer)] == [200]  # type: ignore[union-attr]
    assert drain(layer) == [CancelReceived(event.key, legacy("CANCEL"))]
    # the TU's response finds its transaction without a branch
    layer.send_response(response_to(event.request, 487, to_tag="t487"), 0.2)
    assert [m.status for m, _ in sent(layer)] == [487]  # type: ignore[union-attr]
    # the ACK matches when its To tag is the final response's
    layer.receive(legacy("ACK", to_tag="other-tag"), ALICE, 0.3)
    assert [type(e) for e in drain(layer)] == [AckReceived]  # not ours: to the TU
    layer.receive(legacy("ACK", to_tag="t487"), ALICE, 0.3)
    assert drain(layer) == []  # absorbed: Confirmed
    assert layer.get_transaction(event.key).state is State.CONFIRMED  # type: ignore[union-attr]
    run_timers(layer, 100)
    assert sent(layer) == []


def test_rfc2543_non_invite_with_to_tag() -> None:
    layer = new_layer()
    layer.receive(legacy("BYE", to_tag="abc", cseq=5), ALICE, 0.0)
    layer.receive(legacy("BYE", to_tag="abd", cseq=5), ALICE, 0.0)  # other To tag
    events = drain(layer)
    assert len(events) == 2
    first = events[0]
    assert isinstance(first, RequestReceived)
    layer.send_response(response_to(first.request, 200), 0.1)
    layer.receive(legacy("BYE", to_tag="abc", cseq=5), ALICE, 0.2)
    assert [m.status for m, _ in sent(layer)] == [200, 200]  # type: ignore[union-attr]


# ---------------------------------------------------------------- reliable transports


def test_tcp_server_replies_on_the_connection_and_never_retransmits() -> None:
    layer = new_layer()
    conn = Endpoint("TCP", "192.0.2.1", 40001, conn_id=42)
    layer.receive(make_request(transport="TCP"), conn, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(response_to(event.request, 486), 0.0)
    run_timers(layer, 31.0)
    datagrams = sent(layer)
    assert [(m.status, d) for m, d in datagrams] == [(100, conn), (486, conn)]  # type: ignore[union-attr]
    layer.receive(make_request("ACK", transport="TCP", to_tag="to-1"), conn, 1.0)
    assert layer.get_timer() == 1.0  # Timer I = 0
    run_timers(layer, 1.0)
    assert drain(layer) == [TransactionTerminated(event.key)]


def test_tcp_client_no_retransmission_timer_k_zero() -> None:
    layer = new_layer()
    tcp = Endpoint("TCP", "192.0.2.2", 5060)
    request = make_request("OPTIONS", transport="TCP")
    key = layer.send_request(request, tcp, 0.0)
    assert layer.get_timer() == 32.0
    layer.receive(response_to(request, 200), tcp, 0.3)
    assert layer.get_timer() == 0.3
    run_timers(layer, 0.3)
    assert len(sent(layer)) == 1
    assert drain(layer)[-1] == TransactionTerminated(key)


# ----------------------------------------------------------------- transport errors


def test_transport_error_by_key_terminates_client() -> None:
    layer = new_layer()
    key = layer.send_request(make_request(), BOB, 0.0)
    layer.transport_error(key, 0.1)
    assert drain(layer) == [TransportErrorOccurred(key), TransactionTerminated(key)]
    assert layer.get_timer() is None
    layer.transport_error(key, 0.2)  # gone: ignored
    assert drain(layer) == []


def test_transport_error_by_endpoint_hits_every_transaction_towards_it() -> None:
    layer = new_layer()
    k1 = layer.send_request(make_request(branch="z9hG4bK-1"), BOB, 0.0)
    k2 = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-2"), BOB, 0.0)
    k3 = layer.send_request(make_request(branch="z9hG4bK-3"), ALICE, 0.0)
    layer.transport_error(BOB, 0.1)
    errors = [e.key for e in drain(layer) if isinstance(e, TransportErrorOccurred)]
    assert errors == [k1, k2]
    assert layer.get_transaction(k3) is not None


def test_transport_error_on_ist_informs_and_keeps_it() -> None:
    layer = new_layer()
    layer.receive(make_request(), ALICE, 0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    layer.transport_error(ALICE, 0.1)
    assert drain(layer) == [TransportErrorOccurred(event.key)]
    assert layer.get_transaction(event.key).state is State.PROCEEDING  # type: ignore[union-attr]


# ----------------------------------------------------------------------- stateless


def test_send_stateless_and_delayed_trying_config() -> None:
    layer = new_layer(TimerConfig(trying_delay=0.2))
    request = make_request()
    layer.send_stateless(make_response(request, 404, to_tag="x"), ALICE)
    assert [m.status for m, _ in sent(layer)] == [404]  # type: ignore[union-attr]
    layer.receive(request, ALICE, 0.0)
    assert sent(layer) == []
    assert layer.get_timer() == pytest.approx(0.2)
    layer.handle_timer(0.2)
    assert [m.status for m, _ in sent(layer)] == [100]  # type: ignore[union-attr]
    assert layer.config.trying_delay == 0.2


def test_pending_counts_only_transactions_awaiting_a_final_response() -> None:
    """A graceful stop waits for open outcomes, not for retransmission absorbers."""
    layer = new_layer()
    register = make_request("REGISTER", branch="z9hG4bK-reg")
    layer.receive(register, BOB, 0.0)
    options = make_request("OPTIONS", branch="z9hG4bK-out")
    layer.send_request(options, BOB, 0.0)
    assert (len(layer), layer.pending()) == (2, 2)
    # The server transaction answered: Completed until Timer J, no longer pending.
    layer.send_response(make_response(register, 200, to_tag="t"), 0.1)
    assert (len(layer), layer.pending()) == (2, 1)
    # The client transaction got its final response: Completed until Timer K.
    layer.receive(response_to(options, 200), BOB, 0.2)
    assert (len(layer), layer.pending()) == (2, 0)
    run_timers(layer, 64 * T1 + 1)
    assert (len(layer), layer.pending()) == (0, 0)
