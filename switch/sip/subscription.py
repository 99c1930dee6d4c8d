"""SIP-specific event notification, notifier side (RFC 6665), sans-I/O.

A ``Notifier`` keeps the subscriptions of one event package set (the switch:
``dialog``, RFC 4235) to named *resources* (a monitored line's entity,
``sip:402@pbx.test``). The shell decides who may subscribe to what (digest,
company, does the line exist); everything else is here. The shell reads each
SUBSCRIBE's ``Event`` header once (``EventHeader.of``) and hands it to every
call that needs it::

    notifier = Notifier(render, NotifierConfig(...), new_tag=...)
    event = EventHeader.of(request)          # None: no (or an empty) Event header
    notifier.accepts(event) -> bool          # a package we know
    notifier.find(request, event)            # the subscription an in-dialog one names
    notifier.subscribe(request, now, event=event, resource=..., peer=source,
                       contact=..., via=...)
    notifier.changed(resource, now)          # the resource's state changed
    notifier.response_received(response, now) -> bool   # a response to our NOTIFY
    notifier.notify_failed(sub_id, cseq, now)           # timeout / transport error
    notifier.handle_timer(now)               # when notifier.get_timer() is due
    for out in notifier.outputs(): ...       # Respond / SendNotify / SubscriptionEnded

``render(resource, version)`` gives the body of each NOTIFY: the full state of
the resource, with the subscription's version (RFC 4235 §4.1: 0 first, then
exactly one more per NOTIFY).

Subscription states (``TRANSITIONS`` is the whole table)::

    (SUBSCRIBE accepted: 200, NOTIFY full state) --> ACTIVE
    ACTIVE --refresh (SUBSCRIBE, Expires > 0): 200, NOTIFY--> ACTIVE
    ACTIVE --change: NOTIFY (one in flight; later changes coalesce)--> ACTIVE
    ACTIVE --NOTIFY 2xx / other failure--> ACTIVE
    ACTIVE --unsubscribe (Expires: 0): 200, NOTIFY terminated--> TERMINATED
    ACTIVE --expiry: NOTIFY terminated;reason=timeout--> TERMINATED
    ACTIVE --NOTIFY 481 / 408 / timeout / transport error--> TERMINATED (no NOTIFY)

Rules enforced, quoted where they are:

- RFC 6665 §4.2.1.1 / RFC 3261 §21.4.17: an Expires below the minimum gets
  ``423 Interval Too Brief`` with ``Min-Expires``; above the maximum it is
  lowered ("the notifier MAY shorten it"; "The 200-class response [...] MUST
  contain an Expires header field"). Without Expires the package default
  applies (RFC 4235 §3.2: 3600 seconds).
- RFC 6665 §7.2.2 (489): "a notifier [...] MUST respond with 489 (Bad Event)
  if the event package is not understood", with ``Allow-Events``.
- RFC 6665 §4.2.2: "Upon successfully accepting or refreshing a subscription,
  notifiers MUST send a NOTIFY request immediately to communicate the current
  resource state to the subscriber"; every NOTIFY carries Event (with the
  SUBSCRIBE's ``id``) and Subscription-State (``active;expires=N`` or
  ``terminated;reason=...``).
- RFC 6665 §4.2.2: "If the NOTIFY request fails due to expiration of SIP
  Timer F (transaction timeout), the notifier SHOULD remove the
  subscription"; a 481 says the subscriber has no such subscription (RFC
  5057 §5.1, with the other statuses that end a dialog usage).
- RFC 6665 §8.3.1: 202 is not sent any more; the answer is 200.
- An unknown in-dialog SUBSCRIBE gets 481 (RFC 3261 §12.2.2).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from switch.sip.dialog import Dialog, DialogError, DialogState
from switch.sip.endpoint import Endpoint
from switch.sip.errors import SipError
from switch.sip.headers import parse_params
from switch.sip.message import Request, Response, make_response

DEFAULT_EXPIRES = 3600  # RFC 4235 §3.2 (dialog package)
# NOTIFY final statuses that end the subscription (RFC 6665 §4.2.2, RFC 5057 §5.1:
# they terminate the usage); others (500, 503...) leave it in place.
ENDING_STATUSES = frozenset({404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604})


# ------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    events: tuple[str, ...] = ("dialog",)  # packages accepted (others: 489)
    content_type: str = "application/dialog-info+xml"
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = DEFAULT_EXPIRES
    max_subscriptions: int = 10_000  # beyond: 503 with Retry-After


@dataclass(frozen=True, slots=True)
class EventHeader:
    """A request's ``Event`` header (RFC 6665 §8.2.1), read once per request::

        Event       = ( "Event" / "o" ) HCOLON event-type *( SEMI event-param )
        event-param = generic-param / ( "id" EQUAL token )

    ``package`` is the event-type, lower-cased; ``id`` the ``id`` parameter, if any
    (unreadable parameters count as none: the package still decides 489).
    """

    package: str
    id: str | None = None

    @classmethod
    def of(cls, request: Request) -> EventHeader | None:
        """The request's Event header; None when it is absent or empty."""
        value = request.headers.get("Event")
        if not value:
            return None
        head, _, rest = value.partition(";")
        try:
            params = parse_params(rest) if rest else {}
        except SipError:
            params = {}
        return cls(head.strip().lower(), params.get("id"))


