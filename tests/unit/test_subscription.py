"""The notifier (RFC 6665) as a pure machine: SUBSCRIBE and time in, responses and
NOTIFYs out; the body is a dialog-info document whose version the test reads."""

from __future__ import annotations

import itertools

import pytest

from switch.sip.dialog_info import document, parse
from switch.sip.endpoint import Endpoint
from switch.sip.message import Request, Response, make_response
from switch.sip.parser import parse_message
from switch.sip.subscription import (
    TRANSITIONS,
    EventHeader,
    Notifier,
    NotifierConfig,
    Respond,
    SendNotify,
    SubInput,
    Subscription,
    SubscriptionEnded,
    SubscriptionError,
    SubState,
)

PHONE = Endpoint("UDP", "192.0.2.5", 5062)
ENTITY = "sip:402@pbx.test"
CONTACT = "<sip:192.0.2.10:5060>"
VIA = ("UDP", "192.0.2.10:5060")


def subscribe(
    *,
    expires: int | None = 600,
    event: str = "dialog",
    to_tag: str = "",
    cseq: int = 1,
    call_id: str = "sub-1@phone",
) -> Request:
    lines = [
        "SUBSCRIBE sip:402@pbx.test SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bK-s{cseq}",
        "Max-Forwards: 70",
        "From: <sip:403@pbx.test>;tag=watcher",
        "To: <sip:402@pbx.test>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        "Contact: <sip:403@192.0.2.5:5062>",
        f"Event: {event}",
        "Accept: application/dialog-info+xml",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    message = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def notifier(**config: object) -> Notifier:
    tags = itertools.count(1)
    return Notifier(
        lambda entity, version: document(entity, version, []),
        NotifierConfig(**config),  # type: ignore[arg-type]
        new_tag=lambda: f"n{next(tags)}",
    )


def sub(n: Notifier, request: Request, now: float = 0.0) -> None:
    n.subscribe(
        request,
        now,
        event=EventHeader.of(request),
        resource=ENTITY,
        peer=PHONE,
        contact=CONTACT,
        via=VIA,
    )


def split(n: Notifier) -> tuple[list[Response], list[SendNotify], list[SubscriptionEnded]]:
    out = n.outputs()
    return (
        [o.response for o in out if isinstance(o, Respond)],
        [o for o in out if isinstance(o, SendNotify)],
        [o for o in out if isinstance(o, SubscriptionEnded)],
    )


def answer(n: Notifier, notify: SendNotify, status: int = 200, now: float = 0.0) -> bool:
    return n.response_received(make_response(notify.request, status), now)


def state_of(notify: SendNotify) -> str:
    return notify.request.headers.get("Subscription-State") or ""


def version_of(notify: SendNotify) -> int:
    return parse(notify.request.body).version


def test_subscribe_gets_200_with_expires_then_a_full_notify_version_0() -> None:
    n = notifier()
    sub(n, subscribe(expires=600))
    (ok,), (notify,), ended = split(n)
    assert ok.status == 200
    assert ok.headers.get("Expires") == "600"
    assert ok.headers.get("Contact") == CONTACT
    assert ok.to_tag
    assert ended == []
    request = notify.request
    assert notify.dest == PHONE
    assert request.method == "NOTIFY"
    assert str(request.uri) == "sip:403@192.0.2.5:5062"  # the subscriber's Contact
    assert request.from_tag == ok.to_tag  # same dialog
    assert request.to_tag == "watcher"
    assert request.headers.get("Event") == "dialog"
    assert state_of(notify) == "active;expires=600"
    assert request.headers.get("Content-Type") == "application/dialog-info+xml"
    info = parse(request.body)
    assert (info.version, info.state, info.entity) == (0, "full", ENTITY)
    assert len(n) == 1


def test_expires_above_the_maximum_is_lowered_and_absent_means_the_default() -> None:
    n = notifier(max_expires=1800, default_expires=900)
    sub(n, subscribe(expires=86400))
    (ok,), _, _ = split(n)
    assert ok.headers.get("Expires") == "1800"
    sub(n, subscribe(expires=None, call_id="sub-2@phone"))
    (ok,), (notify,), _ = split(n)
    assert ok.headers.get("Expires") == "900"
    assert state_of(notify) == "active;expires=900"


def test_expires_below_the_minimum_is_423_with_min_expires() -> None:
    n = notifier(min_expires=120)
    sub(n, subscribe(expires=30))
    (refused,), notifies, _ = split(n)
    assert refused.status == 423
    assert refused.headers.get("Min-Expires") == "120"
    assert notifies == []
    assert len(n) == 0


@pytest.mark.parametrize("event", ["presence", "message-summary", ""])
def test_another_package_is_489_with_allow_events(event: str) -> None:
    n = notifier()
    request = subscribe(event=event or "x")
    if not event:
        request.headers.remove("Event")
    sub(n, request)
    (refused,), notifies, _ = split(n)
    assert refused.status == 489
    assert refused.headers.get("Allow-Events") == "dialog"
    assert notifies == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dialog", EventHeader("dialog")),
        ("Dialog ;id=7", EventHeader("dialog", "7")),
        ("dialog;id=a1;x=y", EventHeader("dialog", "a1")),
        ('dialog;id="unterminated', EventHeader("dialog")),  # unreadable: no id
    ],
)
def test_the_event_header_is_read_into_package_and_id(value: str, expected: EventHeader) -> None:
    request = subscribe()
    request.headers.remove("Event")
    request.headers.add("Event", value)
    assert EventHeader.of(request) == expected


