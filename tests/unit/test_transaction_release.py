"""Completed transactions keep bytes, not messages (``Transaction.release``).

Completed, Confirmed and Accepted only absorb retransmissions, for up to 64*T1:
the layer drops the parsed request and responses there and keeps what those
states still send. These tests check that what a peer sees is unchanged:
same bytes for a retransmitted request, same ACK for a retransmitted failure,
the same To tag on the 200 to a late CANCEL; and that cancelled timers leave
the deadline heap.
"""

from __future__ import annotations

import re

import pytest

from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.events import AckReceived, Event, RequestReceived, ResponseReceived
from switch.sip.headers import CSeq, name_addr_tag, parse_name_addr
from switch.sip.message import Headers, Request, Response, make_response
from switch.sip.parser import parse_message
from switch.sip.transaction import (
    Input,
    InviteServerTransaction,
    ServerKey,
    State,
    TimerConfig,
    TransactionError,
    Transmit,
    build_cancel,
)
from switch.sip.transaction_layer import TransactionLayer
from switch.sip.via import response_destination
from tests.unit.test_transaction import drain, make_request, new_layer, response_to
from tests.unit.test_transaction_layer import ALICE, BOB


def wire(layer: TransactionLayer) -> list[bytes]:
    return [data for data, _ in layer.datagrams_to_send()]


def received(request: Request) -> Request:
    """``request`` as the layer gets it from the parser (its own copy)."""
    message = parse_message(request.to_bytes())
    assert isinstance(message, Request)
    return message


def server_key(event: Event) -> ServerKey:
    assert isinstance(event, RequestReceived)
    assert isinstance(event.key, ServerKey)
    return event.key


# --------------------------------------------------------------- server side


def test_completed_invite_server_answers_a_retransmission_with_the_same_bytes() -> None:
    layer = new_layer()
    invite = make_request()
    layer.receive(received(invite), ALICE, 0.0)
    key = server_key(drain(layer)[0])
    layer.datagrams_to_send()  # 100 Trying
    layer.send_response(response_to(invite, 486), 0.1)
    [busy] = wire(layer)
    machine = layer.get_transaction(key)
    assert machine is not None
    assert machine.state is State.COMPLETED
    assert machine.released
    assert machine.last_response is None
    with pytest.raises(TransactionError, match="released"):
        _ = machine.request
    layer.receive(received(invite), ALICE, 0.2)  # the INVITE again
    assert wire(layer) == [busy]
    layer.handle_timer(0.6)  # Timer G
    assert wire(layer) == [busy]
    ack = make_request("ACK", to_tag="to-1")
    layer.receive(received(ack), ALICE, 0.7)
    confirmed = layer.get_transaction(key)
    assert confirmed is not None
    assert confirmed.state is State.CONFIRMED
    assert wire(layer) == []
    assert drain(layer) == []  # absorbed: the ACK for a non-2xx is the transaction's


def test_completed_non_invite_server_repeats_its_final_response() -> None:
    layer = new_layer()
    bye = make_request("BYE", to_tag="to-1")
    layer.receive(received(bye), ALICE, 0.0)
    key = server_key(drain(layer)[0])
    layer.send_response(response_to(bye, 200), 0.0)
    [ok] = wire(layer)
    machine = layer.get_transaction(key)
    assert machine is not None
    assert (machine.state, machine.released, machine.method) == (State.COMPLETED, True, "BYE")
    for at in (0.5, 1.5, 4.0):
        layer.receive(received(bye), ALICE, at)
        assert wire(layer) == [ok]
    layer.handle_timer(32.0)  # Timer J
    assert layer.get_transaction(key) is None


