"""BLF with real phones: pjsua2 401 calls pjsua2 402 while a subscriber watches 402.

pjsua2 (2.15.1, Python bindings) cannot subscribe to the dialog package: its
Buddy API subscribes to presence only and the dialog-event buddy calls of
pjsua are not in the bindings (../shared/design/TESTING.md). The subscriber here
is therefore a raw SIP UA over UDP (``Subscriber`` below: digest, NOTIFYs
answered 200), and the calls are made and answered by real pjsua2 phones.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from pathlib import Path

import pytest

from switch.sip.dialog_info import DialogInfo, DialogState, Direction, parse
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from tests.adapter.blf_watcher import subscribe_credentials, subscribe_headers
from tests.adapter.raw_ua import request_text
from tests.interop.phone import Phone
from tests.interop.test_transfer_interop import talk
from tests.sip_support import SwitchProcess

pytestmark = pytest.mark.interop

WAIT = 10.0
_n = itertools.count(1)


class Subscriber:
    """One SUBSCRIBE dialog from a UDP socket, driven synchronously (bounded waits)."""

    def __init__(self, user: str, password: str, sip_port: int) -> None:
        self.user, self.password, self.sip_port = user, password, sip_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = f"blf-{os.getpid()}-{next(_n)}@watcher"
        self.cseq = 0
        self.to_tag = ""
        self.documents: list[DialogInfo] = []
        self.notified: set[int] = set()  # NOTIFY CSeqs

    def close(self) -> None:
        self.sock.close()

    def send_subscribe(self, target: str, *, expires: int = 600, auth: str = "") -> None:
        self.cseq += 1
        data = request_text(
            "SUBSCRIBE", f"sip:{target}@pbx.test", user=self.user, domain="pbx.test",
            port=self.port, call_id=self.call_id, cseq=self.cseq, from_tag=f"watch{self.port}",
            to_tag=self.to_tag, to=target, extra=subscribe_headers(expires=expires, auth=auth),
        )  # fmt: skip
        self.sock.sendto(data.encode(), ("127.0.0.1", self.sip_port))

    def receive(self, deadline: float) -> Request | Response:
        """The next message; NOTIFYs are answered 200 and their document kept."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing from the switch in time")
            self.sock.settimeout(left)
            data = self.sock.recv(65535)
            if not data.strip():
                continue
            message = parse_message(data)
            if isinstance(message, Request) and message.method == "NOTIFY":
                self.answer(message)
                if message.cseq.seq in self.notified:
                    continue  # a retransmission (our 200 came late): seen already
                self.notified.add(message.cseq.seq)
                self.documents.append(parse(message.body))
            return message

    def answer(self, request: Request) -> None:
        lines = ["SIP/2.0 200 OK"]
        lines += [f"Via: {v}" for v in request.headers.get_all("Via")]
        lines += [
            f"From: {request.headers.get('From')}",
            f"To: {request.headers.get('To')}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.headers.get('CSeq')}",
            "Content-Length: 0",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", self.sip_port))

    def final(self) -> Response:
        deadline = time.monotonic() + WAIT
        while True:
            message = self.receive(deadline)
            if isinstance(message, Response) and message.status >= 200:
                return message

    def subscribe(self, target: str) -> Response:
        self.send_subscribe(target)
        challenge = self.final()
        assert challenge.status == 407, challenge.status
        self.send_subscribe(
            target, auth=subscribe_credentials(challenge, target, self.user, self.password)
        )
        ok = self.final()
        self.to_tag = ok.to_tag or ""
        return ok

    def until(self, found: object) -> DialogInfo:
        """Documents until ``found(document)`` is true (bounded)."""
        deadline = time.monotonic() + WAIT
        for document in self.documents:
            if found(document):  # type: ignore[operator]
                return document
        while True:
            seen = len(self.documents)
            self.receive(deadline)
            for document in self.documents[seen:]:
                if found(document):  # type: ignore[operator]
                    return document


def dialog_in(state: DialogState, call_id: str | None = None) -> object:
    def found(document: DialogInfo) -> bool:
        return any(
            d.state is state and (call_id is None or d.call_id == call_id) for d in document.dialogs
        )

    return found


def header(message: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*?)\r?$", message, re.M | re.I)
    assert match, name
    return match.group(1).strip()


def test_a_watcher_of_402_sees_early_confirmed_terminated_as_401_calls_402(
    phones: tuple[Phone, Phone, str], switch_process: SwitchProcess
) -> None:
    p401, p402, target = phones
    watcher = Subscriber("403", "secret403", switch_process.sip_port)
    try:
        ok = watcher.subscribe("402")
        assert ok.status == 200
        idle = watcher.until(lambda d: True)
        assert [d.state for d in idle.dialogs] == [DialogState.TERMINATED]  # the dummy

        p401.command("call", target=target)
        p401.command("wait_state", state="EARLY")  # 402 rings (180 relayed)
        early = watcher.until(dialog_in(DialogState.EARLY))
        (ringing,) = [d for d in early.dialogs if d.state is DialogState.EARLY]
        assert ringing.direction is Direction.RECIPIENT
        assert ringing.remote is not None
        assert ringing.remote.identity == "sip:401@pbx.test"

        invite = p402.command("answer")["invite"]  # the INVITE 402 got: the B leg
        assert ringing.call_id == header(invite, "Call-ID")
        from_tag = re.search(r";tag=([^;>\s]+)", header(invite, "From"))
        assert from_tag is not None
        assert ringing.remote_tag == from_tag.group(1)  # the switch's tag
        assert ringing.local_tag  # 402's own tag, from its 180
        p401.command("wait_state", state="CONFIRMED")
        watcher.until(dialog_in(DialogState.CONFIRMED, ringing.call_id))

        p401.command("hangup")
        p402.command("wait_state", state="DISCONNECTED")
        ended = watcher.until(dialog_in(DialogState.TERMINATED, ringing.call_id))
        (last,) = [d for d in ended.dialogs if d.call_id == ringing.call_id]
        assert last.event == "remote-bye"  # 401 hung up: the switch's BYE, seen from 402
        versions = [d.version for d in watcher.documents]
        assert versions == list(range(len(versions)))
    finally:
        watcher.close()


def test_pickup_from_the_blf_key_connects_403_to_the_caller_with_audio(
    three: tuple[Phone, Phone, Phone, str], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    """What a BLF key does: the watcher's NOTIFY of ringing 402 gives the call-id
    and tags; 403 sends INVITE with Replaces built from them alone; 401 is then
    connected to 403 (tones checked both ways) and 402 stops ringing."""
    p401, p402, p403, switch = three
    watcher = Subscriber("403", "secret403", switch_process.sip_port)
    try:
        assert watcher.subscribe("402").status == 200
        p401.command("call", target=f"sip:402@{switch}")
        p402.command("wait_incoming")
        early = watcher.until(dialog_in(DialogState.EARLY))
        (ringing,) = [d for d in early.dialogs if d.state is DialogState.EARLY]
        # RFC 4235 §3.5 and Poly/Aastra BLF keys: Replaces from the NOTIFY's view.
        replaces = (
            f"{ringing.call_id};to-tag={ringing.local_tag};from-tag={ringing.remote_tag};early-only"
        )
        p403.command("call", target=f"sip:402@{switch}", headers={"Replaces": replaces})
        p403.command("wait_state", state="CONFIRMED")
        p401.command("wait_state", state="CONFIRMED")
        states = p402.command("wait_state", state="DISCONNECTED")["states"]
        assert states[-1]["status"] == 487
        watcher.until(dialog_in(DialogState.TERMINATED, ringing.call_id))
        assert talk(p401, p403, tmp_path, "blf-pickup") == (2000, 1000)
        p403.command("hangup")
        p401.command("wait_state", state="DISCONNECTED")
    finally:
        watcher.close()
