"""The transaction layer: matching, timers and the pull API (RFC 3261 §17).

Sans-I/O like aioquic's ``QuicConnection``: messages and time in, datagrams,
one deadline and events out. The asyncio stack pumps it::

    layer.receive(message, source, now)         # parsed by the transport
    layer.send_request(request, dest, now)      # TU intents: queue output only
    layer.send_response(response, now)
    layer.handle_timer(now)                     # when get_timer() is due
    for data, dest in layer.datagrams_to_send(): transport.send(data, dest)
    while (event := layer.next_event()) is not None: tu.handle(event)
    loop.call_at(layer.get_timer(), ...)        # re-arm the one timer

Matching (RFC 3261 §17.1.3, §17.2.3):

- a response goes to the client transaction whose key is (top Via branch, CSeq
  method); otherwise it is a ``StrayResponseReceived``;
- a request with a magic-cookie branch goes to the server transaction whose key
  is (branch, sent-by, method), ACK looking for the INVITE; without the cookie
  (RFC 2543 peers) the fallback compares Request-URI, To tag, From tag,
  Call-ID, CSeq number and top Via, and an ACK's To tag is compared with the
  To tag of the final response the INVITE server transaction sent;
- a CANCEL gets its own non-INVITE server transaction (same branch, method
  CANCEL) and is matched to the transaction it cancels by the same rules with
  its method ignored (§9.2).

Choices made here (and tested):

- **Via branch.** ``send_request`` wants the top Via already in the request (the
  stack knows the sent-by of the transport it picked). If that Via has no
  ``branch``, the layer adds one from ``new_branch()``; a branch without the
  magic cookie is refused (§8.1.1.7). ``send_ack_2xx`` does the same.
- **CANCEL.** The layer answers a CANCEL itself: 200 when it matched a server
  transaction (§9.2: "the UAS answers the CANCEL request itself with a 200
  (OK) response"), 481 when it matched none. Only a CANCEL matching an INVITE
  server transaction still in Proceeding becomes a ``CancelReceived`` event; the
  TU then sends 487 to the INVITE with ``send_response``.
- **100 Trying.** The INVITE server transaction sends 100 at once by default;
  ``TimerConfig(trying_delay=0.2)`` waits 200 ms for the TU instead (§17.2.1).
- **Outgoing CANCEL** (``cancel``) is built from the INVITE per §9.1 and held
  back until a provisional response arrives (§9.1: "If no provisional response
  has been received, the CANCEL request MUST NOT be sent"); it is dropped if a
  final response or a timeout comes first. Once it is sent, the INVITE waits
  64*T1 for its final response, then times out (§9.1).
- **Lingering.** Once a transaction only absorbs retransmissions (Completed,
  Confirmed, Accepted: up to 64*T1), its machine releases its parsed messages
  (``Transaction.release``) and keeps their bytes; timers cancelled by a state
  change are swept out of the deadline heap when it doubles its live size.
- **Errors.** A network input that a machine's table does not accept is
  discarded. A TU input it does not accept raises ``UnexpectedInput``; a
  response with no server transaction raises ``NoSuchTransaction`` (send late 2xx
  retransmissions with ``send_stateless``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from switch.sip.endpoint import Endpoint
from switch.sip.errors import SipError
from switch.sip.events import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.headers import Via, parse_via
from switch.sip.message import Message, Request, Response, make_response
from switch.sip.transaction import (
    TIMER_INPUT,
    ClientKey,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    PassUp,
    ServerKey,
    State,
    TimedOut,
    Timer,
    TimerArmed,
    TimerConfig,
    Transaction,
    TransactionError,
    TransactionKey,
    Transmit,
    TransportFailed,
    UnexpectedInput,
    build_cancel,
    client_transaction,
    response_input,
    server_transaction,
    tu_response_input,
)
from switch.sip.via import (
    MAGIC_COOKIE,
    has_magic_cookie,
    response_destination,
    stamp_received,
)

DEFAULT_TIMERS = TimerConfig()
# Below this many heap entries, cancelled timers are left to expire.
_COMPACT_MIN = 1024


class NoSuchTransaction(TransactionError, LookupError):
    """The TU answered a request whose server transaction does not exist (any more)."""


# States in which a transaction's outcome is still open (see TransactionLayer.pending).
_OPEN_STATES = frozenset({State.CALLING, State.TRYING, State.PROCEEDING})
# States that only absorb retransmissions: the machine drops its parsed messages
# (``Transaction.release``) and lingers with their bytes.
_ABSORBING_STATES = frozenset({State.COMPLETED, State.CONFIRMED, State.ACCEPTED, State.TERMINATED})


@dataclass(slots=True, eq=False)
class _Entry:
    """A live transaction: its machine, where its messages go, its index entries."""

    key: TransactionKey
    machine: Transaction
    dest: Endpoint
    source: Endpoint | None = None  # server transactions: where the request came from
    aliases: tuple[Hashable, ...] = ()
    alive: bool = True


def _via_identity(via: Via) -> str:
    """A top Via as RFC 2543 matching compares it, minus what §18.2.1 stamps."""
    params = ";".join(
        f"{k.lower()}={v}" if v is not None else k.lower()
        for k, v in sorted(via.params.items())
        if k.lower() not in ("received", "rport")
    )
    return f"{via.protocol}/{via.transport.upper()} {via.host.lower()}:{via.port};{params}"


def _legacy_fields(request: Request, top: Via, to_tag: str | None) -> tuple[str, ...]:
    """§17.2.3: "the Request-URI, To tag, From tag, Call-ID, CSeq, and top Via
    header field" (the CSeq method is in the key's ``method``)."""
    return (
        str(request.uri),
        to_tag or "",
        request.from_tag or "",
        request.call_id,
        str(request.cseq.seq),
        _via_identity(top),
    )