def test_accepted_invite_server_absorbs_invites_and_relays_the_tu_2xx() -> None:
    layer = new_layer()
    invite = make_request()
    layer.receive(received(invite), ALICE, 0.0)
    key = server_key(drain(layer)[0])
    layer.datagrams_to_send()
    ok = response_to(invite, 200)
    layer.send_response(ok, 0.1)
    [first] = wire(layer)
    machine = layer.get_transaction(key)
    assert machine is not None
    assert (machine.state, machine.released) == (State.ACCEPTED, True)
    layer.receive(received(invite), ALICE, 0.2)
    assert wire(layer) == []  # RFC 6026 §7.1: absorbed
    layer.send_response(ok, 0.6)  # the TU's retransmission
    assert wire(layer) == [first]
    assert machine.last_response is None  # released again
    ack = received(make_request("ACK", to_tag="to-1"))
    layer.receive(ack, ALICE, 0.7)
    assert drain(layer) == [AckReceived(ack, ALICE, key)]


def test_cancel_after_the_final_response_gets_that_responses_to_tag() -> None:
    layer = new_layer()
    invite = make_request()
    layer.receive(received(invite), ALICE, 0.0)
    drain(layer)
    layer.datagrams_to_send()
    layer.send_response(response_to(invite, 486, to_tag="busy-tag"), 0.1)
    layer.datagrams_to_send()
    layer.receive(received(build_cancel(invite)), ALICE, 0.2)
    [answer] = [parse_message(data) for data in wire(layer)]
    assert isinstance(answer, Response)
    assert (answer.status, answer.to_tag) == (200, "busy-tag")
    assert drain(layer) == []  # too late to be a CancelReceived


# --------------------------------------------------------------- client side


def test_completed_invite_client_acks_a_retransmitted_failure_with_the_same_bytes() -> None:
    layer = new_layer()
    invite = make_request(branch=None)
    key = layer.send_request(invite, BOB, 0.0)
    layer.datagrams_to_send()
    busy = response_to(invite, 486)
    layer.receive(received_response(busy), BOB, 0.1)
    [ack] = wire(layer)
    machine = layer.get_transaction(key)
    assert machine is not None
    assert (machine.state, machine.released) == (State.COMPLETED, True)
    layer.receive(received_response(busy), BOB, 0.3)
    assert wire(layer) == [ack]
    assert [type(e) for e in drain(layer)] == [ResponseReceived]  # the first one only


def test_accepted_invite_client_still_passes_each_2xx_up() -> None:
    layer = new_layer()
    invite = make_request(branch=None)
    key = layer.send_request(invite, BOB, 0.0)
    ok = response_to(invite, 200)
    for at in (0.1, 0.6):
        layer.receive(received_response(ok), BOB, at)
    events = drain(layer)
    assert [type(e) for e in events] == [ResponseReceived, ResponseReceived]
    machine = layer.get_transaction(key)
    assert machine is not None
    assert (machine.state, machine.released) == (State.ACCEPTED, True)


def received_response(response: Response) -> Response:
    message = parse_message(response.to_bytes())
    assert isinstance(message, Response)
    return message


def test_a_released_machine_resends_the_bytes_it_kept_and_reads_its_to_tag_back() -> None:
    machine = InviteServerTransaction(make_request(), reliable=False, config=TimerConfig())
    machine.fire(Input.REQUEST, 0.0, machine.request)
    busy = response_to(machine.request, 486, to_tag="busy-tag")
    [first] = [o for o in machine.fire(Input.FAILURE_FROM_TU, 0.1, busy) if isinstance(o, Transmit)]
    assert first.message is busy
    machine.release()
    assert machine.response_to_tag == "busy-tag"  # from the bytes: no parsed response left
    [again] = [o for o in machine.fire(Input.REQUEST, 0.2) if isinstance(o, Transmit)]
    assert (again.message, again.data) == (None, first.data)


# ------------------------------------------------------------ deadline heap


