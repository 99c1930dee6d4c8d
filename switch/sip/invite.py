"""INVITE sessions: one call leg, UAC or UAS, above the transaction layer.

An ``InviteSession`` is the transaction user (RFC 3261 §13-15) of one leg of a
call. It owns the leg's dialog(s), the offer/answer state, the retransmission
of its 2xx until the ACK comes, the ACK for the 2xx it receives, glare, PRACK
and session timers. Like the transaction layer it is sans-I/O::

    leg = InviteSession.uac(config, ids, from_=..., to=..., request_uri=..., body=sdp, now=t)
    leg = InviteSession.uas(config, ids, request, server_key, now=t)   # from RequestReceived
    leg.handle(event, now)        # every transaction-layer event whose Call-ID is the leg's
    leg.handle_timer(now)         # when leg.get_timer() is due
    leg.respond(180, now=t) ; leg.respond(200, body=sdp, now=t)       # UAS intents
    leg.cancel(now) ; leg.ack(answer, now) ; leg.reinvite(sdp, now)   # UAC / both
    for cmd in leg.commands(): ...  # SendRequest / SendAck / SendResponse / SendCancel
    while (e := leg.next_event()) is not None: ...

Commands and what the driver does with them (it stamps nothing: requests carry
a Via without branch built from ``SessionConfig.via``):

- ``SendRequest(request, next_hop)``: ``layer.send_request(request, dest, now)``
  with ``dest`` resolved from ``next_hop`` (RFC 3263); the layer adds the branch.
- ``SendAck(ack, next_hop)``: ``layer.send_ack_2xx(ack, dest)``; the ACK already
  has its own branch, so a re-sent ACK is byte-identical (§13.2.2.4).
- ``SendResponse(response)``: ``layer.send_response(response, now)``.
- ``SendCancel(invite)``: ``layer.cancel(ClientKey(invite.branch, "INVITE"), now)``
  (the layer holds the CANCEL until a provisional arrived, §9.1).

Call states (monotone; ``CALL_TRANSITIONS`` is the whole table)::

    CALLING -1xx-> PROCEEDING -2xx-> ANSWERED -ACK-> CONFIRMED -BYE sent-> TERMINATING
       |               |                 |               |                     |
       +---- non-2xx final / BYE received / timeout ------+-----> TERMINATED <--+

Offer/answer (RFC 3264, RFC 6337 §2): ``OFFER_ANSWER`` is the table; at most one
offer is pending at a time. A received offer while ours is pending is glare:
re-INVITE → 491 (RFC 3261 §14.2), UPDATE → 491, or 500 with Retry-After when we
owe an answer (RFC 3311 §5.2). Our request that gets 491 is re-sent after the
§14.1 random delay: 2.1-4 s when we own the Call-ID, 0-2 s otherwise.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from switch.sip.dialog import Dialog, DialogInput, DialogState
from switch.sip.dialog_events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallFailed,
    InDialogRequestReceived,
    InDialogResponseReceived,
    PrackReceived,
    ProvisionalReceived,
    RetryScheduled,
    Sdp,
    SessionEnded,
    SessionEvent,
    SessionTimerStarted,
)
from switch.sip.errors import SipError
from switch.sip.events import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.headers import CSeq, parse_name_addr
from switch.sip.message import Headers, Request, Response, make_response
from switch.sip.prack import (
    ReliableProvisionals,
    RSeqTracker,
    is_reliable_provisional,
    parse_rack,
    rack_for,
    supports_100rel,
)
from switch.sip.session_timer import (
    IntervalTooSmall,
    Negotiated,
    SessionTimer,
    interval_after_422,
    session_expires_of,
    uac_negotiated,
    uac_request_headers,
    uas_negotiate,
    uas_response_headers,
)
from switch.sip.transaction import ServerKey
from switch.sip.uri import Uri

SDP = "application/sdp"


class SessionError(SipError):
    """A local misuse of the session (a TU bug, like h11's LocalProtocolError)."""


class OfferPending(SessionError):
    """RFC 3264 §4 / RFC 3261 §14.1: no new offer while one is pending."""

    status_code = 491


# ------------------------------------------------------------------ offer / answer


class OfferState(enum.Enum):
    IDLE = "idle"  # no offer outstanding (before any, or after an answer)
    LOCAL_OFFER = "local-offer"  # we sent an offer, waiting for the answer
    REMOTE_OFFER = "remote-offer"  # we received an offer, we owe the answer


class OfferInput(enum.Enum):
    SEND_OFFER = "send offer"
    RECEIVE_OFFER = "receive offer"
    SEND_ANSWER = "send answer"
    RECEIVE_ANSWER = "receive answer"
    WITHDRAW = "withdraw"  # the request carrying the offer failed (non-2xx)


# RFC 3264 §4: "an agent MUST NOT generate a new offer if it has received an
# offer which it has not yet answered or rejected, or if it has generated a prior
# offer for which it has not yet received an answer or a rejection".
OFFER_ANSWER: dict[tuple[OfferState, OfferInput], OfferState] = {
    (OfferState.IDLE, OfferInput.SEND_OFFER): OfferState.LOCAL_OFFER,
    (OfferState.IDLE, OfferInput.RECEIVE_OFFER): OfferState.REMOTE_OFFER,
    (OfferState.LOCAL_OFFER, OfferInput.RECEIVE_ANSWER): OfferState.IDLE,
    (OfferState.LOCAL_OFFER, OfferInput.WITHDRAW): OfferState.IDLE,
    (OfferState.REMOTE_OFFER, OfferInput.SEND_ANSWER): OfferState.IDLE,
    (OfferState.REMOTE_OFFER, OfferInput.WITHDRAW): OfferState.IDLE,
}


@dataclass(slots=True)
class OfferAnswer:
    """The offer/answer state of one leg; ``pending`` names the transaction
    ``(cseq, method)`` whose exchange carries the pending offer."""

    state: OfferState = OfferState.IDLE
    pending: tuple[int, str] | None = None
    completed: int = 0  # offer/answer exchanges done
    last_local: bytes = b""  # our last offer or answer (for session refreshes)

    def fire(self, input_: OfferInput, txn: tuple[int, str] | None = None) -> OfferState:
        nxt = OFFER_ANSWER.get((self.state, input_))
        if nxt is None:
            raise OfferPending(f"{input_.value} while {self.state.value}")
        if input_ in (OfferInput.RECEIVE_ANSWER, OfferInput.SEND_ANSWER):
            self.completed += 1
        self.state = nxt
        self.pending = txn if nxt is not OfferState.IDLE else None
        return nxt


# ------------------------------------------------------------------------ commands


@dataclass(slots=True)
class SendRequest:
    request: Request
    next_hop: Uri


@dataclass(slots=True)
class SendAck:
    ack: Request
    next_hop: Uri


@dataclass(slots=True)
class SendResponse:
    response: Response


@dataclass(slots=True)
class SendCancel:
    invite: Request
    reason: str | None = None  # RFC 3326 Reason value, e.g. 'SIP;cause=200'


Command = SendRequest | SendAck | SendResponse | SendCancel


# ---------------------------------------------------------------------- call state


class Role(enum.Enum):
    UAC = "uac"
    UAS = "uas"


class CallState(enum.IntEnum):
    """Ordered: a leg's state never decreases."""

    CALLING = 0
    PROCEEDING = 1
    ANSWERED = 2  # 2xx sent or received, ACK not yet
    CONFIRMED = 3
    TERMINATING = 4  # BYE sent, waiting for its response
    TERMINATED = 5


class CallInput(enum.Enum):
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    ACK = "ACK"
    FAILURE = "non-2xx final"
    BYE_SENT = "BYE sent"
    BYE_RECEIVED = "BYE received"
    BYE_DONE = "BYE completed"


_S, _I = CallState, CallInput
CALL_TRANSITIONS: dict[tuple[CallState, CallInput], CallState] = {
    (_S.CALLING, _I.PROVISIONAL): _S.PROCEEDING,
    (_S.CALLING, _I.SUCCESS): _S.ANSWERED,
    (_S.CALLING, _I.FAILURE): _S.TERMINATED,
    (_S.PROCEEDING, _I.PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _I.SUCCESS): _S.ANSWERED,
    (_S.PROCEEDING, _I.FAILURE): _S.TERMINATED,
    (_S.ANSWERED, _I.SUCCESS): _S.ANSWERED,
    (_S.ANSWERED, _I.ACK): _S.CONFIRMED,
    (_S.CONFIRMED, _I.SUCCESS): _S.CONFIRMED,
    (_S.CONFIRMED, _I.ACK): _S.CONFIRMED,
    (_S.TERMINATING, _I.SUCCESS): _S.TERMINATING,
    (_S.TERMINATING, _I.ACK): _S.TERMINATING,
    (_S.TERMINATING, _I.FAILURE): _S.TERMINATING,
    (_S.TERMINATING, _I.BYE_DONE): _S.TERMINATED,
    (_S.TERMINATING, _I.BYE_RECEIVED): _S.TERMINATED,
    (_S.TERMINATED, _I.SUCCESS): _S.TERMINATED,
    (_S.TERMINATED, _I.ACK): _S.TERMINATED,
    (_S.TERMINATED, _I.FAILURE): _S.TERMINATED,
    (_S.TERMINATED, _I.BYE_DONE): _S.TERMINATED,
    (_S.TERMINATED, _I.BYE_RECEIVED): _S.TERMINATED,
}
for _state in (_S.CALLING, _S.PROCEEDING, _S.ANSWERED, _S.CONFIRMED):
    CALL_TRANSITIONS[(_state, _I.BYE_SENT)] = _S.TERMINATING
    CALL_TRANSITIONS[(_state, _I.BYE_RECEIVED)] = _S.TERMINATED


# --------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a leg needs to know about the switch side of it."""

    contact: str  # our Contact value, e.g. "<sip:switch@192.0.2.10:5060>"
    via: tuple[str, str]  # (transport, sent-by) stamped on every request
    t1: float = 0.5
    t2: float = 4.0
    session_expires: int | None = 1800  # RFC 4028 interval we ask for; None: no timer
    min_se: int = 90
    use_100rel: bool = False  # UAC: advertise Supported: 100rel
    refresh_with_update: bool = True  # refresh with UPDATE when the peer allows it
    allow: tuple[str, ...] = (
        "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "PRACK", "REFER", "NOTIFY", "INFO", "OPTIONS",
    )  # fmt: skip
    # UAC: answers a 401/407 to the initial INVITE with (header name, value), or
    # None to let the failure stand (trunk credentials, ``switch.trunk``).
    authenticate: Callable[[Response, Request], tuple[str, str] | None] | None = None
    max_auth_attempts: int = 2


@dataclass(frozen=True, slots=True)
class SessionIds:
    """Injected randomness: tags, branches (for 2xx ACKs), Call-IDs, delays."""

    new_tag: Callable[[], str]
    new_branch: Callable[[], str]
    new_call_id: Callable[[], str]
    rng: random.Random


@dataclass(slots=True)
class _Outgoing:
    request: Request
    dialog: Dialog | None
    offer: bool  # carried an offer (so a failure withdraws it)
    refresh: bool = False  # a session refresh


@dataclass(slots=True)
class _Retransmit:
    response: Response
    next_at: float
    interval: float
    give_up_at: float


@dataclass(slots=True)
class _Retry:
    at: float
    method: str
    body: bytes
    content_type: str
    extra: tuple[tuple[str, str], ...]


def _retry_after(response: Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    head = raw.split(";", 1)[0].split("(", 1)[0].strip()
    return float(head) if head.isdigit() else None


class InviteSession:
    """One call leg. Build with ``uac`` or ``uas``; see the module docstring."""

    def __init__(self, role: Role, config: SessionConfig, ids: SessionIds) -> None:
        self.role = role
        self.config = config
        self.ids = ids
        self.state = CallState.CALLING
        self.call_id = ""
        self.local_tag = ""
        self.owns_call_id = role is Role.UAC
        self.invite: Request | None = None  # the dialog-creating INVITE
        self.dialogs: dict[str, Dialog] = {}  # by remote tag (forks, UAC side)
        self.dialog: Dialog | None = None  # the chosen (confirmed) dialog
        self.offer_answer = OfferAnswer()
        self.initial_sdp: Sdp | None = None
        self.timer: SessionTimer | None = None
        self.end_reason: str | None = None
        self._server_key: ServerKey | None = None
        self._out: dict[tuple[int, str], _Outgoing] = {}
        self._in: dict[tuple[int, str], Request] = {}
        self._ok: dict[int, _Retransmit] = {}
        self._acks: dict[tuple[str, int], Request] = {}
        self._awaiting_answer: tuple[Dialog, Response] | None = None
        self._cancelled = False
        self._bye_after_ack = False
        self._retry: _Retry | None = None
        self._reliable: ReliableProvisionals | None = None
        self._held_final: Response | None = None  # a 2xx waiting for a PRACK (RFC 3262 §3)
        self._rseq = RSeqTracker()
        self._pending_prack: tuple[Dialog, Response] | None = None
        self._requested_se = config.session_expires
        self._auth_attempts = 0
        self._answer_2xx: Response | None = None  # the 2xx we accepted (UAC): peer's Allow
        self._commands: list[Command] = []
        self._events: deque[SessionEvent] = deque()

    # =================================================================== creation

    @classmethod
    def uac(
        cls,
        config: SessionConfig,
        ids: SessionIds,
        *,
        from_: str,
        to: str,
        request_uri: Uri,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
        route: Iterable[str] = (),
        extra: Iterable[tuple[str, str]] = (),
        call_id: str | None = None,
    ) -> InviteSession:
        """Start an outgoing call: queues the INVITE (RFC 3261 §8.1.1, §13.2.1)."""
        leg = cls(Role.UAC, config, ids)
        leg.call_id = call_id or ids.new_call_id()
        leg.local_tag = ids.new_tag()
        from_addr = parse_name_addr(from_)
        from_addr.params["tag"] = leg.local_tag
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{config.via[0].upper()} {config.via[1]}")
        headers.add("Max-Forwards", "70")
        headers.add("From", str(from_addr))
        headers.add("To", to)
        headers.add("Call-ID", leg.call_id)
        headers.add("CSeq", str(CSeq(1, "INVITE")))
        for value in route:
            headers.add("Route", value)
        headers.add("Contact", config.contact)
        headers.add("Allow", ", ".join(config.allow))
        supported = ["timer"] if config.session_expires else []
        if config.use_100rel:
            supported.insert(0, "100rel")
        if supported:
            headers.add("Supported", ", ".join(supported))
        if config.session_expires:
            for name, value in uac_request_headers(config.session_expires, config.min_se):
                headers.add(name, value)
        for name, value in extra:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type)
        invite = Request("INVITE", request_uri.copy(), headers, body)
        leg.invite = invite
        leg._send_initial(invite, now)
        return leg

    @classmethod
    def uas(
        cls,
        config: SessionConfig,
        ids: SessionIds,
        request: Request,
        key: ServerKey,
        *,
        now: float,
    ) -> InviteSession:
        """Take an incoming INVITE (from ``RequestReceived``) as a new leg.

        A Session-Expires below our minimum is answered 422 at once (RFC 4028
        §9) and the leg is born TERMINATED with ``SessionEnded("rejected")``.
        """
        if request.method != "INVITE" or request.to_tag is not None:
            raise ValueError("a UAS leg starts from an out-of-dialog INVITE")
        leg = cls(Role.UAS, config, ids)
        leg.call_id = request.call_id
        leg.local_tag = ids.new_tag()
        leg.invite = request
        leg._server_key = key
        leg._in[(request.cseq.seq, "INVITE")] = request
        try:
            uas_negotiate(
                request, local_min_se=config.min_se, local_interval=config.session_expires
            )
        except IntervalTooSmall as err:
            leg.respond(422, extra=[("Min-SE", str(err.min_se))], now=now)
            return leg
        if request.body:
            leg.offer_answer.fire(OfferInput.RECEIVE_OFFER, (request.cseq.seq, "INVITE"))
            leg.initial_sdp = Sdp("offer", request.body, request.content_type or SDP)
        return leg

    # ==================================================================== outputs

    def commands(self) -> list[Command]:
        """What to hand to the transaction layer, in order, since the last call."""
        out, self._commands = self._commands, []
        return out

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [r.next_at for r in self._ok.values()]
        if self._reliable is not None and (t := self._reliable.get_timer()) is not None:
            deadlines.append(t)
        if self._retry is not None:
            deadlines.append(self._retry.at)
        if self.timer is not None and self.state is CallState.CONFIRMED:
            deadlines.append(self.timer.deadline())
        return min(deadlines) if deadlines else None

    @property
    def terminated(self) -> bool:
        return self.state is CallState.TERMINATED

    def matches(self, message: Request | Response) -> bool:
        """Whether a transaction-layer message belongs to this leg (by Call-ID
        and our tag): the B2BUA's dispatch key."""
        if message.call_id != self.call_id:
            return False
        if isinstance(message, Response):
            return message.from_tag == self.local_tag
        if self.role is Role.UAS and message.to_tag is None:
            return message.from_tag == (self.invite.from_tag if self.invite else None)
        return message.to_tag == self.local_tag or message.method in ("ACK", "CANCEL")

    # ===================================================================== inputs

    def handle(self, event: Event, now: float) -> bool:
        """Feed a transaction-layer event; False when it is not this leg's."""
        if isinstance(event, ResponseReceived | StrayResponseReceived):
            if not self.matches(event.response):
                return False
            self._on_response(event.response, now)
            return True
        if isinstance(event, RequestReceived):
            # Out-of-dialog requests (a new INVITE after 422, with the same
            # Call-ID) start a new leg; the layer absorbs retransmissions.
            if event.request.to_tag is None or not self.matches(event.request):
                return False
            self._on_request(event.request, now)
            return True
        if isinstance(event, AckReceived):
            ack = event.request
            if ack.call_id != self.call_id or ack.to_tag != self.local_tag:
                return False
            self._on_ack(event.request, now)
            return True
        if isinstance(event, CancelReceived):
            if event.invite_key != self._server_key:
                return False
            self._on_cancel(event.cancel_request, now)
            return True
        if isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            out = self._find_out_by_branch(getattr(event.key, "branch", ""), event.key.method)
            if out is None:
                return False
            status = 408 if isinstance(event, TransactionTimedOut) else 503
            self._on_final(out, None, status, now)
            return True
        return False

    def handle_timer(self, now: float) -> None:
        for cseq, retx in list(self._ok.items()):
            if now < retx.next_at:
                continue
            if now >= retx.give_up_at:
                # §13.3.1.4: "If the server retransmits the 2xx response for 64*T1
                # seconds without receiving an ACK, the dialog is confirmed, but the
                # session SHOULD be terminated. This is accomplished with a BYE".
                del self._ok[cseq]
                if self.state < CallState.CONFIRMED:
                    self._go(CallInput.ACK)
                self._end("ack-timeout", None)
                self._send_bye(now)
                continue
            self._commands.append(SendResponse(retx.response))
            retx.interval = min(2 * retx.interval, self.config.t2)
            retx.next_at = now + retx.interval
        if self._reliable is not None:
            due, gave_up = self._reliable.handle_timer(now)
            self._commands.extend(SendResponse(r) for r in due)
            if gave_up:
                # RFC 3262 §3: "the UAS SHOULD reject the original request with a 5xx".
                self._end("prack-timeout", 504)
                self.respond(504, reason="Reliable Provisional Not Acknowledged", now=now)
        retry = self._retry
        if retry is not None and now >= retry.at:
            self._retry = None
            if self.offer_answer.state is not OfferState.IDLE or self._invite_pending():
                self._schedule_retry(
                    retry.method, 491, retry.body, retry.content_type, retry.extra, now
                )
            elif self.state is CallState.CONFIRMED:
                self._send_in_dialog(retry.method, retry.body, retry.content_type, retry.extra, now)
        timer = self.timer
        if timer is not None and self.state is CallState.CONFIRMED and now >= timer.deadline():
            if timer.we_refresh:
                self._refresh(now)
            else:
                # RFC 4028 §10: "If the side not performing refreshes does not
                # receive a session refresh request before the session expiration,
                # it SHOULD send a BYE to terminate the session".
                self._end("session-expired", None)
                self._send_bye(now)

    # ============================================================== UAS intents

    def respond(
        self,
        status: int,
        *,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
        reliable: bool = False,
        extra: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        """Answer the initial INVITE (UAS). A 101-199 or 2xx creates the dialog."""
        assert self.invite is not None
        if self.role is not Role.UAS:
            raise SessionError("only a UAS leg answers its INVITE")
        key = (self.invite.cseq.seq, "INVITE")
        if key not in self._in:
            raise SessionError("the INVITE has been answered already")
        if reliable and not supports_100rel(self.invite):
            raise SessionError("the caller does not support 100rel (RFC 3262 §3)")
        response = self._build_response(self.invite, status, body, content_type, extra, reason)
        if 100 < status < 300 and self.dialog is None:
            state = DialogState.CONFIRMED if status >= 200 else DialogState.EARLY
            self.dialog = Dialog.as_uas(
                self.invite, self.local_tag, state=state, local_contact=self.config.contact
            )
            self.dialogs[self.dialog.remote_tag] = self.dialog
        if status < 200:
            if self.state is CallState.CALLING:
                self._go(CallInput.PROVISIONAL)
            if reliable:
                self._offer_answer_out(response, key, reliable=True)
                self._send_reliable(response, now)
            else:
                self._commands.append(SendResponse(response))
            return
        del self._in[key]
        self._offer_answer_out(response, key, reliable=True)
        if status < 300:
            assert self.dialog is not None
            if self.dialog.state is DialogState.EARLY:
                self.dialog.advance(DialogInput.SUCCESS)
            self._go(CallInput.SUCCESS)
            self._start_uas_timer(self.invite, response, now)
            if self._reliable is not None and self._reliable.unacknowledged is not None:
                unacked = self._reliable.unacknowledged
                if unacked.body:
                    # RFC 3262 §3: no 2xx before the PRACK of a 1xx with an offer.
                    self._held_final = response
                    return
            self._send_2xx(response, now)
            return
        if self._reliable is not None:
            self._reliable.clear()
        self._commands.append(SendResponse(response))
        if self.offer_answer.pending == key:
            self.offer_answer.fire(OfferInput.WITHDRAW)
        if self.dialog is not None:
            self.dialog.terminate()
        self._go(CallInput.FAILURE)
        if self.end_reason is None:
            self._end("rejected", status)

    def respond_to(
        self,
        request: Request,
        status: int,
        *,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
        extra: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        """Answer an in-dialog request given by ``InDialogRequestReceived``."""
        key = (request.cseq.seq, request.method)
        if self._in.get(key) is not request:
            raise SessionError(f"no pending {request.method} {request.cseq.seq}")
        del self._in[key]
        response = self._build_response(request, status, body, content_type, extra, reason)
        if 200 <= status < 300 and request.method in ("INVITE", "UPDATE") and self.timer:
            self._refresh_uas_timer(request, response, now)
        if request.method in ("INVITE", "UPDATE"):
            self._offer_answer_out(response, key, reliable=True)
            if status >= 300 and self.offer_answer.pending == key:
                self.offer_answer.fire(OfferInput.WITHDRAW)
        if request.method == "INVITE" and 200 <= status < 300:
            self._send_2xx(response, now)
        else:
            self._commands.append(SendResponse(response))

    # ============================================================== UAC intents

    def cancel(self, now: float, *, reason: str | None = None) -> None:
        """Cancel our pending INVITE (RFC 3261 §9.1). A 2xx that crosses the
        CANCEL is ACKed then BYE'd (§15: the caller "MAY send a BYE")."""
        if self.role is not Role.UAC or self.invite is None:
            raise SessionError("only a UAC leg cancels")
        if self.state >= CallState.ANSWERED or self._cancelled:
            return
        self._cancelled = True
        self._commands.append(SendCancel(self.invite, reason))

    def ack(self, body: bytes, now: float, *, content_type: str = SDP) -> None:
        """Send the ACK carrying our answer to the offer a 2xx carried (§13.2.2.4)."""
        if self._awaiting_answer is None:
            raise SessionError("no 2xx is waiting for an answer")
        dialog, response = self._awaiting_answer
        self._awaiting_answer = None
        self._send_ack(dialog, response, now, body=body, content_type=content_type)

    def prack(self, body: bytes, now: float, *, content_type: str = SDP) -> None:
        """Send the PRACK with our answer to the offer a reliable 1xx carried."""
        if self._pending_prack is None:
            raise SessionError("no reliable provisional is waiting for an answer")
        dialog, response = self._pending_prack
        self._pending_prack = None
        self._send_prack(dialog, response, now, body, content_type)

    # ============================================================== both sides

    def reinvite(
        self,
        body: bytes,
        now: float,
        *,
        content_type: str = SDP,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A re-INVITE (hold/resume, codec change: RFC 3261 §14.1). An empty
        body asks the peer to offer in its 2xx (we answer with ``ack``)."""
        return self._in_dialog_offer("INVITE", body, content_type, tuple(extra), now)

    def update(
        self,
        body: bytes,
        now: float,
        *,
        content_type: str = SDP,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """An UPDATE (RFC 3311), with an offer or none (session refresh only)."""
        return self._in_dialog_offer("UPDATE", body, content_type, tuple(extra), now)

    def request(
        self,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """Any other in-dialog request (INFO, REFER, NOTIFY, OPTIONS, MESSAGE)."""
        if method in ("INVITE", "UPDATE", "ACK", "CANCEL", "BYE", "PRACK"):
            raise SessionError(f"{method} has its own method on InviteSession")
        dialog = self._require_dialog()
        request = dialog.create_request(
            method, body=body, content_type=content_type, extra=extra, via=self.config.via
        )
        self._start_out(request, dialog, offer=False)
        return request

    def bye(self, now: float) -> None:
        """End the session (RFC 3261 §15.1). The callee waits for the ACK of its
        2xx first: "the callee's UA MUST NOT send a BYE on a confirmed dialog
        until it has received an ACK for its 2xx response or until the server
        transaction times out"."""
        if self.state >= CallState.TERMINATING:
            return
        if self.role is Role.UAS and self.state is CallState.ANSWERED:
            self._bye_after_ack = True
            return
        self._end("bye-sent", None)
        self._send_bye(now)

    def hang_up(self, now: float, *, status: int = 480, reason: str | None = None) -> None:
        """Whatever ends this leg now: CANCEL, a final ``status`` (and ``reason``), or BYE."""
        if self.state >= CallState.TERMINATING:
            return
        if self.role is Role.UAC and self.state < CallState.ANSWERED:
            self.cancel(now)
        elif self.role is Role.UAS and self.state < CallState.ANSWERED:
            self.respond(status, now=now, reason=reason)
        else:
            self.bye(now)

    # ==================================================================== internals

    def _go(self, input_: CallInput) -> CallState:
        nxt = CALL_TRANSITIONS.get((self.state, input_))
        if nxt is None:
            raise SessionError(f"call {self.state.name} cannot take {input_.value}")
        self.state = nxt
        return nxt

    def _end(self, reason: str, status: int | None) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            self._events.append(SessionEnded(reason, status))

    def _require_dialog(self) -> Dialog:
        if self.dialog is None or self.state is not CallState.CONFIRMED:
            raise SessionError("no confirmed dialog")
        return self.dialog

    def _invite_pending(self) -> bool:
        """An INVITE transaction in progress on this dialog, either way."""
        return any(m == "INVITE" for _, m in self._out) or any(m == "INVITE" for _, m in self._in)

    def _send_initial(self, invite: Request, now: float) -> None:
        key = (invite.cseq.seq, "INVITE")
        if invite.body:
            self.offer_answer.fire(OfferInput.SEND_OFFER, key)
            self.offer_answer.last_local = invite.body
        self._out[key] = _Outgoing(invite, None, offer=bool(invite.body))
        hop = (
            parse_name_addr(invite.headers.get("Route") or "").uri
            if "Route" in (invite.headers)
            else invite.uri
        )
        self._commands.append(SendRequest(invite, hop))

    def _reoriginate(self, extra: list[tuple[str, str]], now: float) -> None:
        """Send the initial INVITE again with a higher CSeq (422, §7.1 RFC 4028)."""
        assert self.invite is not None
        old = self.invite
        headers = Headers()
        for name, value in old.headers:
            if name == "Via":
                value = f"SIP/2.0/{self.config.via[0].upper()} {self.config.via[1]}"
            elif name == "CSeq":
                value = str(CSeq(old.cseq.seq + 1, "INVITE"))
            elif any(name == n for n, _ in extra):
                continue
            headers.add(name, value)
        for name, value in extra:
            headers.add(name, value)
        invite = Request("INVITE", old.uri.copy(), headers, old.body)
        self.invite = invite
        if self.offer_answer.pending is not None:
            self.offer_answer.fire(OfferInput.WITHDRAW)
        self._send_initial(invite, now)

    def _in_dialog_offer(
        self,
        method: str,
        body: bytes,
        content_type: str,
        extra: tuple[tuple[str, str], ...],
        now: float,
    ) -> Request:
        dialog = self._require_dialog()
        if body and self.offer_answer.state is not OfferState.IDLE:
            raise OfferPending("an offer is pending")
        if method == "INVITE" and self._invite_pending():
            # §14.1: "a UAC MUST NOT initiate a re-INVITE transaction while
            # another INVITE transaction is in progress in either direction".
            raise OfferPending("an INVITE transaction is in progress")
        return self._send_in_dialog(method, body, content_type, extra, now, dialog=dialog)

    def _send_in_dialog(
        self,
        method: str,
        body: bytes,
        content_type: str,
        extra: tuple[tuple[str, str], ...],
        now: float,
        *,
        dialog: Dialog | None = None,
        refresh: bool = False,
    ) -> Request:
        dialog = dialog or self._require_dialog()
        headers = list(extra)
        if self.timer is not None:
            headers.append(("Supported", "timer"))
            headers.extend(
                uac_request_headers(
                    self.timer.interval,
                    self.config.min_se,
                    "uac" if self.timer.we_refresh else "uas",
                )
            )
        request = dialog.create_request(
            method,
            body=body,
            content_type=content_type if body else None,
            extra=headers,
            via=self.config.via,
        )
        key = (request.cseq.seq, method)
        if body:
            self.offer_answer.fire(OfferInput.SEND_OFFER, key)
            self.offer_answer.last_local = body
        self._start_out(request, dialog, offer=bool(body), refresh=refresh)
        return request

    def _start_out(
        self, request: Request, dialog: Dialog, *, offer: bool, refresh: bool = False
    ) -> None:
        self._out[(request.cseq.seq, request.method)] = _Outgoing(request, dialog, offer, refresh)
        self._commands.append(SendRequest(request, dialog.next_hop()))

    def _send_bye(self, now: float) -> None:
        dialog = self.dialog
        if dialog is None or self.state >= CallState.TERMINATING:
            self.state = max(self.state, CallState.TERMINATED)
            return
        bye = dialog.create_request("BYE", via=self.config.via)
        self._go(CallInput.BYE_SENT)
        self._start_out(bye, dialog, offer=False)
        # §15.1.2: pending requests "the UAS MUST still respond to"; 487 them.
        for key, request in list(self._in.items()):
            del self._in[key]
            self._commands.append(SendResponse(make_response(request, 487, to_tag=self.local_tag)))
        self._ok.clear()
        if self._reliable is not None:
            self._reliable.clear()
        self._retry = None

    def _find_out_by_branch(self, branch: str, method: str) -> _Outgoing | None:
        for out in self._out.values():
            if (
                out.request.method == method
                and out.request.headers.get("Via")
                and (out.request.branch == branch)
            ):
                return out
        return None

    def _build_response(
        self,
        request: Request,
        status: int,
        body: bytes,
        content_type: str,
        extra: Iterable[tuple[str, str]],
        reason: str | None,
    ) -> Response:
        headers = list(extra)
        if request.method in ("INVITE", "UPDATE") and 100 < status < 300:
            headers.append(("Contact", self.config.contact))
        if 200 <= status < 300 and request.method == "INVITE":
            headers.append(("Allow", ", ".join(self.config.allow)))
        if body:
            headers.append(("Content-Type", content_type))
        return make_response(
            request, status, reason, to_tag=self.local_tag, extra=headers, body=body
        )

    def _offer_answer_out(
        self, response: Response, key: tuple[int, str], *, reliable: bool
    ) -> None:
        """Offer/answer for a response we send with a body (RFC 3264, RFC 6337)."""
        oa = self.offer_answer
        if not response.body or response.status >= 300:
            return
        if oa.state is OfferState.REMOTE_OFFER and oa.pending == key:
            if response.status >= 200 or reliable:
                oa.fire(OfferInput.SEND_ANSWER)
            oa.last_local = response.body
        elif (
            oa.state is OfferState.IDLE
            and (response.status >= 200 or reliable)
            and (key[1] == "INVITE")
        ):
            # §13.3.1.1: an INVITE without offer gets it in the first reliable
            # non-failure response; the answer comes in the ACK (or PRACK).
            if self._offer_already_done(key):
                return
            oa.fire(OfferInput.SEND_OFFER, key)
            oa.last_local = response.body

    def _offer_already_done(self, key: tuple[int, str]) -> bool:
        # A 2xx repeating the SDP of a reliable 1xx that already finished the
        # exchange is not a new offer (RFC 6337 §3.1.1).
        return (
            self._reliable is not None
            and bool(self._reliable.acknowledged)
            and (self.invite is not None and key == (self.invite.cseq.seq, "INVITE"))
        )

    def _send_2xx(self, response: Response, now: float) -> None:
        """§13.3.1.4: "The 2xx response is passed to the transport with an
        interval that starts at T1 seconds and doubles for each retransmission
        until it reaches T2 seconds"; it stops when the ACK arrives."""
        if self._reliable is not None:
            self._reliable.clear()
        self._commands.append(SendResponse(response))
        t1 = self.config.t1
        self._ok[response.cseq.seq] = _Retransmit(response, now + t1, t1, now + 64 * t1)

    def _send_reliable(self, response: Response, now: float) -> None:
        if self._reliable is None:
            first = self.ids.rng.randint(1, 2**31 - 1)
            self._reliable = ReliableProvisionals(first, self.config.t1)
        out = self._reliable.send(response, now)
        if out is not None:
            self._commands.append(SendResponse(out))

    def _start_uas_timer(self, request: Request, response: Response, now: float) -> None:
        try:
            negotiated = uas_negotiate(
                request,
                local_min_se=self.config.min_se,
                local_interval=self.config.session_expires,
            )
        except IntervalTooSmall:
            return
        if negotiated is None:
            return
        for name, value in uas_response_headers(negotiated):
            response.headers.add(name, value)
        self._set_timer(negotiated, we_are_uac=False, now=now)

    def _refresh_uas_timer(self, request: Request, response: Response, now: float) -> None:
        try:
            negotiated = (
                uas_negotiate(request, local_min_se=self.config.min_se, local_interval=None)
                if session_expires_of(request)
                else None
            )
        except IntervalTooSmall:
            negotiated = None
        if negotiated is None and self.timer is not None:
            # A refresh without Session-Expires keeps the interval (§9: the
            # request is still a refresh); we stay the refresher we were.
            refresher = "uas" if self.timer.we_refresh else "uac"
            negotiated = Negotiated(self.timer.interval, refresher, False)
        if negotiated is None:
            return
        for name, value in uas_response_headers(negotiated):
            response.headers.add(name, value)
        self._set_timer(negotiated, we_are_uac=False, now=now)

    def _set_timer(self, negotiated: Negotiated, *, we_are_uac: bool, now: float) -> None:
        first = self.timer is None
        if self.timer is None:
            self.timer = SessionTimer.start(negotiated, we_are_uac, now)
        else:
            self.timer.restart(negotiated, we_are_uac, now)
        if first:
            self._events.append(
                SessionTimerStarted(
                    negotiated.interval, negotiated.refresher, self.timer.we_refresh
                )
            )

    def _refresh(self, now: float) -> None:
        """RFC 4028 §10: refresh at half the interval, with UPDATE when the peer
        allows it (no body), else a re-INVITE repeating our last SDP."""
        assert self.timer is not None
        if (
            self._invite_pending()
            or self.offer_answer.state is not OfferState.IDLE
            or any(o.refresh for o in self._out.values())
        ):
            self.timer.started_at = now - self.timer.interval / 2 + self.config.t1 * 4
            return
        peer_allow = self._peer_allow()
        if self.config.refresh_with_update and "update" in peer_allow:
            self._send_in_dialog("UPDATE", b"", SDP, (), now, refresh=True)
        else:
            self._send_in_dialog("INVITE", self.offer_answer.last_local, SDP, (), now, refresh=True)
        # Until the refresh answers, expire as the non-refresher would.
        self.timer.we_refresh = False

    def _peer_allow(self) -> set[str]:
        """The methods the peer allows, lower-cased."""
        assert self.invite is not None
        source: Request | Response | None = (
            self.invite if self.role is Role.UAS else self._answer_2xx
        )
        return source.headers.tokens("Allow") if source is not None else set()

    def _schedule_retry(
        self,
        method: str,
        status: int,
        body: bytes,
        content_type: str,
        extra: tuple[tuple[str, str], ...],
        now: float,
        after: float | None = None,
    ) -> None:
        if after is None:
            # §14.1: "If the UAC is the owner of the Call-ID of the dialog ID [...]
            # T has a randomly chosen value between 2.1 and 4 seconds in units of
            # 10 ms. If the UAC is not the owner [...] between 0 and 2 seconds".
            rng = self.ids.rng
            ticks = rng.randint(210, 400) if self.owns_call_id else rng.randint(0, 200)
            after = ticks / 100
        self._retry = _Retry(now + after, method, body, content_type, extra)
        self._events.append(RetryScheduled(method, status, now + after))

    # ------------------------------------------------------------------ receiving

    def _on_response(self, response: Response, now: float) -> None:
        key = (response.cseq.seq, response.cseq.method)
        out = self._out.get(key)
        if (
            response.cseq.method == "INVITE"
            and self.invite is not None
            and (response.cseq.seq == self.invite.cseq.seq)
            and self.role is Role.UAC
        ):
            self._on_invite_response(response, out, now)
            return
        if out is None:
            if response.cseq.method == "INVITE" and 200 <= response.status < 300:
                # A retransmitted 2xx to a re-INVITE: re-send its ACK.
                ack = self._acks.get((response.to_tag or "", response.cseq.seq))
                if ack is not None:
                    self._commands.append(SendAck(ack, self._ack_hop(response)))
            return
        if response.status < 200:
            return
        self._on_final(out, response, response.status, now)

    def _ack_hop(self, response: Response) -> Uri:
        dialog = self.dialogs.get(response.to_tag or "")
        assert dialog is not None
        return dialog.next_hop()

    def _on_invite_response(self, response: Response, out: _Outgoing | None, now: float) -> None:
        """The initial INVITE's responses (UAC): forks, PRACK, 2xx and its ACK."""
        assert self.invite is not None
        status = response.status
        tag = response.to_tag
        if status < 200:
            if out is None or self.state > CallState.PROCEEDING:
                return
            dialog: Dialog | None = None
            if tag is not None:
                dialog = self.dialogs.get(tag)
                if dialog is None:
                    dialog = Dialog.as_uac(self.invite, response)
                    dialog.local_contact = self.config.contact
                    self.dialogs[tag] = dialog
                else:
                    dialog.receive_response(self.invite, response)
            reliable = is_reliable_provisional(response) and dialog is not None
            if reliable and not self._rseq.accept(response):
                return  # a retransmission or out of order: not processed (§4)
            sdp = self._sdp_in_response(response, out.request, reliable=reliable)
            self._go(CallInput.PROVISIONAL)
            self._events.append(
                ProvisionalReceived(response, dialog.id if dialog else None, sdp, reliable)
            )
            if reliable and dialog is not None:
                if sdp is not None and sdp.kind == "offer":
                    self._pending_prack = (dialog, response)  # answer via prack()
                else:
                    self._send_prack(dialog, response, now, b"", SDP)
            return
        if 200 <= status < 300:
            self._on_invite_2xx(response, out, now)
            return
        if out is None:
            return
        if status == 422 and self._requested_se and not self._cancelled:
            interval = interval_after_422(response, self._requested_se)
            if interval > self._requested_se:
                self._requested_se = interval
                del self._out[(response.cseq.seq, "INVITE")]
                self._reoriginate(uac_request_headers(interval, interval), now)
                return
        if status in (401, 407) and self._answer_challenge(response, now):
            return
        self._on_final(out, response, status, now)

    def _answer_challenge(self, response: Response, now: float) -> bool:
        """RFC 3261 §22.2: re-send the INVITE with credentials and a new CSeq
        (same Call-ID and From tag, §8.1.3.5), at most ``max_auth_attempts`` times."""
        authenticate = self.config.authenticate
        if authenticate is None or self._cancelled or self.invite is None:
            return False
        if self._auth_attempts >= self.config.max_auth_attempts:
            return False
        answer = authenticate(response, self.invite)
        if answer is None:
            return False
        self._auth_attempts += 1
        del self._out[(response.cseq.seq, "INVITE")]
        self._reoriginate([answer], now)
        return True

    def _on_invite_2xx(self, response: Response, out: _Outgoing | None, now: float) -> None:
        assert self.invite is not None
        tag = response.to_tag or ""
        known = self._acks.get((tag, response.cseq.seq))
        if known is not None:
            # §13.2.2.4: "The UAC core MUST [...] retransmit the ACK for each 2xx
            # retransmission it receives".
            self._commands.append(SendAck(known, self.dialogs[tag].next_hop()))
            return
        dialog = self.dialogs.get(tag)
        if dialog is None:
            dialog = Dialog.as_uac(self.invite, response)
            dialog.local_contact = self.config.contact
            self.dialogs[tag] = dialog
        elif self._awaiting_answer is not None and self._awaiting_answer[0] is dialog:
            return  # a retransmission while the B2BUA prepares the answer
        else:
            dialog.receive_response(self.invite, response)
            if dialog.state is DialogState.EARLY:
                dialog.advance(DialogInput.SUCCESS)
        self._out.pop((response.cseq.seq, "INVITE"), None)
        if self.dialog is not None and self.dialog is not dialog:
            # §13.2.2.4: a 2xx from another fork: ACK it, then BYE it.
            self._send_ack(dialog, response, now, body=b"", content_type=SDP)
            bye = dialog.create_request("BYE", via=self.config.via)
            self._start_out(bye, dialog, offer=False)
            dialog.terminate()
            return
        self.dialog = dialog
        self._answer_2xx = response
        for other in self.dialogs.values():
            if other is not dialog and other.state is DialogState.EARLY:
                other.terminate()
        self._go(CallInput.SUCCESS)
        sdp = self._sdp_in_response(response, self.invite, reliable=True)
        self._start_uac_timer(response, now)
        if self._cancelled or self.state is CallState.TERMINATING:
            # The CANCEL lost the race (§9.1): ACK the 2xx, then BYE.
            self._send_ack(dialog, response, now, body=b"", content_type=SDP)
            self._end("cancelled", 200)
            self._send_bye(now)
            return
        awaiting = sdp is not None and sdp.kind == "offer"
        self._events.append(CallAnswered(response, dialog.id, sdp, awaiting))
        if awaiting:
            self._awaiting_answer = (dialog, response)
        else:
            self._send_ack(dialog, response, now, body=b"", content_type=SDP)

    def _start_uac_timer(self, response: Response, now: float) -> None:
        if not self._requested_se:
            return
        negotiated = uac_negotiated(response, self._requested_se)
        if negotiated is not None:
            self._set_timer(negotiated, we_are_uac=True, now=now)

    def _send_ack(
        self,
        dialog: Dialog,
        response: Response,
        now: float,
        *,
        body: bytes,
        content_type: str,
    ) -> None:
        """§13.2.2.4: the ACK for a 2xx, built like any in-dialog request "with the
        exception of the CSeq [...]. The sequence number of the CSeq header field
        MUST be the same as the INVITE being acknowledged, but the CSeq method
        MUST be ACK"; its own branch."""
        seq = response.cseq.seq
        ack = dialog.create_request(
            "ACK",
            cseq=seq,
            body=body,
            content_type=content_type if body else None,
            via=self.config.via,
        )
        top = ack.headers.get("Via") or ""
        ack.headers.replace_first("Via", f"{top};branch={self.ids.new_branch()}")
        self._body_sent(body)
        self._acks[(dialog.remote_tag, seq)] = ack
        self._commands.append(SendAck(ack, dialog.next_hop()))
        if dialog is self.dialog and self.state is CallState.ANSWERED:
            self._go(CallInput.ACK)

    def _body_sent(self, body: bytes) -> None:
        """Our ACK or PRACK carries ``body``: the answer to a pending remote offer."""
        if body:
            oa = self.offer_answer
            if oa.state is OfferState.REMOTE_OFFER:
                oa.fire(OfferInput.SEND_ANSWER)
            oa.last_local = body

    def _send_prack(
        self, dialog: Dialog, response: Response, now: float, body: bytes, content_type: str
    ) -> None:
        """RFC 3262 §7.2: PRACK in the early dialog, RAck from the 1xx."""
        prack = dialog.create_request(
            "PRACK",
            body=body,
            content_type=content_type if body else None,
            extra=[("RAck", str(rack_for(response)))],
            via=self.config.via,
        )
        self._body_sent(body)
        self._start_out(prack, dialog, offer=False)

    def _sdp_in_response(
        self, response: Response, request: Request, *, reliable: bool
    ) -> Sdp | None:
        """Classify the body of a response to our ``request`` (RFC 6337 §2)."""
        if not response.body or response.status >= 300:
            return None
        ctype = response.content_type or SDP
        key = (request.cseq.seq, request.method)
        oa = self.offer_answer
        final_or_reliable = response.status >= 200 or reliable
        if oa.state is OfferState.LOCAL_OFFER and oa.pending == key:
            if final_or_reliable:
                oa.fire(OfferInput.RECEIVE_ANSWER)
            return Sdp("answer", response.body, ctype)
        if oa.state is OfferState.IDLE and final_or_reliable and request.method == "INVITE":
            if request.body or (
                response.status >= 200
                and self._rseq.last
                and request is self.invite
                and oa.completed
            ):
                # The answer repeated (a 2xx after a reliable 1xx finished O/A).
                return Sdp("answer", response.body, ctype)
            oa.fire(OfferInput.RECEIVE_OFFER, key)
            return Sdp("offer", response.body, ctype)
        if oa.state is OfferState.IDLE and request.body:
            return Sdp("answer", response.body, ctype)  # a preview or repeat
        return None

    def _on_final(self, out: _Outgoing, response: Response | None, status: int, now: float) -> None:
        request = out.request
        key = (request.cseq.seq, request.method)
        self._out.pop(key, None)
        if request.method == "INVITE" and request is self.invite and self.role is Role.UAC:
            # The initial INVITE failed (or timed out): the leg is over.
            if self.offer_answer.pending == key:
                self.offer_answer.fire(OfferInput.WITHDRAW)
            for dialog in self.dialogs.values():
                dialog.terminate()
            self._go(CallInput.FAILURE)
            self.state = CallState.TERMINATED
            self._events.append(CallFailed(status, response))
            self._end("cancelled" if self._cancelled else "failed", status)
            return
        if request.method == "BYE":
            if self.state is CallState.TERMINATING:
                self._go(CallInput.BYE_DONE)
            return
        if request.method == "PRACK":
            if response is not None and response.body and 200 <= status < 300:
                self._sdp_in_response(response, request, reliable=True)
            return
        sdp: Sdp | None = None
        if response is not None and 200 <= status < 300:
            if out.dialog is not None:
                out.dialog.receive_response(request, response)
            sdp = self._sdp_in_response(response, request, reliable=True)
        elif self.offer_answer.pending == key:
            self.offer_answer.fire(OfferInput.WITHDRAW)
        if request.method == "INVITE" and response is not None and 200 <= status < 300:
            assert out.dialog is not None
            if sdp is not None and sdp.kind == "offer":
                self._awaiting_answer = (out.dialog, response)
            else:
                self._send_ack(out.dialog, response, now, body=b"", content_type=SDP)
        if out.refresh or (request.method in ("INVITE", "UPDATE") and self.timer):
            self._after_refresh(out, response, status, now)
        retryable = status == 491 or (
            status == 500 and response is not None and _retry_after(response) is not None
        )
        if retryable and request.method in ("INVITE", "UPDATE") and not out.refresh:
            after = None if status == 491 or response is None else _retry_after(response)
            extra = tuple((n, v) for n, v in request.headers if n not in _REBUILT_HEADERS)
            ctype = request.headers.get("Content-Type") or SDP
            self._schedule_retry(request.method, status, request.body, ctype, extra, now, after)
            return
        if status in (408, 481):
            # RFC 3261 §12.2.1.2: "If the response for a request within a dialog is
            # a 481 (Call/Transaction Does Not Exist) or a 408 (Request Timeout),
            # the UAC SHOULD terminate the dialog."
            self._events.append(
                InDialogResponseReceived(request, _or_synth(response, request, status), sdp)
            )
            self._end("refresh-failed" if out.refresh else "failed", status)
            self._send_bye(now)
            return
        if not out.refresh:
            self._events.append(
                InDialogResponseReceived(request, _or_synth(response, request, status), sdp)
            )

    def _after_refresh(
        self, out: _Outgoing, response: Response | None, status: int, now: float
    ) -> None:
        if self.timer is None:
            return
        if response is not None and 200 <= status < 300:
            se = session_expires_of(response)
            if se is not None:
                negotiated = Negotiated(se.interval, se.refresher or "uac", True)
            else:
                negotiated = Negotiated(self.timer.interval, "uac", False)
            self._set_timer(negotiated, we_are_uac=True, now=now)
        elif out.refresh and status == 422 and response is not None:
            self.timer.interval = interval_after_422(response, self.timer.interval)
            self.timer.we_refresh = True
            self.timer.started_at = now - self.timer.interval / 2
        elif out.refresh and status not in (408, 481):
            # Not fatal (RFC 4028 §10 leaves it to expiry): try again later.
            self.timer.we_refresh = True
            self.timer.started_at = now - self.timer.interval / 2 + 4 * self.config.t1

    def _on_request(self, request: Request, now: float) -> None:
        method = request.method
        if self.role is Role.UAS and request.to_tag is None:
            return  # the INVITE retransmissions are absorbed by the layer
        dialog = self.dialogs.get(request.from_tag or "")
        if (
            dialog is None
            or not dialog.matches_request(request)
            or (dialog.state is DialogState.TERMINATED and method != "BYE")
        ):
            # §12.2.2: "If the UAS wishes to reject the request because it does
            # not wish to recreate the dialog, it MUST respond to the request
            # with a 481 (Call/Transaction Does Not Exist) status code".
            self._reply(request, 481)
            return
        try:
            dialog.receive_request(request)
        except SipError as err:
            self._reply(request, err.status_code, err.reason)
            return
        if method == "BYE":
            self._on_bye(request, now)
        elif method == "PRACK":
            self._on_prack(request, now)
        elif method in ("INVITE", "UPDATE"):
            self._on_offer_request(request, now)
        else:
            self._in[(request.cseq.seq, method)] = request
            self._events.append(InDialogRequestReceived(request, None))

    def _reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._commands.append(
            SendResponse(make_response(request, status, reason, to_tag=self.local_tag, extra=extra))
        )

    def _on_bye(self, request: Request, now: float) -> None:
        """§15.1.2: answer 200, 487 whatever is pending, end the session."""
        self._reply(request, 200)
        if self.role is Role.UAS and self.invite is not None:
            key = (self.invite.cseq.seq, "INVITE")
            if key in self._in:
                # §15.1.2 on an early dialog: the INVITE gets 487.
                self._commands.append(
                    SendResponse(make_response(self.invite, 487, to_tag=self.local_tag))
                )
                del self._in[key]
        for key, pending in list(self._in.items()):
            del self._in[key]
            self._commands.append(SendResponse(make_response(pending, 487, to_tag=self.local_tag)))
        self._ok.clear()
        self._retry = None
        if self._reliable is not None:
            self._reliable.clear()
        for dialog in self.dialogs.values():
            dialog.terminate()
        self._go(CallInput.BYE_RECEIVED)
        self._end("bye-received", None)

    def _on_prack(self, request: Request, now: float) -> None:
        """RFC 3262 §3: a PRACK matching the unacknowledged 1xx gets 200 (and any
        body is handled as offer/answer); otherwise 481."""
        raw = request.headers.get("RAck")
        try:
            rack = parse_rack(raw or "")
        except SipError:
            self._reply(request, 400, "Bad RAck")
            return
        reliable = self._reliable
        if reliable is None:
            self._reply(request, 481)
            return
        matched, nxt = reliable.prack(rack, now)
        if not matched:
            self._reply(request, 481)
            return
        sdp = self._sdp_in_request(request)
        self._reply(request, 200)
        self._events.append(PrackReceived(request, sdp))
        if nxt is not None:
            self._commands.append(SendResponse(nxt))
        elif self._held_final is not None:
            held, self._held_final = self._held_final, None
            self._send_2xx(held, now)

    def _sdp_in_request(self, request: Request) -> Sdp | None:
        if not request.body:
            return None
        ctype = request.content_type or SDP
        oa = self.offer_answer
        if oa.state is OfferState.LOCAL_OFFER:
            oa.fire(OfferInput.RECEIVE_ANSWER)
            return Sdp("answer", request.body, ctype)
        oa.fire(OfferInput.RECEIVE_OFFER, (request.cseq.seq, request.method))
        return Sdp("offer", request.body, ctype)

    def _on_offer_request(self, request: Request, now: float) -> None:
        """A re-INVITE or UPDATE, with glare handling (RFC 3261 §14.2, RFC 3311 §5.2)."""
        method = request.method
        if self.state is not CallState.CONFIRMED and not (
            method == "UPDATE" and self.state in (CallState.PROCEEDING, CallState.ANSWERED)
        ):
            self._reply(request, 491 if self.state is CallState.ANSWERED else 481)
            return
        oa = self.offer_answer
        retry = str(self.ids.rng.randint(0, 10))
        if method == "INVITE":
            if any(m == "INVITE" for _, m in self._out):
                # §14.2: "A UAS that receives an INVITE on a dialog while an INVITE
                # it had sent on that dialog is in progress MUST return a 491".
                self._reply(request, 491)
                return
            if any(m == "INVITE" for _, m in self._in) or self._ok:
                # "A UAS that receives a second INVITE before it sends the final
                # response to a first INVITE with a lower CSeq sequence number on
                # the same dialog MUST return a 500 [...] Retry-After".
                self._reply(request, 500, extra=[("Retry-After", retry)])
                return
        if request.body or method == "INVITE":
            if oa.state is OfferState.LOCAL_OFFER:
                self._reply(request, 491)
                return
            if oa.state is OfferState.REMOTE_OFFER:
                # RFC 3311 §5.2: "MUST reject the UPDATE with a 500 [...] Retry-After".
                self._reply(request, 500, extra=[("Retry-After", retry)])
                return
        sdp = self._sdp_in_request(request)
        self._in[(request.cseq.seq, method)] = request
        self._events.append(InDialogRequestReceived(request, sdp))

    def _on_ack(self, ack: Request, now: float) -> None:
        seq = ack.cseq.seq
        retx = self._ok.pop(seq, None)
        if retx is None:
            return  # a retransmitted ACK, or stray
        sdp: Sdp | None = None
        oa = self.offer_answer
        if ack.body and oa.state is OfferState.LOCAL_OFFER and oa.pending == (seq, "INVITE"):
            oa.fire(OfferInput.RECEIVE_ANSWER)
            sdp = Sdp("answer", ack.body, ack.content_type or SDP)
        elif oa.state is OfferState.LOCAL_OFFER and oa.pending == (seq, "INVITE"):
            # RFC 6337 §3.1.3: an ACK without the answer: the offer fails; BYE.
            oa.fire(OfferInput.WITHDRAW)
        if self.state is CallState.ANSWERED:
            self._go(CallInput.ACK)
        self._events.append(CallConfirmed(ack, sdp))
        if self._bye_after_ack:
            self._bye_after_ack = False
            self._end("bye-sent", None)
            self._send_bye(now)

    def _on_cancel(self, cancel: Request, now: float) -> None:
        """§9.2: "the UAS SHOULD respond to the INVITE with a 487"."""
        assert self.invite is not None
        if (self.invite.cseq.seq, "INVITE") not in self._in:
            return
        self._end("cancelled", 487)
        self._events.append(CallCancelled(cancel))
        self.respond(487, now=now)


class LocalOrigin(InviteSession):
    """The A side of a call the switch places on its own behalf: an INVITE that
    never crossed the network (a blind transfer's new call, dialled for the
    referrer while the transferee waits in its own call).

    It answers like a UAS leg, with no peer: ``respond`` queues a ``SendResponse``
    that the driver must *observe* instead of sending (18x: progress to report,
    2xx: the target answered, 3xx-6xx: the attempt failed); a 2xx confirms the leg
    at once (no ACK will come), ``hang_up``/``bye`` end it at once (no BYE goes
    out), and it never matches a network event, arms a timer or sends a request.
    """

    @classmethod
    def local(
        cls,
        config: SessionConfig,
        ids: SessionIds,
        *,
        from_: str,
        to: str,
        request_uri: Uri,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
    ) -> LocalOrigin:
        leg = cls(Role.UAS, config, ids)
        leg.call_id = ids.new_call_id()
        leg.local_tag = ids.new_tag()
        from_addr = parse_name_addr(from_)
        from_addr.params["tag"] = ids.new_tag()
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{config.via[0].upper()} {config.via[1]}")
        headers.add("From", str(from_addr))
        headers.add("To", to)
        headers.add("Call-ID", leg.call_id)
        headers.add("CSeq", str(CSeq(1, "INVITE")))
        headers.add("Contact", config.contact)
        if body:
            headers.add("Content-Type", content_type)
        leg.invite = Request("INVITE", request_uri.copy(), headers, body)
        leg._in[(1, "INVITE")] = leg.invite
        if body:
            leg.offer_answer.fire(OfferInput.RECEIVE_OFFER, (1, "INVITE"))
            leg.initial_sdp = Sdp("offer", body, content_type)
        return leg

    def respond(
        self,
        status: int,
        *,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
        reliable: bool = False,
        extra: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        assert self.invite is not None
        if (1, "INVITE") not in self._in:
            raise SessionError("the INVITE has been answered already")
        response = self._build_response(self.invite, status, body, content_type, extra, reason)
        self._commands.append(SendResponse(response))
        if status < 200:
            self.state = max(self.state, CallState.PROCEEDING)
            return
        del self._in[(1, "INVITE")]
        if status < 300:
            self._offer_answer_out(response, (1, "INVITE"), reliable=True)
            self.state = CallState.CONFIRMED
            return
        self.state = CallState.TERMINATED
        self._end("rejected", status)

    def hang_up(self, now: float, *, status: int = 480, reason: str | None = None) -> None:
        if self.state < CallState.ANSWERED:
            self.respond(status, now=now, reason=reason)
        else:
            self.bye(now)

    def bye(self, now: float) -> None:
        if self.state < CallState.TERMINATED:
            self.state = CallState.TERMINATED
            self._end("bye-sent", None)

    def cancel(self, now: float, *, reason: str | None = None) -> None:
        raise SessionError("a local origin has no INVITE to cancel")

    def handle(self, event: Event, now: float) -> bool:
        return False

    def handle_timer(self, now: float) -> None:
        return None

    def get_timer(self) -> float | None:
        return None

    def _require_dialog(self) -> Dialog:
        raise SessionError("a local origin has no peer to send requests to")

    def respond_to(
        self,
        request: Request,
        status: int,
        *,
        now: float,
        body: bytes = b"",
        content_type: str = SDP,
        extra: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        raise SessionError("a local origin receives no requests")


_REBUILT_HEADERS = frozenset(
    {
        "Via",
        "Max-Forwards",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Route",
        "Contact",
        "Content-Type",
        "Content-Length",
        "Session-Expires",
        "Min-SE",
        "Supported",
    }
)


def _or_synth(response: Response | None, request: Request, status: int) -> Response:
    """The response, or one made up for a timeout/transport error (§8.1.3.1)."""
    return response if response is not None else make_response(request, status)