def test_a_request_without_event_has_no_event_header() -> None:
    request = subscribe()
    request.headers.remove("Event")
    assert EventHeader.of(request) is None
    assert not notifier().accepts(None)


def test_event_id_is_echoed_in_every_notify() -> None:
    n = notifier()
    sub(n, subscribe(event="dialog;id=7"))
    _, (notify,), _ = split(n)
    assert notify.request.headers.get("Event") == "dialog;id=7"


def test_changes_notify_with_versions_incremented_one_in_flight_coalesced() -> None:
    n = notifier()
    sub(n, subscribe())
    _, (first,), _ = split(n)
    assert answer(n, first)
    assert n.changed(ENTITY, 1.0) == 1
    _, (second,), _ = split(n)
    assert version_of(second) == 1
    # Two more changes while the second NOTIFY is unanswered: none sent yet...
    assert n.changed(ENTITY, 1.1) == 0
    assert n.changed(ENTITY, 1.2) == 0
    assert split(n)[1] == []
    # ...then one NOTIFY with the latest state when it is answered.
    assert answer(n, second, now=1.3)
    _, (third,), _ = split(n)
    assert version_of(third) == 2
    assert third.request.cseq.seq == second.request.cseq.seq + 1
    assert answer(n, third)
    assert split(n) == ([], [], [])
    assert n.changed("sip:403@pbx.test", 2.0) == 0  # nobody watches 403


def test_refresh_in_dialog_resets_the_expiry_and_notifies_full_state() -> None:
    n = notifier()
    sub(n, subscribe(expires=600))
    (ok,), (first,), _ = split(n)
    answer(n, first)
    assert n.get_timer() == 600.0
    sub(n, subscribe(expires=600, to_tag=ok.to_tag or "", cseq=2), now=500.0)
    (refreshed,), (notify,), _ = split(n)
    assert refreshed.status == 200
    assert refreshed.headers.get("Expires") == "600"
    assert state_of(notify) == "active;expires=600"
    assert version_of(notify) == 1
    assert n.get_timer() == 1100.0
    n.handle_timer(1000.0)  # the old expiry: nothing happens
    assert split(n) == ([], [], [])
    assert len(n) == 1


def test_the_notify_tells_the_granted_expiry_whatever_the_clock_reads() -> None:
    """(now + 3600) - now is 3600.0000000000005 at some clock values: the NOTIFY that
    follows a refresh said ``expires=3601``, one second more than the 200 granted."""
    now = 8098.51016022
    assert (now + 3600) - now > 3600  # such a clock value
    n = notifier()
    sub(n, subscribe(expires=600), now=now - 10)
    (ok,), (first,), _ = split(n)
    answer(n, first)
    sub(n, subscribe(expires=3600, to_tag=ok.to_tag or "", cseq=2), now=now)
    (refreshed,), (notify,), _ = split(n)
    assert refreshed.headers.get("Expires") == "3600"
    assert state_of(notify) == "active;expires=3600"


