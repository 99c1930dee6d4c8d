"""Minimal raw SIP user agents over UDP for in-process call tests.

``RawUa`` is one phone line on one UDP socket: it registers (answering the 401),
places calls (answering the 407 once, then reusing the nonce with a growing
nonce-count), and, as a callee, answers incoming INVITEs the way the test says
(200 with SDP, 486, or ring until CANCEL). Messages are sorted per Call-ID, so
several calls can run at once on the same line.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.app import Server
from switch.settings import load_settings
from switch.sip.auth import Challenge, answer_challenge, parse_challenge
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from tests.sip_support import free_port, write_config

_n = itertools.count(1)
WAIT = 5.0


def sdp(port: int, *, extra: str = "", proto: str = "RTP/AVP") -> str:
    return (
        "v=0\r\no=ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n{extra}"
    )


def sdp_port(body: bytes) -> int:
    match = re.search(rb"m=audio (\d+) ", body)
    assert match, body
    return int(match.group(1))


@asynccontextmanager
async def running_switch(
    tmp_path: Path,
    extra: str,
    *,
    prepare: Callable[[Path], None] | None = None,
    wall: Callable[[], float] | None = None,
) -> AsyncIterator[tuple[Server, int]]:
    """``Server`` in-process on free ports, ``extra`` replacing switch.yaml sections;
    ``prepare`` may change the config directory before the switch reads it; ``wall``
    is the switch's wall clock (``switch.app.injected_clock``)."""
    port, tls_port = free_port(), free_port()
    while tls_port == port:
        tls_port = free_port()
    config = write_config(
        tmp_path / f"config-{next(_n)}", sip_port=port, tls_port=tls_port, extra=extra
    )
    if prepare is not None:
        prepare(config)
    data = tmp_path / f"data-{next(_n)}"
    data.mkdir()
    server = Server(load_settings(config), data, grace=0.5, wall=wall or time.time)
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 10)
    try:
        yield server, port
    finally:
        server.handle_exit(signal.SIGTERM)
        server.handle_exit(signal.SIGTERM)
        assert await asyncio.wait_for(task, 15) == 0


def request_text(
    method: str,
    ruri: str,
    *,
    user: str,
    domain: str,
    port: int,
    call_id: str,
    cseq: int,
    from_tag: str,
    to_tag: str = "",
    to: str = "402",
    branch: str = "",
    cseq_method: str = "",
    extra: list[str] | None = None,
    body: str = "",
) -> str:
    """A request from ``user`` on 127.0.0.1:``port`` (UDP) to ``to`` of pbx.test."""
    branch = branch or f"z9hG4bK-ua{next(_n)}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={from_tag}",
        f"To: <sip:{to}@pbx.test>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        f"Contact: <sip:{user}@127.0.0.1:{port}>",
        *(extra or []),
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


@dataclass
class Incoming:
    """One call as the callee UA saw it."""

    invite: Request
    events: list[str] = field(default_factory=list)  # "bye", "cancel", "ack"
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tag: str = ""


