"""The SIP stack: the asyncio pump around the pure layers.

    bytes ──> parser ──> stamp received/rport ──┬─> StatelessCore ──> response bytes
                                                └─> TransactionLayer ──> events ──> handler
                                                          │
                               datagrams_to_send() <──────┘ ──> Transport.send()
                               get_timer() ──> one loop.call_at

Everything that happens to the pure layers happens here, with ``now`` taken
from the loop's monotonic clock:

- a datagram or a framed stream message is parsed; a request gets its top Via
  stamped (``received``/``rport``, RFC 3261 §18.2.1, RFC 3581 §4);
- requests the stateless core answers (OPTIONS, 405, 420, 483, ...) are answered
  at once, without a transaction (RFC 3261 §8.2.7); everything else (ACK,
  responses, and the methods a transaction user registers for) goes into the
  transaction layer, whose events go to the handler;
- after every input the layer's datagrams are sent and its single deadline is
  (re)armed as one ``loop.call_at``;
- a message the parser refuses is answered with the error's status and reason
  when enough of it was understood (400, 416, 513), otherwise dropped. No input
  ever stops the stack: an unexpected exception is logged and the message dropped.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from switch.log import log_sip
from switch.sip import via as sip_via
from switch.sip.core import StatelessCore
from switch.sip.endpoint import Endpoint, hostport
from switch.sip.errors import MessageTooLarge, ParseError, SipError
from switch.sip.events import Event, RequestReceived
from switch.sip.headers import Via, parse_via
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import TransactionLayer
from switch.tokens import token_hex
from switch.transport import ListenAddress, Transport, TransportLimits

if TYPE_CHECKING:
    from switch.metrics import Metrics

log = logging.getLogger(__name__)

DEBUG = logging.DEBUG
# RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if it is
# larger than 1300 bytes and the path MTU is unknown, the request MUST be sent
# using an RFC 2914 congestion controlled transport protocol, such as TCP."
MTU_MARGIN = 200
# The most we parse of an oversized message to answer it 513.
HEAD_LIMIT = 65536
# Load shedding: above this many bytes waiting in a UDP listener's kernel receive
# queue (buffer memory, about 2.3 KB per small SIP datagram: some 200 ms of work
# for a saturated switch, under T1 = 500 ms), new calls are refused 503. Lower
# (256 KB), a 50 ms stall of the core refused calls at 80 % of capacity.
OVERLOAD_BACKLOG = 1024 * 1024

EventHandler = Callable[[Event], None]


def new_branch() -> str:
    """A fresh, unguessable branch with the RFC 3261 magic cookie (§8.1.1.7)."""
    return "z9hG4bK" + token_hex(10)


class LoopTimer:
    """The one loop timer of a pure machine: follows its ``get_timer()`` deadline
    (moved only when that changes) and calls ``on_due`` when it comes."""

    __slots__ = ("_handle", "_loop", "_on_due", "deadline")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_due: Callable[[], None]) -> None:
        self._loop = loop
        self._on_due = on_due
        self._handle: asyncio.TimerHandle | None = None
        self.deadline: float | None = None

    def follow(self, deadline: float | None) -> None:
        if deadline == self.deadline:
            return
        self.cancel()
        self.deadline = deadline
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._due)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.deadline = None

    def _due(self) -> None:
        self._handle = None
        self.deadline = None
        self._on_due()


class Stack:
    """Owns the transaction layer and the transports; pumps between them."""

    observer: Metrics | None = None  # SIP message counters (one dict increment each)

    def __init__(
        self,
        core: StatelessCore,
        layer: TransactionLayer,
        *,
        limits: TransportLimits | None = None,
        udp_mtu: int = 1500,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        self.core = core
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.limits = limits or TransportLimits()
        self.max_udp_request = udp_mtu - MTU_MARGIN
        self.transport = Transport(
            self, limits=self.limits, server_ssl=server_ssl, client_ssl=client_ssl, loop=self.loop
        )
        self.on_event: EventHandler = on_event or self._default_event
        self.stats: Counter[str] = Counter()
        self._timer = LoopTimer(self.loop, self._on_timer)
        self._closed = False
        self._errors_logged = 0
        # Bytes of UDP receive backlog above which ``overloaded()``; None: never.
        self.overload_backlog: int | None = OVERLOAD_BACKLOG

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, listeners: list[ListenAddress]) -> None:
        await self.transport.start(listeners)

    async def stop_accepting(self) -> None:
        await self.transport.stop_accepting()

    def busy(self) -> bool:
        """True while a transaction still waits for its final response.

        Transactions that only linger to absorb retransmissions (Timer J keeps
        an answered REGISTER for 32 s) do not hold a graceful stop back.
        """
        return self.layer.pending() > 0

    def overloaded(self) -> bool:
        """True when more than ``overload_backlog`` bytes of datagrams wait to be
        read: the switch is behind its input, and taking new calls would only
        delay the messages of the calls it has until their senders retransmit
        (RFC 3261 §21.5.4 503: "temporarily unable to process the request due to
        a temporary overloading"). One system call per UDP listener."""
        limit = self.overload_backlog
        return limit is not None and self.transport.udp_backlog() > limit

    async def close(self) -> None:
        self._closed = True
        self._timer.cancel()
        await self.transport.close()

    # -- TransportUser ----------------------------------------------------------------
    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        self.stats["received"] += 1
        try:
            message = parse_message(data, max_size=self.limits.max_message_size)
        except ParseError as exc:
            self._refused(exc, source, data)
            return
        except Exception:
            self._unexpected("parse", source)
            return
        self._receive(message, source)

    # Framed stream messages are parsed exactly like datagrams.
    stream_message_received = datagram_received

    def stream_error(self, error: ParseError, source: Endpoint, chunk: bytes) -> None:
        self._refused(error, source, chunk)

    def transport_error(self, dest: Endpoint, error: Exception) -> None:
        self.stats["transport_errors"] += 1
        try:
            self.layer.transport_error(dest, self.loop.time())
        except Exception:
            self._unexpected("transport_error", dest)
            return
        self._pump()

    def local_contact(self, peer: Endpoint) -> tuple[str, tuple[str, str]]:
        """Our Contact and Via ``(transport, sent-by)`` for requests to ``peer``: the
        address of the listener of its transport that ``peer`` can answer to
        (``Transport.local_address``), ``;transport=`` for TCP and TLS."""
        local = self.transport.local_address(peer.transport, peer.host)
        sent_by = hostport(*(local or ("127.0.0.1", 5060)))
        param = "" if peer.transport == "UDP" else f";transport={peer.transport.lower()}"
        return f"<sip:{sent_by}{param}>", (peer.transport, sent_by)

    # -- intents (used by transaction users) -------------------------------------------
    def send_request(self, request: Request, dest: Endpoint) -> ClientKey:
        """Start a client transaction for ``request`` towards ``dest``.

        §18.1.1: a request too large for UDP goes over TCP instead, and "If this
        causes a change in the transport protocol from the one indicated in the
        top Via, the value in the top Via MUST be changed."
        """
        if dest.transport == "UDP" and len(request.to_bytes()) > self.max_udp_request:
            dest = Endpoint("TCP", dest.host, dest.port)
            top = request.headers.get("Via")
            if top is not None:
                via = parse_via(top)
                if via.transport == "UDP":
                    via.transport = "TCP"
                    request.headers.replace_first("Via", str(via))
        key = self.layer.send_request(request, dest, self.loop.time())
        self._pump()
        return key

    def send_response(self, response: Response) -> None:
        self.layer.send_response(response, self.loop.time())
        self._pump()

    def send_ack(self, ack: Request, dest: Endpoint) -> None:
        """The TU's ACK for a 2xx (its own transaction, RFC 3261 §13.2.2.4)."""
        self.layer.send_ack_2xx(ack, dest)
        self._pump()

    def cancel(self, invite_key: ClientKey, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """CANCEL a pending INVITE client transaction (RFC 3261 §9.1)."""
        self.layer.cancel(invite_key, self.loop.time(), extra=extra)
        self._pump()

    # -- the pump -------------------------------------------------------------------------
    def _receive(self, message: Request | Response, source: Endpoint) -> None:
        top: Via | None = None
        if self.observer is not None:
            self.observer.sip_received_message(message)
        try:
            if isinstance(message, Request):
                top = sip_via.stamp_received(message, source)
                if self._answer(message, source, top):
                    return
            elif log.isEnabledFor(DEBUG):
                log_sip(log, DEBUG, "sip.in", message, source)
            self.layer.receive(message, source, self.loop.time(), top=top)
        except ParseError as exc:
            # A header the parser let through but a layer could not read: answer
            # with what the request has (its Via was checked by the parser).
            if isinstance(message, Request) and message.method != "ACK":
                try:
                    self._send_stateless(message, self.core.reject(message, exc), source, top)
                except Exception:
                    self._unexpected("reject", source, message)
            return
        except Exception:
            self._unexpected("receive", source, message)
            return
        self._pump()

    def _answer(self, request: Request, source: Endpoint, top: Via | None) -> bool:
        """Let the stateless core answer ``request``; False when it is not the core's."""
        if log.isEnabledFor(DEBUG):
            log_sip(log, DEBUG, "sip.in", request, source)
            response = self.core.answer(request)
            if response is None:
                return False
            self._send_stateless(request, response, source, top)
            return True
        # Nothing to log: the answer goes from the request's fields to bytes.
        wire = self.core.answer_wire(request)
        if wire is None:
            return False
        status, data = wire
        dest = self._stateless_destination(request, source, top)
        self.stats[f"answered_{status}"] += 1
        if self.observer is not None:
            self.observer.sip_sent(None, status)
        self.transport.send(data, dest)
        return True

    def _send_stateless(
        self, request: Request, response: Response, source: Endpoint, top: Via | None = None
    ) -> None:
        """Send ``response`` where §18.2.2 says; ``top`` is the request's stamped
        top Via when the caller has it (``stamp_received`` returned it)."""
        dest = self._stateless_destination(request, source, top)
        self.stats[f"answered_{response.status}"] += 1
        if self.observer is not None:
            self.observer.sip_sent(None, response.status)
        if log.isEnabledFor(DEBUG):
            log_sip(log, DEBUG, "sip.out", response, dest, stateless=True)
        self.transport.send(response.to_bytes(), dest)

    @staticmethod
    def _stateless_destination(request: Request, source: Endpoint, top: Via | None) -> Endpoint:
        # Over the request's own transport whatever its Via names: a spoofed
        # datagram cannot make the switch open connections (``response_destination``).
        return sip_via.response_destination(top if top is not None else request.top_via, source)

    def _pump(self) -> None:
        layer = self.layer
        for _ in range(10_000):  # bounded: a handler that loops cannot hang the loop
            for data, dest in layer.datagrams_to_send():
                self.transport.send(data, dest)
                if self.observer is not None:
                    self.observer.sip_sent_wire(data)
            event = layer.next_event()
            if event is None:
                break
            try:
                self.on_event(event)
            except Exception:
                log.exception("handler.failed", extra={"event": type(event).__name__})
        if not self._closed:
            self._timer.follow(self.layer.get_timer())

    def _on_timer(self) -> None:
        try:
            self.layer.handle_timer(self.loop.time())
        except Exception:
            self._unexpected("timer", None)
        self._pump()

    def _default_event(self, event: Event) -> None:
        """With no transaction user: answer requests the core left to a transaction."""
        if isinstance(event, RequestReceived):
            self.layer.send_response(self.core.reply(event.request, 480), self.loop.time())
        elif log.isEnabledFor(DEBUG):
            log.debug("event", extra={"event": type(event).__name__})

    # -- errors -----------------------------------------------------------------------------
    def _refused(self, exc: ParseError, source: Endpoint, data: bytes = b"") -> None:
        """Answer what the parser refused when it can be answered, else drop it."""
        self.stats[f"refused_{exc.status_code}"] += 1
        partial = exc.partial if exc.respondable else None
        if partial is None and isinstance(exc, MessageTooLarge):
            partial = self._head_of(data)
        if not isinstance(partial, Request) or partial.method == "ACK":
            if log.isEnabledFor(DEBUG):
                log.debug("sip.dropped", extra={"peer": str(source), "reason": str(exc)})
            return
        try:
            top = sip_via.stamp_received(partial, source)
            self._send_stateless(partial, self.core.reject(partial, exc), source, top)
        except SipError as again:
            if log.isEnabledFor(DEBUG):
                log.debug("sip.dropped", extra={"peer": str(source), "reason": str(again)})
        except Exception:
            self._unexpected("reject", source, partial)

    def _head_of(self, data: bytes) -> Request | None:
        """The request whose header section starts ``data``, body left out (for 513)."""
        end = data.find(b"\r\n\r\n", 0, HEAD_LIMIT)
        if end < 0:
            return None
        message: object
        try:
            message = parse_message(data[: end + 4], max_size=HEAD_LIMIT)
        except ParseError as exc:
            message = exc.partial if exc.respondable else None
        except Exception:
            return None
        return message if isinstance(message, Request) else None

    def _unexpected(
        self, where: str, source: Endpoint | None, message: Request | Response | None = None
    ) -> None:
        """A bug met a message: log (the first ten, then every thousandth) and go on."""
        self.stats["internal_errors"] += 1
        self._errors_logged += 1
        n = self._errors_logged
        if n <= 10 or n % 1000 == 0:
            call_id = message.headers.get("Call-ID") if message is not None else None
            log.exception(
                "internal.error",
                extra={"where": where, "peer": str(source), "call_id": call_id, "count": n},
            )