@dataclass(frozen=True, slots=True)
class SubscriptionId:
    """A subscription: its dialog (our tag is the local one) and the Event ``id``."""

    call_id: str
    local_tag: str
    remote_tag: str
    event_id: str | None = None


# ----------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer a SUBSCRIBE (its server transaction)."""

    response: Response


@dataclass(frozen=True, slots=True)
class SendNotify:
    """Send this NOTIFY to ``dest`` (the subscriber, over its connection if any)."""

    id: SubscriptionId
    request: Request
    dest: Endpoint
    final: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    id: SubscriptionId
    resource: str
    reason: str  # timeout | unsubscribed | rejected (481...) | noresponse | shutdown


Output = Respond | SendNotify | SubscriptionEnded


# ------------------------------------------------------------------ the table


class SubState(enum.Enum):
    ACTIVE = "active"
    TERMINATED = "terminated"


class SubInput(enum.Enum):
    REFRESH = "refresh"
    CHANGE = "change"
    NOTIFY_OK = "notify 2xx / other failure"
    UNSUBSCRIBE = "unsubscribe"
    EXPIRE = "expire"
    NOTIFY_FATAL = "notify 481/408/timeout"


TRANSITIONS: dict[tuple[SubState, SubInput], SubState] = {
    (SubState.ACTIVE, SubInput.REFRESH): SubState.ACTIVE,
    (SubState.ACTIVE, SubInput.CHANGE): SubState.ACTIVE,
    (SubState.ACTIVE, SubInput.NOTIFY_OK): SubState.ACTIVE,
    (SubState.ACTIVE, SubInput.UNSUBSCRIBE): SubState.TERMINATED,
    (SubState.ACTIVE, SubInput.EXPIRE): SubState.TERMINATED,
    (SubState.ACTIVE, SubInput.NOTIFY_FATAL): SubState.TERMINATED,
}


class SubscriptionError(SipError):
    """A transition the table does not have (a notifier bug, never a peer's)."""


@dataclass(slots=True, eq=False)
class Subscription:
    id: SubscriptionId
    resource: str
    dialog: Dialog
    event: str  # the Event value to echo (package and id)
    peer: Endpoint
    via: tuple[str, str]
    expires_at: float
    state: SubState = SubState.ACTIVE
    version: int = 0  # the next document's version
    in_flight: int | None = None  # CSeq of the NOTIFY awaiting its final response
    dirty: bool = False  # a change came while a NOTIFY was in flight
    notifies: int = 0

    def fire(self, input_: SubInput) -> SubState:
        nxt = TRANSITIONS.get((self.state, input_))
        if nxt is None:
            raise SubscriptionError(f"subscription {self.state.value} cannot take {input_.value}")
        self.state = nxt
        return nxt


# --------------------------------------------------------------------- notifier