class RawUa(asyncio.DatagramProtocol):
    def __init__(self, user: str, password: str, sip_port: int, domain: str = "pbx.test") -> None:
        self.user, self.password, self.sip_port = user, password, sip_port
        self.domain = domain
        self.transport: asyncio.DatagramTransport | None = None
        self.boxes: dict[str, asyncio.Queue[Request | Response]] = {}
        self.incoming: dict[str, Incoming] = {}
        self.statuses: dict[str, list[int]] = {}  # call-id -> every response status, in order
        self.arrived = asyncio.Event()  # set on each new incoming call
        self.answer = 200  # how this UA answers INVITEs: 200, 486, or 180 (ring)
        self.answer_sdp_port = 4000
        self.answer_extra_sdp = ""
        self.challenge: Challenge | None = None
        self.nc = 0
        self._held: list[bytes] | None = None

    @classmethod
    async def open(cls, user: str, password: str, sip_port: int, domain: str = "pbx.test") -> RawUa:
        loop = asyncio.get_running_loop()
        _, ua = await loop.create_datagram_endpoint(
            lambda: cls(user, password, sip_port, domain), local_addr=("127.0.0.1", 0)
        )
        return ua

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- transport ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes | str) -> None:
        assert self.transport is not None
        raw = data.encode() if isinstance(data, str) else data
        if self._held is not None:
            self._held.append(raw)
            return
        self.transport.sendto(raw, ("127.0.0.1", self.sip_port))

    @contextmanager
    def held(self) -> Iterator[list[bytes]]:
        """What this UA sends within the block, kept instead of sent (to inject it)."""
        self._held = []
        try:
            yield self._held
        finally:
            self._held = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not data.strip():
            return
        try:
            message = parse_message(data)
        except Exception:
            return
        if isinstance(message, Request):
            self._on_request(message)
        else:
            self.statuses.setdefault(message.call_id, []).append(message.status)
            self.box(message.call_id).put_nowait(message)

    def box(self, call_id: str) -> asyncio.Queue[Request | Response]:
        return self.boxes.setdefault(call_id, asyncio.Queue())

    async def expect(
        self, call_id: str, *, status: int | None = None, method: str | None = None
    ) -> Request | Response:
        """The next message of ``call_id`` that matches (others are dropped)."""
        queue = self.box(call_id)
        async with asyncio.timeout(WAIT):
            while True:
                message = await queue.get()
                if status is not None and isinstance(message, Response):
                    if message.status == status:
                        return message
                    if message.status >= 200 and message.cseq.method == "INVITE":
                        raise AssertionError(f"{self.user}: {message.status} instead of {status}")
                if method is not None and isinstance(message, Request) and message.method == method:
                    return message

    # -- building messages ---------------------------------------------------------------
    def reply(
        self,
        request: Request,
        status: int,
        reason: str = "OK",
        *,
        tag: str = "",
        body: str = "",
    ) -> None:
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in request.headers.get_all("Via")]
        to = request.headers.get("To") or ""
        if tag and ";tag=" not in to:
            to += f";tag={tag}"
        lines += [
            f"From: {request.headers.get('From')}",
            f"To: {to}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.headers.get('CSeq')}",
            f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.send("\r\n".join(lines) + "\r\n\r\n" + body)

    def request(
        self,
        method: str,
        ruri: str,
        *,
        call_id: str,
        cseq: int,
        from_tag: str,
        to_tag: str = "",
        to: str = "402",
        branch: str = "",
        cseq_method: str = "",
        extra: list[str] | None = None,
        body: str = "",
    ) -> str:
        branch = branch or f"z9hG4bK-ua{next(_n)}"
        text = request_text(
            method, ruri, user=self.user, domain=self.domain, port=self.port,
            call_id=call_id, cseq=cseq, from_tag=from_tag, to_tag=to_tag, to=to,
            branch=branch, cseq_method=cseq_method, extra=extra, body=body,
        )  # fmt: skip
        self.send(text)
        return branch

    # -- as a line ---------------------------------------------------------------------
    async def register(self) -> None:
        call_id = f"reg-{self.user}-{next(_n)}"
        uri = "sip:pbx.test"
        for cseq in (1, 2):
            extra = ["Expires: 300"]
            if cseq == 2:
                extra.append(f"Authorization: {self._auth('REGISTER', uri, www=True)}")
            self.request(
                "REGISTER", uri, call_id=call_id, cseq=cseq, from_tag="r", to=self.user,
                extra=extra,
            )  # fmt: skip
            response = await self.expect(call_id, status=401 if cseq == 1 else 200)
            assert isinstance(response, Response)
            if cseq == 1:
                value = response.headers.get("WWW-Authenticate")
                assert value is not None
                self._www = parse_challenge(value)

    def _auth(self, method: str, uri: str, *, www: bool = False) -> str:
        challenge = self._www if www else self.challenge
        assert challenge is not None
        self.nc += 1
        return answer_challenge(
            challenge,
            method=method,
            uri=uri,
            username=self.user,
            password=self.password,
            cnonce=f"c{self.user}",
            nc=self.nc,
        )

    async def call(
        self,
        to: str,
        *,
        rtp_port: int = 4000,
        sdp_extra: str = "",
        proto: str = "RTP/AVP",
        headers: list[str] | None = None,
    ) -> OutCall:
        """INVITE ``to`` (answering the 407 the first time), with ``headers`` (e.g.
        ``Replaces: ...``); returns once the INVITE with credentials is sent."""
        ruri = f"sip:{to}@127.0.0.1:{self.sip_port}"
        out = OutCall(
            self,
            to,
            ruri,
            f"call-{self.user}-{next(_n)}",
            body=sdp(rtp_port, extra=sdp_extra, proto=proto),
            headers=headers,
        )
        if self.challenge is None:
            out.send_invite()
            challenge = await self.expect(out.call_id, status=407)
            assert isinstance(challenge, Response)
            out.ack_failure(challenge)
            value = challenge.headers.get("Proxy-Authenticate")
            assert value is not None
            self.challenge = parse_challenge(value)
            self.nc = 0
        out.send_invite(auth=self._auth("INVITE", ruri))
        return out

    # -- as a callee -------------------------------------------------------------------
    def _on_request(self, request: Request) -> None:
        call_id = request.call_id
        if request.method == "INVITE" and request.to_tag is None:
            if call_id in self.incoming:
                return  # a retransmission
            new = Incoming(request, tag=f"b{next(_n)}")
            self.incoming[call_id] = new
            self.arrived.set()
            if self.answer == 200:
                body = sdp(self.answer_sdp_port, extra=self.answer_extra_sdp)
                self.reply(request, 200, tag=new.tag, body=body)
            elif self.answer == 180:
                self.reply(request, 180, "Ringing", tag=new.tag)
            else:
                self.reply(request, self.answer, "Busy Here", tag=new.tag)
                new.done.set()
            return
        call = self.incoming.get(call_id)
        if request.method == "ACK":
            if call is not None:
                call.events.append("ack")
            return
        if request.method == "BYE":
            self.reply(request, 200)
            if call is not None:
                call.events.append("bye")
                call.done.set()
            else:
                self.box(call_id).put_nowait(request)
            return
        if request.method == "CANCEL":
            self.reply(request, 200)
            if call is not None:
                self.reply(call.invite, 487, "Request Terminated", tag=call.tag)
                call.events.append("cancel")
                call.done.set()
            return
        self.box(call_id).put_nowait(request)


class OutCall:
    """One call placed by a ``RawUa``."""

    def __init__(
        self,
        ua: RawUa,
        to: str,
        ruri: str,
        call_id: str,
        *,
        body: str,
        headers: list[str] | None = None,
    ) -> None:
        self.ua, self.to, self.ruri, self.call_id, self.body = ua, to, ruri, call_id, body
        self.headers = headers or []
        self.cseq = 0
        self.branch = ""
        self.to_tag = ""
        self.contact = ruri
        self.from_tag = f"a{next(_n)}"

    def send_invite(self, auth: str = "") -> None:
        self.cseq += 1
        extra = [*self.headers, *([f"Proxy-Authorization: {auth}"] if auth else [])]
        self.branch = self.ua.request(
            "INVITE", self.ruri, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to=self.to, extra=extra, body=self.body,
        )  # fmt: skip

    def ack_failure(self, response: Response) -> None:
        to_tag = response.to_tag or ""
        self.ua.request(
            "ACK", self.ruri, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to_tag=to_tag, to=self.to, branch=self.branch,
        )  # fmt: skip

    async def answered(self) -> Response:
        """Wait for the 200, ACK it; returns the 200."""
        ok = await self.ua.expect(self.call_id, status=200)
        assert isinstance(ok, Response)
        self.to_tag = ok.to_tag or ""
        contact = ok.headers.get("Contact") or ""
        match = re.search(r"<([^>]+)>", contact)
        self.contact = match.group(1) if match else self.ruri
        self.ua.request(
            "ACK", self.contact, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to_tag=self.to_tag, to=self.to,
        )  # fmt: skip
        return ok

    async def failed(self, status: int) -> Response:
        response = await self.ua.expect(self.call_id, status=status)
        assert isinstance(response, Response)
        self.ack_failure(response)
        return response

    async def ringing(self) -> None:
        await self.ua.expect(self.call_id, status=180)

    async def cancel(self) -> None:
        self.ua.request(
            "CANCEL", self.ruri, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to=self.to, branch=self.branch,
        )  # fmt: skip
        await self.failed(487)

    async def bye(self) -> None:
        self.cseq += 1
        self.ua.request(
            "BYE", self.contact, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to_tag=self.to_tag, to=self.to,
        )  # fmt: skip
        while True:
            response = await self.ua.expect(self.call_id, status=200)
            if response.cseq.method == "BYE":
                return

    def send(self, method: str, *, extra: list[str] | None = None, body: str = "") -> int:
        """An in-dialog request (REFER, re-INVITE...); returns its CSeq number."""
        self.cseq += 1
        self.ua.request(
            method, self.contact, call_id=self.call_id, cseq=self.cseq, from_tag=self.from_tag,
            to_tag=self.to_tag, to=self.to, extra=extra, body=body,
        )  # fmt: skip
        return self.cseq

    async def bye_received(self) -> Request:
        """Wait for the switch's BYE on this call and answer it 200."""
        bye = await self.ua.expect(self.call_id, method="BYE")
        assert isinstance(bye, Request)
        return bye


async def wait_done(ua: RawUa, count: int) -> list[Incoming]:
    """The callee's first ``count`` calls, once each is over (bounded)."""
    async with asyncio.timeout(WAIT):
        while len(ua.incoming) < count:
            ua.arrived.clear()
            await ua.arrived.wait()
        calls = list(ua.incoming.values())[:count]
        for call in calls:
            await call.done.wait()
    return calls