def test_unsubscribe_expires_0_gets_200_then_final_notify_terminated() -> None:
    n = notifier()
    sub(n, subscribe())
    (ok,), (first,), _ = split(n)
    answer(n, first)
    sub(n, subscribe(expires=0, to_tag=ok.to_tag or "", cseq=2), now=10.0)
    (done,), (final,), (ended,) = split(n)
    assert done.status == 200
    assert done.headers.get("Expires") == "0"
    assert final.final
    assert state_of(final) == "terminated;reason=timeout"
    assert version_of(final) == 1
    assert ended.reason == "unsubscribed"
    assert len(n) == 0
    assert n.get_timer() is None
    # The subscription is gone: a later refresh is 481.
    sub(n, subscribe(to_tag=ok.to_tag or "", cseq=3), now=11.0)
    (gone,), notifies, _ = split(n)
    assert gone.status == 481
    assert notifies == []


def test_expiry_by_timer_sends_final_notify_and_forgets() -> None:
    n = notifier()
    sub(n, subscribe(expires=120))
    _, (first,), _ = split(n)
    answer(n, first)
    assert n.get_timer() == 120.0
    n.handle_timer(119.9)
    assert split(n) == ([], [], [])
    n.handle_timer(120.0)
    _, (final,), (ended,) = split(n)
    assert state_of(final) == "terminated;reason=timeout"
    assert ended.reason == "timeout"
    assert n.changed(ENTITY, 121.0) == 0


@pytest.mark.parametrize("status", [481, 408])
def test_notify_answered_481_or_408_ends_the_subscription(status: int) -> None:
    n = notifier()
    sub(n, subscribe())
    _, (first,), _ = split(n)
    assert answer(n, first, status)
    _, notifies, (ended,) = split(n)
    assert notifies == []  # no NOTIFY to a subscriber that has none
    assert ended.reason in ("rejected", "noresponse")
    assert len(n) == 0


def test_notify_timeout_ends_the_subscription_but_a_500_does_not() -> None:
    n = notifier()
    sub(n, subscribe())
    _, (first,), _ = split(n)
    answer(n, first, 500)
    assert len(n) == 1
    n.changed(ENTITY, 1.0)
    _, (second,), _ = split(n)
    n.notify_failed(second.id, second.request.cseq.seq, 33.0)
    _, _, (ended,) = split(n)
    assert ended.reason == "noresponse"
    assert len(n) == 0


def test_unknown_in_dialog_subscribe_is_481_and_stray_responses_are_not_ours() -> None:
    n = notifier()
    sub(n, subscribe(to_tag="nothing"))
    (gone,), _, _ = split(n)
    assert gone.status == 481
    stray = make_response(subscribe(), 200)
    assert not n.response_received(stray, 0.0)


def test_fetch_with_expires_0_gets_one_terminated_notify_and_no_subscription() -> None:
    n = notifier()
    sub(n, subscribe(expires=0))
    (ok,), (notify,), _ = split(n)
    assert ok.status == 200
    assert state_of(notify) == "terminated;reason=timeout"
    assert len(n) == 0


def test_subscription_cap_is_503() -> None:
    n = notifier(max_subscriptions=1)
    sub(n, subscribe())
    split(n)
    sub(n, subscribe(call_id="sub-2@phone"))
    (refused,), _, _ = split(n)
    assert refused.status == 503


def test_the_table_has_no_way_out_of_terminated() -> None:
    assert all(state is SubState.ACTIVE for state, _ in TRANSITIONS)
    n = notifier()
    sub(n, subscribe())
    (subscription,) = n.subscriptions(ENTITY)
    assert isinstance(subscription, Subscription)
    subscription.fire(SubInput.EXPIRE)
    with pytest.raises(SubscriptionError):
        subscription.fire(SubInput.REFRESH)