def test_cancelled_timers_leave_the_heap_and_live_ones_still_fire() -> None:
    layer = new_layer()
    keys = []
    for i in range(3000):
        options = make_request("OPTIONS", branch=None, call_id=f"c{i}")
        keys.append(layer.send_request(options, BOB, 0.0))
        layer.receive(received_response(response_to(options, 200)), BOB, 0.0)
    # Each OPTIONS armed E and F, then K on its 200: E and F are cancelled.
    assert len(layer._timers) < 2 * 3000 + 1024
    layer.datagrams_to_send()
    drain(layer)
    assert layer.get_timer() == pytest.approx(5.0)  # Timer K (T4): the earliest live one
    layer.handle_timer(5.0)
    assert len(layer) == 0
    assert wire(layer) == []  # no E fired: nothing retransmitted
    assert layer.get_timer() is None


# --------------------------------------------------- views read without parsing


@pytest.mark.parametrize(
    "value",
    [
        '"Alice" <sip:+33140000401@127.0.0.1:5090;user=phone>;tag=1928301774',
        "sip:bob@example.com",
        "sip:bob@example.com;tag=x1",
        "<sip:service@127.0.0.1:5070>",
        'Bob <sip:b@x>;tag=abc;foo="a;b"',
        " <sip:b@x> ; Tag = X ;x",
        "<sip:b@x>;tag=1;tag=2",
        "Bob Smith <sip:b@x;lr>;expires=30",
    ],
)
def test_name_addr_tag_reads_what_parse_name_addr_reads(value: str) -> None:
    assert name_addr_tag(value) == parse_name_addr(value).tag


@pytest.mark.parametrize("value", ["", "<sip:b@x", '"unterminated <sip:b@x>', "sip:a,b@x"])
def test_name_addr_tag_refuses_what_parse_name_addr_refuses(value: str) -> None:
    with pytest.raises(ParseError) as refused:
        parse_name_addr(value)
    with pytest.raises(ParseError, match=re.escape(str(refused.value))):
        name_addr_tag(value)


def test_make_response_tags_to_as_text_and_keeps_the_requests_cseq() -> None:
    request = received(make_request())
    assert request.headers.kept("cseq") == CSeq(1, "INVITE")  # the parser's
    response = make_response(request, 180, to_tag="t1", extra=[("contact", "<sip:x@y>")])
    assert response.headers.get("To") == "Bob <sip:bob@example.com>;tag=t1"
    assert response.headers.kept("cseq") is request.cseq
    assert list(response.headers)[-1] == ("Contact", "<sip:x@y>")
    trying = make_response(request, 100, to_tag="t1")
    assert trying.to_tag is None  # never on 100 Trying
    tagged = received(make_request("BYE", to_tag="theirs"))
    assert make_response(tagged, 200, to_tag="t1").to_tag == "theirs"
    # With a CSeq in ``extra`` nothing is kept: the fields decide, when read.
    odd = make_response(request, 200, extra=[("CSeq", "9 INVITE")])
    assert odd.headers.kept("cseq") is None


def test_make_response_copies_timestamp_into_100_only() -> None:
    request = received(make_request())
    request.headers.add("Timestamp", "54")
    assert make_response(request, 100).headers.get("Timestamp") == "54"
    assert make_response(request, 180, to_tag="t").headers.get("Timestamp") is None


def test_response_destination_is_the_source_itself_when_it_is_that_address() -> None:
    request = received(make_request(rport=True))
    top = request.top_via
    top.params["rport"] = "5060"
    top.params["received"] = "192.0.2.1"
    assert response_destination(top, ALICE) is ALICE
    elsewhere = Endpoint("UDP", "198.51.100.7", 5060)
    assert response_destination(top, elsewhere) == Endpoint("UDP", "192.0.2.1", 5060)


def test_headers_get_accepts_any_spelling() -> None:
    headers = Headers([("Call-ID", "abc"), ("CSeq", "1 INVITE")])
    assert headers.get("Call-ID") == headers.get("call-id") == headers.get("i") == "abc"
    assert headers.get("cseq") == "1 INVITE"
    assert headers.get("X-Missing") is None
