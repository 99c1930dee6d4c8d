"""A raw SIP UA over UDP that subscribes to lines (``Event: dialog``) and answers
every NOTIFY: the BLF subscriber of the adapter tests and of ``bench/features.py``.
``subscribe_headers`` and ``subscribe_credentials`` also serve the synchronous
subscriber of ``tests/interop/test_blf_interop.py``."""

from __future__ import annotations

import asyncio
import itertools

from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.dialog_info import DialogInfo, parse
from switch.sip.message import Request, Response
from tests.adapter.raw_ua import WAIT, RawUa

_n = itertools.count(1)


def subscribe_headers(*, expires: int = 600, auth: str = "", event: str = "dialog") -> list[str]:
    """The headers a SUBSCRIBE adds to ``raw_ua.request_text``'s."""
    headers = [f"Event: {event}", "Accept: application/dialog-info+xml", f"Expires: {expires}"]
    return [*headers, f"Proxy-Authorization: {auth}"] if auth else headers


def subscribe_credentials(challenge: Response, target: str, user: str, password: str) -> str:
    """The Proxy-Authorization answering a 407 to a SUBSCRIBE to line ``target``."""
    value = challenge.headers.get("Proxy-Authenticate")
    assert value is not None
    return answer_challenge(
        parse_challenge(value), method="SUBSCRIBE", uri=f"sip:{target}@pbx.test",
        username=user, password=password, cnonce="w", nc=1,
    )  # fmt: skip


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
        self.request(
            "SUBSCRIBE", sub.ruri, call_id=sub.call_id, cseq=sub.cseq, from_tag=sub.from_tag,
            to_tag=sub.to_tag, to=sub.target,
            extra=subscribe_headers(expires=expires, auth=auth, event=event),
        )  # fmt: skip

    async def subscribe(self, target: str, *, expires: int = 600) -> tuple[Subscription, Response]:
        """SUBSCRIBE to ``target``, answering the 407; the final response."""
        sub = Subscription(target, self.sip_port)
        self.send_subscribe(sub, expires=expires)
        challenge = await self.final(sub)
        if challenge.status != 407:
            return sub, challenge
        auth = subscribe_credentials(challenge, sub.target, self.user, self.password)
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
