"""BLF (busy lamp field): phones watch lines with ``SUBSCRIBE Event: dialog``.

The subscriptions manager between the stack and the pure notifier
(``switch.sip.subscription``), with call state taken from the B2BUA:

- **Who may subscribe.** An out-of-dialog SUBSCRIBE is checked like an INVITE
  (``switch.b2bua``): a banned source gets ``403``; the ``From`` must be a line
  of a company (``403`` otherwise); digest with ``RegistrarService.authenticate``
  (``407``, the same nonces and brute-force accounting as calls); the watched
  extension is the Request-URI user (else the To user) and must be a line of the
  *same* company (``403`` for another company's domain, ``404`` for no such
  extension). A package other than ``dialog`` gets ``489`` with
  ``Allow-Events: dialog`` (a handler earlier in the chain takes the packages it
  knows, e.g. ``message-summary``). A refresh or unsubscribe inside the
  subscription's dialog is matched by Call-ID and both tags (our tag is random):
  it is not challenged again, like a BYE.
- **Where NOTIFYs go.** To the subscriber's Contact as Request-URI, sent to the
  address the SUBSCRIBE came from, over its connection for TCP/TLS (as B legs go
  to a binding's source).
- **What they say.** ``line_views`` (pure) turns a ``Call`` into the dialogs each
  of our lines sees: the caller's line one ``initiator`` dialog (trying, early,
  confirmed), the callee's line one ``recipient`` dialog per B leg towards it
  once that phone answers the INVITE (proceeding, early, confirmed), every one
  ``terminated`` at the end. Call-ID and
  tags are those of the switch's dialog *with that phone*: for the callee the B
  leg towards it, its own tag as ``local-tag`` and the switch's as
  ``remote-tag``, so that a phone can build an INVITE with Replaces from them.
- **When.** The B2BUA calls ``call_changed`` at the end of every ``execute()``;
  the views are compared with the last ones (a dict comparison) and only the
  lines whose dialogs changed are notified, to every subscriber of the line.
  Each NOTIFY carries the **full** state of the line (RFC 4235 ``state="full"``,
  version +1 per NOTIFY): what 67i and VVX phones handle best, and a lost or
  coalesced NOTIFY never leaves a phone with a wrong lamp. An idle line's
  document holds one terminated dummy dialog (the 67i needs a ``<dialog>``).
  A terminated dialog stays in its line's documents for ``LINGER`` seconds, so
  that a subscriber whose previous NOTIFY was still unanswered (the notifier
  keeps one in flight per subscription) sees it terminate too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from switch.call import Call, CallState
from switch.directory import Directory
from switch.registrar_service import RegistrarService
from switch.sip.dialog_info import (
    DialogState,
    DialogView,
    Direction,
    Participant,
    fitted,
    with_version,
)
from switch.sip.endpoint import Endpoint
from switch.sip.errors import ParseError
from switch.sip.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.headers import unquote
from switch.sip.invite import CallState as LegState
from switch.sip.invite import InviteSession
from switch.sip.message import Request, Response
from switch.sip.subscription import (
    EventHeader,
    Notifier,
    NotifierConfig,
    Respond,
    SendNotify,
    SubscriptionEnded,
    SubscriptionId,
)
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import NoSuchTransaction
from switch.sip.uri import Uri
from switch.stack import LoopTimer
from switch.tokens import token_hex

log = logging.getLogger(__name__)

LINGER = 5.0  # seconds a terminated dialog stays in its line's documents
# A NOTIFY over 1300 bytes would go over TCP (RFC 3261 §18.1.1), which UDP phones
# rarely listen on: its headers take about 450 bytes, the document gets the rest.
MAX_BODY = 800

# --------------------------------------------------------------- calls -> dialog views


def line_views(
    call: Call, line_key: Callable[[str, str], str | None]
) -> dict[str, list[DialogView]]:
    """The dialogs each of our lines sees in ``call`` (pure).

    ``line_key(user, host)`` gives the key (``402@pbx.test``) of one of our lines,
    or None. The caller's line is ``call.caller`` when that is a line key; a
    callee's line is the user and host of the To of the B leg's INVITE.
    """
    out: dict[str, list[DialogView]] = {}
    ended = call.state >= CallState.ENDING
    user, _, host = call.caller.partition("@")
    caller = line_key(user, host) if host else None
    if caller is not None:
        view = _caller_view(call, ended)
        if view is not None:
            out.setdefault(caller, []).append(view)
    for party in call.b:
        invite = party.leg.invite
        if invite is None or (party.leg.state is LegState.CALLING and not ended):
            # Not ringing yet (no answer from the phone): nothing to show, and one
            # NOTIFY fan-out less per call.
            continue
        try:
            to = invite.to
            from_ = invite.from_
        except ParseError:
            continue
        key = line_key(to.uri.user or "", to.uri.host)
        if key is None:
            continue
        view = _callee_view(party.leg, party.final_status, ended, to.uri, from_.uri, from_.display)
        out.setdefault(key, []).append(view)
    return out


def _state(leg: InviteSession, ended: bool) -> DialogState:
    if ended or leg.state >= LegState.TERMINATING:
        return DialogState.TERMINATED
    if leg.state >= LegState.ANSWERED:
        return DialogState.CONFIRMED
    if leg.state is LegState.PROCEEDING:
        return DialogState.EARLY if leg.dialogs else DialogState.PROCEEDING
    return DialogState.TRYING


def _ending(
    leg: InviteSession, status: int | None, *, callee: bool
) -> tuple[str | None, int | None]:
    """The ``event`` and ``code`` of a terminated dialog, seen from the phone."""
    reason = leg.end_reason
    if reason == "bye-received":  # the phone hung up
        return "local-bye", None
    if reason == "bye-sent":
        return "remote-bye", None
    if reason == "cancelled" or status == 487:
        return "cancelled", None
    if status is not None and status >= 300:
        return "rejected", status
    if reason is None:
        # The call ended and the switch is closing this leg (CANCEL or BYE on its way).
        return ("remote-bye", None) if leg.state >= LegState.ANSWERED else ("cancelled", None)
    if callee and reason == "failed":
        return "error", None
    return None, None


def _caller_view(call: Call, ended: bool) -> DialogView | None:
    leg = call.a.leg
    invite = leg.invite
    if invite is None:
        return None
    try:
        from_, to = invite.from_, invite.to
    except ParseError:
        return None
    state = _state(leg, ended)
    event, code = (None, None)
    if state is DialogState.TERMINATED:
        event, code = _ending(leg, call.a.final_status, callee=False)
    contact = _contact(invite)
    return DialogView(
        id=leg.call_id,
        state=state,
        call_id=leg.call_id,
        local_tag=invite.from_tag,
        # The switch's tag, once the phone has it (a 1xx or final with our To tag).
        remote_tag=leg.local_tag if leg.dialog is not None else None,
        direction=Direction.INITIATOR,
        event=event,
        code=code,
        local=Participant(str(from_.uri), _unquoted(from_.display), contact),
        remote=Participant(str(to.uri)),
    )


def _callee_view(
    leg: InviteSession,
    final_status: int | None,
    ended: bool,
    local: Uri,
    remote: Uri,
    display: str | None,
) -> DialogView:
    dialog = leg.dialog or next(iter(leg.dialogs.values()), None)
    state = _state(leg, ended)
    event, code = (None, None)
    if state is DialogState.TERMINATED:
        event, code = _ending(leg, final_status, callee=True)
    return DialogView(
        id=leg.call_id,
        state=state,
        call_id=leg.call_id,
        local_tag=dialog.remote_tag if dialog is not None else None,  # the phone's tag
        remote_tag=leg.local_tag,  # the switch's (From of the B leg)
        direction=Direction.RECIPIENT,
        event=event,
        code=code,
        local=Participant(
            str(local), None, str(dialog.remote_target) if dialog is not None else None
        ),
        remote=Participant(str(remote), _unquoted(display)),
    )


def _unquoted(display: str | None) -> str | None:
    """A display-name without its quotes (``"Accueil"`` -> ``Accueil``)."""
    if not display:
        return None
    return unquote(display.strip()) or None


def _contact(request: Request) -> str | None:
    raw = request.headers.get("Contact")
    if not raw:
        return None
    start, end = raw.find("<"), raw.find(">")
    return raw[start + 1 : end] if 0 <= start < end else raw.split(";", 1)[0].strip()


# ------------------------------------------------------------------------ the manager


@dataclass(slots=True)
class _Shown:
    view: DialogView
    terminated_at: float | None  # loop time it was first shown terminated


class Blf:
    """Dialog-event subscriptions to our lines; see the module docstring."""

    def __init__(
        self,
        stack: Any,
        *,
        registrar: RegistrarService,
        directory: Directory,
        calls: Callable[[], list[Call]] = list,
        fallback: Callable[[Event], None] | None = None,
        config: NotifierConfig | None = None,
    ) -> None:
        self.stack = stack
        self.registrar = registrar
        self.directory = directory
        self.calls = calls
        self.fallback = fallback
        self.loop = asyncio.get_running_loop()
        self.notifier = Notifier(self._render, config, new_tag=lambda: token_hex(6))
        # What each line shows: view id -> the view (all calls of the line).
        self._lines: dict[str, dict[str, _Shown]] = {}
        # Per call: the views last taken from it per line, and the ids shown
        # terminated already (not revived while the call lingers).
        self._by_call: dict[str, dict[str, dict[str, DialogView]]] = {}
        self._gone: dict[str, set[str]] = {}
        self._pending: dict[ClientKey, tuple[SubscriptionId, int]] = {}
        self._documents: dict[str, bytes] = {}  # line -> its document, version 0
        self._timer = LoopTimer(self.loop, self._on_timer)
        self.stats: dict[str, int] = {"notify": 0, "subscribe": 0}  # changes notified

    # -- events -------------------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived) and event.request.method == "SUBSCRIBE":
            try:
                self._subscribe(event)
            except ParseError as exc:  # a header the parser let through, unreadable here
                self.notifier.outputs()  # nothing half-done goes out
                self._reply(event.request, 400, exc.reason)
            self._pump()
            return
        key = getattr(event, "key", None)
        if isinstance(key, ClientKey) and key in self._pending:
            now = self.loop.time()
            if isinstance(event, ResponseReceived):
                if event.response.status >= 200:
                    self.notifier.response_received(event.response, now)
            elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
                sub_id, cseq = self._pending[key]
                self.notifier.notify_failed(sub_id, cseq, now)
            elif isinstance(event, TransactionTerminated):
                del self._pending[key]
            self._pump()
            return
        if self.fallback is not None:
            self.fallback(event)

    def _subscribe(self, event: RequestReceived) -> None:
        request, source = event.request, event.source
        now = self.loop.time()
        self.stats["subscribe"] += 1
        if self.registrar.banned(source.host, now):
            self._reply(request, 403)
            return
        header = EventHeader.of(request)  # read once, passed along
        if not self.notifier.accepts(header):
            # 489 with Allow-Events, from the notifier.
            self._accept(request, source, header, resource="", now=now)
            return
        if request.to_tag is not None:
            sub = self.notifier.find(request, header)
            if sub is None:
                self._reply(request, 481)
                return
            self._accept(request, source, header, resource=sub.resource, now=now)
            return
        try:
            from_uri = request.from_.uri
            target_uri = request.uri
            to_uri = request.to.uri
        except ParseError as exc:
            self._reply(request, 400, exc.reason)
            return
        subscriber = self.registrar.authenticate_line(request, from_uri, source.host, now)
        if isinstance(subscriber, Response):
            with contextlib.suppress(NoSuchTransaction):
                self.stack.send_response(subscriber)
            return
        company = self.directory.company(subscriber.company)
        assert company is not None
        watched_user = target_uri.user or to_uri.user or ""
        host = target_uri.host if target_uri.user else to_uri.host
        other = self.directory.company_for_domain(host)
        if other is not None and other is not company:
            self._reply(request, 403, "Other Company")
            return
        line = company.line(watched_user)
        if line is None:
            self._reply(request, 404)
            return
        if not self.notifier.subscriptions(line.key):
            self._seed(line.key, now)
        self._accept(request, source, header, resource=line.key, now=now)

    def _accept(
        self,
        request: Request,
        source: Endpoint,
        header: EventHeader | None,
        *,
        resource: str,
        now: float,
    ) -> None:
        contact, via = self._local(source)
        self.notifier.subscribe(
            request, now, event=header, resource=resource, peer=source, contact=contact, via=via
        )

    def _reply(self, request: Request, status: int, reason: str | None = None) -> None:
        with contextlib.suppress(NoSuchTransaction):
            self.stack.send_response(self.registrar.core.reply(request, status, reason))

    def _local(self, peer: Endpoint) -> tuple[str, tuple[str, str]]:
        """Our Contact and Via sent-by towards ``peer`` (``Stack.local_contact``)."""
        local: tuple[str, tuple[str, str]] = self.stack.local_contact(peer)
        return local

    # -- calls ----------------------------------------------------------------------------
    def call_changed(self, call: Call) -> None:
        """The B2BUA's observer hook: notify the lines whose dialogs changed."""
        if not self.notifier and call.id not in self._by_call:
            return  # nobody watches and nothing shown: the usual case, nothing to pump
        try:
            self._update(call, self.loop.time())
        except Exception:
            log.exception("blf.update_failed", extra={"call": call.id})
        self._pump()

    def _line_key(self, user: str, host: str) -> str | None:
        found = self.directory.line_for(user, host)
        return None if found is None else found[1].key

    def _update(self, call: Call, now: float) -> None:
        views = line_views(call, self._line_key)
        known = self._by_call.setdefault(call.id, {})
        gone = self._gone.setdefault(call.id, set())
        changed: list[str] = []
        for line in set(views) | set(known):
            fresh = {v.id: v for v in views.get(line, ()) if v.id not in gone}
            before = known.get(line, {})
            if fresh == before:
                continue
            shown = self._lines.setdefault(line, {})
            for view_id in before.keys() - fresh.keys():
                # Vanished without a terminated state: show it terminated once.
                old = before[view_id]
                shown[view_id] = _Shown(replace(old, state=DialogState.TERMINATED), now)
                gone.add(view_id)
            for view_id, view in fresh.items():
                if view.state is DialogState.TERMINATED:
                    shown[view_id] = _Shown(view, now)
                    gone.add(view_id)
                else:
                    shown[view_id] = _Shown(view, None)
            known[line] = {k: v for k, v in fresh.items() if k not in gone}
            self._documents.pop(line, None)
            changed.append(line)
        for line in changed:
            if self.notifier.changed(line, now):
                self.stats["notify"] += 1
            elif not self.notifier.subscriptions(line):
                self._forget_ended(line)
        if call.finished:
            self._by_call.pop(call.id, None)
            self._gone.pop(call.id, None)

    def _forget_ended(self, line: str) -> None:
        """A line nobody watches keeps only its live dialogs (for a first subscriber)."""
        shown = self._lines.get(line)
        if shown is None:
            return
        for view_id in [k for k, item in shown.items() if item.terminated_at is not None]:
            del shown[view_id]
        if not shown:
            del self._lines[line]
        self._documents.pop(line, None)

    def _seed(self, line: str, now: float) -> None:
        """A line gets its first subscriber: take its dialogs from the calls in progress."""
        for call in self.calls():
            if call.id not in self._by_call:
                with contextlib.suppress(Exception):
                    self._update(call, now)

    def _render(self, line: str, version: int) -> bytes:
        """The line's document for one subscription: built once per state (version
        0), stamped with each subscription's version."""
        shown = self._lines.get(line)
        if shown:
            now = self.loop.time()
            expired = [
                view_id
                for view_id, item in shown.items()
                if item.terminated_at is not None and now - item.terminated_at > LINGER
            ]
            for view_id in expired:
                del shown[view_id]
            if expired:
                self._documents.pop(line, None)
            if not shown:
                del self._lines[line]
        body = self._documents.get(line)
        if body is None:
            items = sorted(
                (shown or {}).values(),
                key=lambda item: -1.0 if item.terminated_at is None else item.terminated_at,
            )
            # Older terminated dialogs first: the first to go when the document is too big.
            ordered = [item.view for item in items if item.terminated_at is not None]
            ordered += [item.view for item in items if item.terminated_at is None]
            body = self._documents[line] = fitted(f"sip:{line}", 0, ordered, MAX_BODY)
        return with_version(body, version)

    # -- output pump --------------------------------------------------------------------------
    def _pump(self) -> None:
        for out in self.notifier.outputs():
            if isinstance(out, Respond):
                with contextlib.suppress(NoSuchTransaction):
                    self.stack.send_response(out.response)
            elif isinstance(out, SendNotify):
                try:
                    key = self.stack.send_request(out.request, out.dest)
                except Exception:
                    log.exception("blf.notify_failed", extra={"dest": str(out.dest)})
                    continue
                if not out.final:
                    self._pending[key] = (out.id, out.request.cseq.seq)
            elif isinstance(out, SubscriptionEnded):
                log.info(
                    "blf.subscription_ended",
                    extra={"line": out.resource, "reason": out.reason},
                )
        self._timer.follow(self.notifier.get_timer())

    def _on_timer(self) -> None:
        self.notifier.handle_timer(self.loop.time())
        self._pump()

    async def close(self) -> None:
        """Stop: every subscription ends with a final NOTIFY (``deactivated``: the
        phone subscribes again, to this switch once it is back)."""
        self.notifier.terminate_all(self.loop.time(), "deactivated")
        self._pump()
        self._timer.cancel()


__all__ = ["LINGER", "MAX_BODY", "Blf", "line_views"]
