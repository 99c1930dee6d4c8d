"""A raw SIP UA over UDP that subscribes to lines (``Event: dialog``) and answers
every NOTIFY: the BLF subscriber of the adapter tests and of ``bench/features.py``."""

from __future__ import annotations

import asyncio
import itertools

from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.dialog_info import DialogInfo, parse
from switch.sip.message import Request, Response
from tests.adapter.raw_ua import WAIT, RawUa

_n = itertools.count(1)


class Watcher(RawUa):
    """A raw UA that subscribes to lines and answers every NOTIFY 200."""

    def __init__(self, user: str, password: str, sip_port: int, domain: str = "pbx.test") -> None:
        super().__init__(user, password, sip_port, domain)
        self.notifies: dict[str, asyncio.Queue[Request]] = {}
        self.notify_status = 200

    @classmethod
    async def line(cls, user: str, password: str, sip_port: int) -> Watcher:
        watcher = await cls.open(user, password, sip_port)
        assert isinstance(watcher, Watcher)
        return watcher

    def _on_request(self, request: Request) -> None:
        if request.method == "NOTIFY":
            self.reply(request, self.notify_status)
            self.notifies.setdefault(request.call_id, asyncio.Queue()).put_nowait(request)
            return
        super()._on_request(request)

    async def notify(self, call_id: str) -> Request:
        queue = self.notifies.setdefault(call_id, asyncio.Queue())
        return await asyncio.wait_for(queue.get(), WAIT)

    async def document(self, call_id: str) -> DialogInfo:
        notify = await self.notify(call_id)
        assert notify.headers.get("Content-Type") == "application/dialog-info+xml"
        return parse(notify.body)

    def send_subscribe(
        self,
        sub: Subscription,
        *,
        expires: int = 600,
        auth: str = "",
        event: str = "dialog",
    ) -> None:
        sub.cseq += 1
        lines = [
            f"SUBSCRIBE {sub.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-w{next(_n)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={sub.from_tag}",
            f"To: <sip:{sub.target}@pbx.test>" + (f";tag={sub.to_tag}" if sub.to_tag else ""),
            f"Call-ID: {sub.call_id}",
            f"CSeq: {sub.cseq} SUBSCRIBE",
            f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>",
            f"Event: {event}",
            "Accept: application/dialog-info+xml",
            f"Expires: {expires}",
        ]
        if auth:
            lines.append(f"Proxy-Authorization: {auth}")
        self.send("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n")

    async def subscribe(self, target: str, *, expires: int = 600) -> tuple[Subscription, Response]:
        """SUBSCRIBE to ``target``, answering the 407; the final response."""
        sub = Subscription(target, self.sip_port)
        self.send_subscribe(sub, expires=expires)
        challenge = await self.final(sub)
        if challenge.status != 407:
            return sub, challenge
        value = challenge.headers.get("Proxy-Authenticate")
        assert value is not None
        parsed = parse_challenge(value)
        auth = answer_challenge(
            parsed, method="SUBSCRIBE", uri=sub.ruri, username=self.user,
            password=self.password, cnonce="w", nc=1,
        )  # fmt: skip
        self.send_subscribe(sub, expires=expires, auth=auth)
        response = await self.final(sub)
        sub.to_tag = response.to_tag or ""
        return sub, response

    async def final(self, sub: Subscription) -> Response:
        while True:
            response = await asyncio.wait_for(self.box(sub.call_id).get(), WAIT)
            if isinstance(response, Response) and response.status >= 200:
                return response


class Subscription:
    def __init__(self, target: str, sip_port: int) -> None:
        self.target = target
        self.ruri = f"sip:{target}@pbx.test"
        self.call_id = f"sub-{next(_n)}@watcher"
        self.from_tag = f"w{next(_n)}"
        self.to_tag = ""
        self.cseq = 0