class TransactionLayer:
    """All client and server transactions of one SIP stack, with their timers.

    ``new_branch`` returns a fresh, unguessable branch starting with "z9hG4bK";
    ``new_tag`` (optional) a fresh To tag for the responses the layer builds
    itself (to CANCEL): by default a ``new_branch()`` without its cookie.
    """

    def __init__(
        self,
        *,
        config: TimerConfig = DEFAULT_TIMERS,
        new_branch: Callable[[], str],
        new_tag: Callable[[], str] | None = None,
    ) -> None:
        self._config = config
        self._new_branch = new_branch
        self._new_tag = new_tag or (lambda: self._branch()[len(MAGIC_COOKIE) :])
        self._clients: dict[ClientKey, _Entry] = {}
        self._servers: dict[ServerKey, _Entry] = {}
        # Secondary indexes: ("cancel", ...) -> the transaction a CANCEL targets,
        # ("ack", ...) and ("response", ...) for RFC 2543 server transactions.
        self._aliases: dict[Hashable, ServerKey] = {}
        self._pending_cancels: dict[ClientKey, Request] = {}
        self._timers: list[tuple[float, int, _Entry, Timer]] = []
        self._compact_at = _COMPACT_MIN  # heap size that triggers _compact_timers()
        self._seq = itertools.count()
        self._datagrams: list[tuple[bytes, Endpoint]] = []
        self._events: deque[Event] = deque()

    # ----------------------------------------------------------------- introspection

    @property
    def config(self) -> TimerConfig:
        return self._config

    def get_transaction(self, key: TransactionKey) -> Transaction | None:
        """The live machine for ``key`` (for tests, metrics and debugging)."""
        entry = self._lookup(key)
        return entry.machine if entry is not None else None

    def __len__(self) -> int:
        """Number of live transactions."""
        return len(self._clients) + len(self._servers)

    def pending(self) -> int:
        """Transactions whose outcome is still open.

        Client transactions still waiting for a final response, and server
        transactions still waiting for the TU's final response. Those in
        Completed, Confirmed or Accepted only absorb retransmissions (Timers
        D, I, J, K, L, M): a graceful stop need not wait for them.
        """
        return sum(1 for e in self._clients.values() if e.machine.state in _OPEN_STATES) + sum(
            1 for e in self._servers.values() if e.machine.state in _OPEN_STATES
        )

    # ------------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Endpoint]]:
        """Messages to send, in order, since the last call."""
        datagrams, self._datagrams = self._datagrams, []
        return datagrams

    def next_event(self) -> Event | None:
        """The oldest event not yet consumed, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline at which ``handle_timer`` must be called."""
        heap = self._timers
        while heap:
            deadline, _, entry, timer = heap[0]
            if entry.alive and entry.machine.timers.get(timer) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    # ------------------------------------------------------------------------- inputs

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        heap = self._timers
        while heap and heap[0][0] <= now:
            deadline, _, entry, timer = heapq.heappop(heap)
            if entry.alive and entry.machine.timers.get(timer) == deadline:
                self._fire(entry, TIMER_INPUT[timer], now, None, remote=False)

    def receive(
        self, message: Request | Response, source: Endpoint, now: float, *, top: Via | None = None
    ) -> None:
        """A message arrived from ``source``. Malformed or unmatched input never raises.

        A request gets its top Via stamped (``stamp_received``) unless the caller
        did it already and passes the Via it returned as ``top`` (the stack
        does, before its stateless core sees the request): one parse, not two.
        """
        try:
            if isinstance(message, Response):
                self._receive_response(message, source, now)
            else:
                self._receive_request(message, source, now, top)
        except SipError:
            # The typed views parse on demand; a Via or CSeq the parser let
            # through but cannot be read is a peer's mistake: drop it.
            return

    def send_request(self, request: Request, dest: Endpoint, now: float) -> ClientKey:
        """Start a client transaction for ``request`` towards ``dest``.

        The request carries its top Via; the layer adds ``branch`` when it is
        missing. ACK and CANCEL are not sent here: ``send_ack_2xx`` and ``cancel``.
        """
        if request.method in ("ACK", "CANCEL"):
            raise ValueError(f"{request.method} is not sent with send_request")
        if request.cseq.method != request.method:
            raise ValueError("CSeq method differs from the request method (RFC 3261 §8.1.1.5)")
        branch = self._ensure_branch(request)
        key = ClientKey(branch, request.method)
        if key in self._clients:
            raise ValueError(f"a client transaction {key} already exists")
        self._start_client(key, request, dest, now)
        return key

    def send_response(self, response: Response, now: float) -> None:
        """Hand ``response`` to its server transaction (matched by top Via branch,
        sent-by and CSeq method). A 2xx to INVITE moves it to Accepted; later
        2xx retransmissions (by the TU, RFC 6026 §7.1) go through here too."""
        top = response.top_via
        method = response.cseq.method
        if method == "ACK":
            raise ValueError("there is no response to ACK")
        key: ServerKey | None
        if has_magic_cookie(top.branch):
            key = ServerKey(top.branch or "", top.sent_by, method)
        else:
            # The request's To tag if it had one, else none (the TU added its own).
            key = self._aliases.get(
                self._response_alias(response, top, method, response.to_tag)
            ) or self._aliases.get(self._response_alias(response, top, method, None))
        entry = self._servers.get(key) if key is not None else None
        if entry is None:
            raise NoSuchTransaction(f"no server transaction for {response.status} ({key})")
        ack_alias: Hashable | None = None
        machine = entry.machine
        if (
            isinstance(machine, InviteServerTransaction)
            and isinstance(entry.key, ServerKey)
            and entry.key.legacy
            and response.status >= 200
            and not machine.released
        ):
            # RFC 2543 ACK matching: "the To tag of the ACK matches the To tag of
            # the response sent by the server transaction" (the first final one:
            # the machine releases the INVITE once it is sent).
            ack_alias = self._ack_alias(machine.request, response.to_tag)
        self._fire(entry, tu_response_input(response), now, response, remote=False)
        if ack_alias is not None:
            self._add_alias(entry, ack_alias)

    def send_ack_2xx(self, ack: Request, dest: Endpoint) -> None:
        """Send the TU's ACK for a 2xx (RFC 3261 §13.2.2.4): no transaction.

        A missing branch is added (the ACK for a 2xx is its own transaction as
        far as the branch goes, §17.1.1.3).
        """
        if ack.method != "ACK":
            raise ValueError("send_ack_2xx sends ACK requests only")
        self._ensure_branch(ack)
        self.send_stateless(ack, dest)

    def send_stateless(self, message: Request | Response, dest: Endpoint) -> None:
        """Queue ``message`` for ``dest`` outside any transaction."""
        self._datagrams.append((message.to_bytes(), dest))

    def cancel(
        self, invite_key: ClientKey, now: float, *, extra: Iterable[tuple[str, str]] = ()
    ) -> ClientKey | None:
        """Cancel a pending INVITE client transaction (RFC 3261 §9.1).

        Returns the CANCEL's client transaction key (sent now, or held until a
        provisional response arrives), or None when there is nothing to cancel
        (final response received, or no such transaction). Calling it twice
        returns the same key and sends nothing more. ``extra`` adds fields to the
        CANCEL, e.g. ``("Reason", 'SIP;cause=200;text="Call completed elsewhere"')``.
        """
        if invite_key.method != "INVITE":
            raise ValueError("only INVITE client transactions are cancelled (§9.1)")
        cancel_key = ClientKey(invite_key.branch, "CANCEL")
        if cancel_key in self._clients or invite_key in self._pending_cancels:
            return cancel_key
        entry = self._clients.get(invite_key)
        if entry is None or entry.machine.state not in (State.CALLING, State.PROCEEDING):
            return None
        cancel = build_cancel(entry.machine.request, tuple(extra))
        if entry.machine.state is State.CALLING:
            self._pending_cancels[invite_key] = cancel
        else:
            self._send_cancel(entry, cancel, now)
        return cancel_key

    def transport_error(self, target: TransactionKey | Endpoint, now: float) -> None:
        """The transport failed to send for ``target``: one transaction, or every
        transaction whose messages go to that endpoint (RFC 3261 §17.1.4, §17.2.4)."""
        if isinstance(target, Endpoint):
            entries = [
                e
                for e in itertools.chain(self._clients.values(), self._servers.values())
                if e.dest == target
            ]
        else:
            found = self._lookup(target)
            entries = [found] if found is not None else []
        for entry in entries:
            if entry.alive:
                self._fire(entry, Input.TRANSPORT_ERROR, now, None, remote=True)

    # ---------------------------------------------------------------------- receiving

    def _receive_response(self, response: Response, source: Endpoint, now: float) -> None:
        key = ClientKey(response.top_via.branch or "", response.cseq.method)
        entry = self._clients.get(key)
        if entry is None:
            self._events.append(StrayResponseReceived(response, source))
            return
        self._fire(entry, response_input(response), now, response, remote=True)

    def _receive_request(
        self, request: Request, source: Endpoint, now: float, top: Via | None
    ) -> None:
        if top is None:
            top = stamp_received(request, source)
            if top is None:
                return  # no Via: the parser refuses such requests
        if request.cseq.method != request.method:
            return  # §8.1.1.5: "The method MUST match that of the request."
        if request.method == "ACK":
            self._receive_ack(request, top, source, now)
            return
        key = self._server_key(request, top, request.method)
        entry = self._servers.get(key)
        if entry is not None:
            self._fire(entry, Input.REQUEST, now, request, source=source, remote=True)
            return
        dest = response_destination(top, source)
        machine = server_transaction(request, reliable=source.reliable, config=self._config)
        entry = _Entry(key, machine, dest, source)
        self._servers[key] = entry
        if request.method != "CANCEL":
            self._add_alias(entry, self._cancel_alias(request, top))
        if key.legacy:
            self._add_alias(
                entry, self._response_alias(request, top, request.method, request.to_tag)
            )
        self._fire(entry, Input.REQUEST, now, request, source=source, remote=True)

    def _receive_ack(self, ack: Request, top: Via, source: Endpoint, now: float) -> None:
        key: ServerKey | None
        if has_magic_cookie(top.branch):
            key = ServerKey(top.branch or "", top.sent_by, "INVITE")
        else:
            key = self._aliases.get(self._ack_alias(ack, ack.to_tag))
        entry = self._servers.get(key) if key is not None else None
        if entry is None or not isinstance(entry.machine, InviteServerTransaction):
            # The ACK for a 2xx (its own branch) or a stray ACK: the TU decides.
            self._events.append(AckReceived(ack, source, None))
            return
        self._fire(entry, Input.ACK, now, ack, source=source, remote=True)

    def _on_cancel(self, entry: _Entry, cancel: Request, now: float) -> None:
        """RFC 3261 §9.2 for the CANCEL that created server transaction ``entry``.

        "If the UAS did not find a matching transaction for the CANCEL according
        to the procedure above, it SHOULD respond to the CANCEL with a 481
        (Call Leg/Transaction Does Not Exist)." "Regardless of the method of the
        original request, as long as the CANCEL matched an existing transaction,
        the UAS answers the CANCEL request itself with a 200 (OK) response."
        "The To tag of the response to the CANCEL and the To tag in the response
        to the original request SHOULD be the same."
        """
        target_key = self._aliases.get(self._cancel_alias(cancel, cancel.top_via))
        target = self._servers.get(target_key) if target_key is not None else None
        if target is None:
            response = make_response(cancel, 481, to_tag=self._new_tag())
            self._fire(entry, tu_response_input(response), now, response, remote=False)
            return
        tag = target.machine.response_to_tag
        response = make_response(cancel, 200, to_tag=tag or self._new_tag())
        self._fire(entry, tu_response_input(response), now, response, remote=False)
        if (
            isinstance(target.machine, InviteServerTransaction)
            and target.machine.state is State.PROCEEDING
            and isinstance(target.key, ServerKey)
        ):
            self._events.append(CancelReceived(target.key, cancel))

    # ------------------------------------------------------------------------ helpers

    def _branch(self) -> str:
        branch = self._new_branch()
        if not has_magic_cookie(branch):
            raise ValueError(f"new_branch() must start with {MAGIC_COOKIE!r}: {branch!r}")
        return branch

    def _ensure_branch(self, request: Request) -> str:
        """RFC 3261 §8.1.1.7: the top Via "MUST contain a branch parameter"; "The
        branch ID inserted by an element compliant with this specification MUST
        always begin with the characters "z9hG4bK"."."""
        raw = request.headers.get("Via")
        if raw is None:
            raise ValueError("the request has no Via: the stack adds its top Via first")
        via = parse_via(raw)
        if via.branch is None:
            via.params["branch"] = self._branch()
            request.headers.replace_first("Via", str(via))
        elif not has_magic_cookie(via.branch):
            raise ValueError(f"branch {via.branch!r} lacks the magic cookie {MAGIC_COOKIE!r}")
        return via.branch or ""

    def _server_key(self, request: Request, top: Via, method: str) -> ServerKey:
        branch = top.branch or ""
        if has_magic_cookie(branch):
            return ServerKey(branch, top.sent_by, method)
        return ServerKey(branch, top.sent_by, method, _legacy_fields(request, top, request.to_tag))

    def _cancel_alias(self, request: Request, top: Via) -> Hashable:
        """What a CANCEL and the request it cancels share (§9.2: apply §17.2.3
        "assuming that the request method is anything but CANCEL or ACK")."""
        if has_magic_cookie(top.branch):
            return ("cancel", top.branch, top.sent_by)
        return ("cancel", top.sent_by, *_legacy_fields(request, top, request.to_tag))

    def _ack_alias(self, request: Request, to_tag: str | None) -> Hashable:
        """RFC 2543 ACK matching: the INVITE's fields with the To tag of the
        final response (registered from the response, looked up from the ACK)."""
        top = request.top_via
        return ("ack", top.sent_by, *_legacy_fields(request, top, to_tag))

    def _response_alias(
        self, message: Message, top: Via, method: str, to_tag: str | None
    ) -> Hashable:
        """RFC 2543 response matching: a response carries no Request-URI, so a
        TU's response finds its transaction by top Via, Call-ID, CSeq, From tag
        and the To tag the request had."""
        return (
            "response",
            _via_identity(top),
            message.call_id,
            str(message.cseq.seq),
            method,
            message.from_tag or "",
            to_tag or "",
        )

    def _add_alias(self, entry: _Entry, alias: Hashable) -> None:
        assert isinstance(entry.key, ServerKey)
        self._aliases[alias] = entry.key
        entry.aliases = (*entry.aliases, alias)

    def _lookup(self, key: TransactionKey) -> _Entry | None:
        if isinstance(key, ClientKey):
            return self._clients.get(key)
        return self._servers.get(key)

    def _start_client(self, key: ClientKey, request: Request, dest: Endpoint, now: float) -> None:
        machine = client_transaction(request, reliable=dest.reliable, config=self._config)
        entry = _Entry(key, machine, dest)
        self._clients[key] = entry
        self._fire(entry, Input.REQUEST_FROM_TU, now, None, remote=False)

    def _fire(
        self,
        entry: _Entry,
        input_: Input,
        now: float,
        message: Message | None,
        *,
        remote: bool,
        source: Endpoint | None = None,
    ) -> None:
        """Run one input through ``entry``'s machine and route what comes out.

        ``remote`` inputs (network, transport) that the table refuses are
        discarded; local ones (TU, timers) raise ``UnexpectedInput``.
        """
        try:
            outputs = entry.machine.fire(input_, now, message)
        except UnexpectedInput:
            if remote:
                return
            raise
        for output in outputs:
            if isinstance(output, Transmit):
                self._datagrams.append((output.data, entry.dest))
            elif isinstance(output, TimerArmed):
                heapq.heappush(
                    self._timers, (output.deadline, next(self._seq), entry, output.timer)
                )
                if len(self._timers) > self._compact_at:
                    self._compact_timers()
            elif isinstance(output, PassUp):
                self._pass_up(entry, output.message, source, now)
            elif isinstance(output, TimedOut):
                self._events.append(TransactionTimedOut(entry.key, entry.machine.method))
            elif isinstance(output, TransportFailed):
                self._events.append(TransportErrorOccurred(entry.key))
        machine = entry.machine
        if machine.state in _ABSORBING_STATES:
            machine.release()
            if machine.state is State.TERMINATED:
                self._destroy(entry)

    def _pass_up(
        self, entry: _Entry, message: Message, source: Endpoint | None, now: float
    ) -> None:
        key = entry.key
        if isinstance(key, ClientKey):
            assert isinstance(message, Response)
            self._events.append(ResponseReceived(message, key))
            if isinstance(entry.machine, InviteClientTransaction):
                self._after_invite_response(key, message, entry, now)
            return
        assert isinstance(message, Request)
        origin = source or entry.source or entry.dest
        if message.method == "ACK":
            self._events.append(AckReceived(message, origin, key))
        elif message.method == "CANCEL":
            self._on_cancel(entry, message, now)
        else:
            self._events.append(RequestReceived(message, origin, key))

    def _after_invite_response(
        self, key: ClientKey, response: Response, entry: _Entry, now: float
    ) -> None:
        """Release or drop a CANCEL held back for this INVITE (§9.1)."""
        cancel = self._pending_cancels.pop(key, None)
        if cancel is None or response.status >= 200:
            return
        self._send_cancel(entry, cancel, now)

    def _send_cancel(self, invite: _Entry, cancel: Request, now: float) -> None:
        """Start the CANCEL's client transaction towards the INVITE's destination,
        and the INVITE's §9.1 wait for its final response."""
        assert isinstance(invite.key, ClientKey)
        self._start_client(ClientKey(invite.key.branch, "CANCEL"), cancel, invite.dest, now)
        self._fire(invite, Input.CANCEL_SENT, now, None, remote=False)

    def _compact_timers(self) -> None:
        """Sweep cancelled timers out of the heap.

        A timer is cancelled by leaving it in the heap (``get_timer`` and
        ``handle_timer`` skip it): Timer B after the INVITE's response, F after
        a non-INVITE's, both 64*T1 away, each holding its transaction alive
        long after it ended. Rebuilt when the heap doubles its live size:
        amortised O(1) per timer armed.
        """
        live = [
            item
            for item in self._timers
            if item[2].alive and item[2].machine.timers.get(item[3]) == item[0]
        ]
        heapq.heapify(live)
        self._timers = live
        self._compact_at = max(_COMPACT_MIN, 2 * len(live))

    def _destroy(self, entry: _Entry) -> None:
        entry.alive = False
        key = entry.key
        if isinstance(key, ClientKey):
            self._clients.pop(key, None)
            self._pending_cancels.pop(key, None)
        else:
            self._servers.pop(key, None)
        for alias in entry.aliases:
            if self._aliases.get(alias) == key:
                del self._aliases[alias]
        self._events.append(TransactionTerminated(key))