class Notifier:
    """The subscriptions of one notifier; see the module docstring."""

    def __init__(
        self,
        render: Callable[[str, int], bytes],
        config: NotifierConfig | None = None,
        *,
        new_tag: Callable[[], str],
    ) -> None:
        self.render = render
        self.config = config or NotifierConfig()
        self.new_tag = new_tag
        self._subs: dict[SubscriptionId, Subscription] = {}
        self._by_tag: dict[str, Subscription] = {}  # our (local) tag: unique per subscription
        self._by_resource: dict[str, dict[SubscriptionId, Subscription]] = {}
        self._out: list[Output] = []
        # get_timer() is asked after every change of every call (the shell re-arms):
        # the earliest expiry is recomputed only once a subscription came, went or
        # was refreshed.
        self._next_expiry: float | None = None
        self._expiries_changed = False

    # -- outputs ------------------------------------------------------------------------
    def outputs(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The next expiry (one deadline)."""
        if self._expiries_changed:
            self._expiries_changed = False
            self._next_expiry = min((s.expires_at for s in self._subs.values()), default=None)
        return self._next_expiry

    def __len__(self) -> int:
        return len(self._subs)

    def subscriptions(self, resource: str | None = None) -> list[Subscription]:
        if resource is None:
            return list(self._subs.values())
        return list(self._by_resource.get(resource, {}).values())

    # -- inputs -------------------------------------------------------------------------
    def accepts(self, event: EventHeader | None) -> bool:
        """Is ``event`` (a request's, ``EventHeader.of``) a package we notify?"""
        return event is not None and event.package in self.config.events

    def find(self, request: Request, event: EventHeader | None) -> Subscription | None:
        """The subscription an in-dialog SUBSCRIBE (Event header ``event``) refreshes."""
        return self._subs.get(_dialog_key(request, event.id if event is not None else None))

    def subscribe(
        self,
        request: Request,
        now: float,
        *,
        event: EventHeader | None,
        resource: str,
        peer: Endpoint,
        contact: str,
        via: tuple[str, str],
    ) -> None:
        """A SUBSCRIBE the shell has authorised: new (no To tag), refresh or
        unsubscribe; ``event`` is its Event header (``EventHeader.of``)."""
        if event is None or not self.accepts(event):
            # RFC 6665 §8.2.2 / §7.2.2: 489 with the packages we do know.
            self._respond(request, 489, extra=[("Allow-Events", ", ".join(self.config.events))])
            return
        package, event_id = event.package, event.id
        expires = self._expires(request)
        if expires is None:
            self._respond(request, 400, "Bad Expires")
            return
        if 0 < expires < self.config.min_expires:
            self._respond(request, 423, extra=[("Min-Expires", str(self.config.min_expires))])
            return
        granted = min(expires, self.config.max_expires)
        if request.to_tag is not None:
            self._in_dialog(request, now, granted, event_id, peer)
            return
        if granted == 0:
            # A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, terminated.
            pass
        elif len(self._subs) >= self.config.max_subscriptions:
            self._respond(request, 503, extra=[("Retry-After", "60")])
            return
        tag = self.new_tag()
        try:
            dialog = Dialog.as_uas(request, tag, state=DialogState.CONFIRMED, local_contact=contact)
        except DialogError as exc:
            self._respond(request, exc.status_code, str(exc))
            return
        key = SubscriptionId(request.call_id, tag, request.from_tag or "", event_id)
        echo = package if event_id is None else f"{package};id={event_id}"
        sub = Subscription(key, resource, dialog, echo, peer, via, expires_at=now + granted)
        self._respond(
            request,
            200,
            tag=tag,
            extra=[("Contact", contact), ("Expires", str(granted))],
        )
        if granted == 0:
            self._notify(sub, now, final_reason="timeout")
            return
        self._subs[key] = sub
        self._by_tag[tag] = sub
        self._by_resource.setdefault(resource, {})[key] = sub
        self._expiries_changed = True
        self._notify(sub, now)

    def changed(self, resource: str, now: float) -> int:
        """The state of ``resource`` changed: NOTIFY its subscribers (count sent)."""
        sent = 0
        for sub in list(self._by_resource.get(resource, {}).values()):
            sub.fire(SubInput.CHANGE)
            if sub.in_flight is not None:
                sub.dirty = True
                continue
            self._notify(sub, now)
            sent += 1
        return sent

    def response_received(self, response: Response, now: float) -> bool:
        """A response to one of our NOTIFYs (False: not ours)."""
        if response.cseq.method != "NOTIFY" or response.status < 200:
            return response.cseq.method == "NOTIFY" and self._owner(response) is not None
        sub = self._owner(response)
        if sub is None:
            return False
        self._answered(sub, response.cseq.seq, response.status, now)
        return True

    def notify_failed(self, sub_id: SubscriptionId, cseq: int, now: float) -> None:
        """The NOTIFY ``cseq`` of ``sub_id`` timed out (Timer F) or could not be sent."""
        sub = self._subs.get(sub_id)
        if sub is not None:
            self._answered(sub, cseq, 408, now)

    def handle_timer(self, now: float) -> None:
        for sub in [s for s in self._subs.values() if s.expires_at <= now]:
            sub.fire(SubInput.EXPIRE)
            self._remove(sub, "timeout")
            self._notify(sub, now, final_reason="timeout")

    def terminate_all(self, now: float, reason: str = "noresource") -> None:
        """Shutdown: a final NOTIFY on every subscription (RFC 6665 §4.2.2)."""
        for sub in list(self._subs.values()):
            sub.fire(SubInput.EXPIRE)
            self._remove(sub, "shutdown")
            self._notify(sub, now, final_reason=reason)

    # -- internals ----------------------------------------------------------------------
    def _owner(self, response: Response) -> Subscription | None:
        sub = self._by_tag.get(response.from_tag or "")
        return sub if sub is not None and sub.id.call_id == response.call_id else None

    def _answered(self, sub: Subscription, cseq: int, status: int, now: float) -> None:
        if sub.in_flight != cseq:
            return  # an older NOTIFY's answer (a final NOTIFY went meanwhile)
        sub.in_flight = None
        if status in ENDING_STATUSES:
            sub.fire(SubInput.NOTIFY_FATAL)
            self._remove(sub, "rejected" if status != 408 else "noresponse")
            return
        sub.fire(SubInput.NOTIFY_OK)
        if sub.dirty:
            sub.dirty = False
            self._notify(sub, now)

    def _in_dialog(
        self,
        request: Request,
        now: float,
        granted: int,
        event_id: str | None,
        peer: Endpoint,
    ) -> None:
        sub = self._subs.get(_dialog_key(request, event_id))
        if sub is None:
            self._respond(request, 481)
            return
        try:
            sub.dialog.receive_request(request)
        except DialogError as exc:
            self._respond(request, exc.status_code, str(exc))
            return
        sub.peer = peer
        self._respond(
            request,
            200,
            extra=[("Contact", sub.dialog.local_contact or ""), ("Expires", str(granted))],
        )
        if granted == 0:
            sub.fire(SubInput.UNSUBSCRIBE)
            self._remove(sub, "unsubscribed")
            self._notify(sub, now, final_reason="timeout")
            return
        sub.fire(SubInput.REFRESH)
        sub.expires_at = now + granted
        self._expiries_changed = True
        sub.dirty = False
        self._notify(sub, now)

    def _expires(self, request: Request) -> int | None:
        raw = request.headers.get("Expires")
        if raw is None:
            return self.config.default_expires
        raw = raw.strip()
        if not raw.isdigit() or not raw.isascii():
            return None
        return min(int(raw), 2**32 - 1)

    def _notify(self, sub: Subscription, now: float, *, final_reason: str | None = None) -> None:
        body = self.render(sub.resource, sub.version)
        sub.version += 1
        if final_reason is None:
            # Rounded to the millisecond first: (now + 3600) - now may be
            # 3600.0000000000005, which must not be told as 3601.
            left = max(0, math.ceil(round(sub.expires_at - now, 3)))
            state = f"active;expires={left}"
        else:
            state = f"terminated;reason={final_reason}"
        request = sub.dialog.create_request(
            "NOTIFY",
            body=body,
            content_type=self.config.content_type,
            extra=[("Event", sub.event), ("Subscription-State", state)],
            via=sub.via,
        )
        sub.notifies += 1
        if final_reason is None:
            sub.in_flight = request.cseq.seq
        self._out.append(SendNotify(sub.id, request, sub.peer, final=final_reason is not None))

    def _remove(self, sub: Subscription, reason: str) -> None:
        self._subs.pop(sub.id, None)
        self._expiries_changed = True
        self._by_tag.pop(sub.id.local_tag, None)
        others = self._by_resource.get(sub.resource)
        if others is not None:
            others.pop(sub.id, None)
            if not others:
                del self._by_resource[sub.resource]
        self._out.append(SubscriptionEnded(sub.id, sub.resource, reason))

    def _respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        tag: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        if tag is None and request.to_tag is None:
            tag = self.new_tag()
        self._out.append(
            Respond(make_response(request, status, reason, to_tag=tag, extra=extra or ()))
        )


def _dialog_key(request: Request, event_id: str | None) -> SubscriptionId:
    """The subscription an in-dialog request names (our tag is its To tag)."""
    return SubscriptionId(request.call_id, request.to_tag or "", request.from_tag or "", event_id)


__all__ = [
    "DEFAULT_EXPIRES",
    "ENDING_STATUSES",
    "TRANSITIONS",
    "EventHeader",
    "Notifier",
    "NotifierConfig",
    "Output",
    "Respond",
    "SendNotify",
    "SubInput",
    "SubState",
    "Subscription",
    "SubscriptionEnded",
    "SubscriptionError",
    "SubscriptionId",
]
