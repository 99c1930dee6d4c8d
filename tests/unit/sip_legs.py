"""Two pure SIP stacks (a TransactionLayer plus InviteSession legs each) talking
through a fake network with simulated time, loss and delay, as
tests/unit/test_transaction_network.py does for bare transactions."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switch.sip.dialog_events import SessionEvent
from switch.sip.endpoint import Endpoint
from switch.sip.events import RequestReceived
from switch.sip.invite import (
    InviteSession,
    SendAck,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    SessionIds,
)
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import NoSuchTransaction, TransactionLayer
from switch.sip.uri import parse_uri
from tests.unit.test_transaction import new_layer

A = Endpoint("UDP", "192.0.2.1", 5060)
B = Endpoint("UDP", "192.0.2.2", 5060)
LATENCY = 0.02
OFFER = (
    b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)
ANSWER = (
    b"v=0\r\no=b 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\n"
    b"t=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
)

Message = Request | Response


def ids(prefix: str, seed: int = 1) -> SessionIds:
    tags = itertools.count(1)
    branches = itertools.count(1)
    calls = itertools.count(1)
    return SessionIds(
        new_tag=lambda: f"{prefix}tag{next(tags)}",
        new_branch=lambda: f"z9hG4bK{prefix}ack{next(branches)}",
        new_call_id=lambda: f"{prefix}call{next(calls)}@test",
        rng=random.Random(seed),
    )


def config(addr: Endpoint, **kw: object) -> SessionConfig:
    return SessionConfig(
        contact=f"<sip:sw@{addr.host}:{addr.port}>",
        via=("UDP", f"{addr.host}:{addr.port}"),
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class Side:
    addr: Endpoint
    peer: Endpoint
    config: SessionConfig
    ids: SessionIds
    layer: TransactionLayer
    legs: list[InviteSession] = field(default_factory=list)
    events: list[tuple[float, SessionEvent]] = field(default_factory=list)
    # what a UAS does with a new INVITE leg / with every event
    on_invite: Callable[[Side, InviteSession, float], None] | None = None
    react: Callable[[Side, InviteSession, SessionEvent, float], None] | None = None

    @property
    def leg(self) -> InviteSession:
        return self.legs[0]

    def of(self, kind: type) -> list[SessionEvent]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def pump(self, now: float) -> None:
        """Drain layer events into legs, leg events into the log, commands into the layer."""
        progress = True
        while progress:
            progress = False
            while (event := self.layer.next_event()) is not None:
                progress = True
                if any(leg.handle(event, now) for leg in self.legs):
                    continue
                if (
                    isinstance(event, RequestReceived)
                    and event.request.method == "INVITE"
                    and event.request.to_tag is None
                ):
                    leg = InviteSession.uas(
                        self.config, self.ids, event.request, event.key, now=now
                    )
                    self.legs.append(leg)
                    if self.on_invite is not None:
                        self.on_invite(self, leg, now)
            for leg in list(self.legs):
                while (ev := leg.next_event()) is not None:
                    progress = True
                    self.events.append((now, ev))
                    if self.react is not None:
                        self.react(self, leg, ev, now)
                for cmd in leg.commands():
                    progress = True
                    self.execute(cmd, now)

    def execute(self, cmd: object, now: float) -> None:
        if isinstance(cmd, SendRequest):
            self.layer.send_request(cmd.request, self.peer, now)
        elif isinstance(cmd, SendAck):
            self.layer.send_ack_2xx(cmd.ack, self.peer)
        elif isinstance(cmd, SendResponse):
            with contextlib.suppress(NoSuchTransaction):
                self.layer.send_response(cmd.response, now)
        elif isinstance(cmd, SendCancel):
            self.layer.cancel(ClientKey(cmd.invite.branch or "", "INVITE"), now)

    def timers(self) -> list[float]:
        out = [t for t in (self.layer.get_timer(),) if t is not None]
        out.extend(t for leg in self.legs if (t := leg.get_timer()) is not None)
        return out

    def fire(self, now: float) -> None:
        self.layer.handle_timer(now)
        for leg in list(self.legs):
            leg.handle_timer(now)


def make_side(addr: Endpoint, peer: Endpoint, prefix: str, seed: int = 1, **kw: object) -> Side:
    return Side(addr, peer, config(addr, **kw), ids(prefix, seed), new_layer(prefix=prefix))


Drop = Callable[[Endpoint, Message], bool]


@dataclass
class Net:
    a: Side
    b: Side
    drop: Drop = lambda src, m: False
    now: float = 0.0
    wire: list[tuple[float, int, bytes, Endpoint]] = field(default_factory=list)
    log: list[tuple[float, str, Message]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def settle(self) -> None:
        for side in (self.a, self.b):
            side.pump(self.now)
        for side in (self.a, self.b):
            for data, _dest in side.layer.datagrams_to_send():
                message = parse_message(data)
                if self.drop(side.addr, message):
                    self.log.append((self.now, f"lost {side.addr.host}", message))
                    continue
                heapq.heappush(self.wire, (self.now + LATENCY, next(self._seq), data, side.addr))

    def run(self, until: float) -> None:
        self.settle()
        while True:
            candidates = self.a.timers() + self.b.timers()
            if self.wire:
                candidates.append(self.wire[0][0])
            if not candidates or min(candidates) > until:
                break
            self.now = max(self.now, min(candidates))
            while self.wire and self.wire[0][0] <= self.now:
                _, _, data, src = heapq.heappop(self.wire)
                message = parse_message(data)
                dst = self.b if src == self.a.addr else self.a
                self.log.append((self.now, f"{src.host}->{dst.addr.host}", message))
                dst.layer.receive(message, src, self.now)
            self.a.fire(self.now)
            self.b.fire(self.now)
            self.settle()
        self.now = max(self.now, until)

    def sent(self, src: Side, what: str) -> list[Message]:
        """Messages delivered from ``src`` whose start matches ``what``
        ("INVITE", "ACK", "200 INVITE"...)."""
        out = []
        for _, label, m in self.log:
            if not label.startswith(f"{src.addr.host}->"):
                continue
            if _label(m) == what or (isinstance(m, Request) and m.method == what):
                out.append(m)
        return out

    def call(self, body: bytes = OFFER, **kw: object) -> InviteSession:
        leg = InviteSession.uac(
            self.a.config,
            self.a.ids,
            from_="<sip:401@pbx.test>",
            to="<sip:402@pbx.test>",
            request_uri=parse_uri("sip:402@192.0.2.2"),
            now=self.now,
            body=body,
            **kw,  # type: ignore[arg-type]
        )
        self.a.legs.append(leg)
        self.settle()
        return leg


def _label(m: Message) -> str:
    if isinstance(m, Response):
        return f"{m.status} {m.cseq.method}"
    return m.method


def answer_with(*steps: tuple[int, bytes]) -> Callable[[Side, InviteSession, float], None]:
    def on_invite(side: Side, leg: InviteSession, now: float) -> None:
        if leg.terminated:  # answered by the session itself (422)
            return
        for status, body in steps:
            leg.respond(status, body=body, now=now)

    return on_invite


def net(**kw: Any) -> Net:
    a_kw = {k[2:]: v for k, v in kw.items() if k.startswith("a_")}
    b_kw = {k[2:]: v for k, v in kw.items() if k.startswith("b_")}
    a = make_side(A, B, "a", **a_kw)
    b = make_side(B, A, "b", seed=2, **b_kw)
    b.on_invite = answer_with((180, b""), (200, ANSWER))
    return Net(a, b)
