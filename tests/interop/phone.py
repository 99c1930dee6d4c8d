"""A pjsua2 phone in its own process, driven by JSON lines over stdin/stdout.

pjsua2 wants one endpoint per process and one thread (see
../shared/design/TESTING.md): so each ``Phone`` is a child process running this
file, and the test talks to it with one JSON object per line::

    -> {"cmd": "init", "transport": "tls"}
    <- {"ok": true, "port": 41234}
    -> {"cmd": "options", "target": "sip:127.0.0.1:5061;transport=tls"}
    <- {"ok": true, "status": 200, "reason": "OK", "message": "SIP/2.0 200 OK..."}
    -> {"cmd": "quit"}
    <- {"ok": true}

Replies carry ``"ok"``; a failed command answers ``{"ok": false, "error": ...}``.
Lines with ``"event"`` are notifications (later: registration state, incoming
calls) that the driver collects in ``Phone.events``. Later issues add commands
(register, call, answer, hangup, play, record) to ``Child``.

The child keeps every pjsua2 object referenced, polls ``libHandleEvents`` from
its only thread, and leaves with ``os._exit`` after ``libDestroy`` (object
destructors racing the library's end abort the process otherwise).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from typing import IO, Any

# -- the driver (test side) ------------------------------------------------------------


class PhoneError(RuntimeError):
    pass


class Phone:
    """The test's handle on one phone process. Use as a context manager."""

    def __init__(self, *, name: str = "phone", log_path: str | None = None) -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self._log = open(log_path, "wb") if log_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-u", __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log else subprocess.DEVNULL,
        )
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""

    def command(self, cmd: str, *, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Send one command and wait (bounded) for its reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            message = json.loads(line)
            if "event" in message:
                self.events.append(message)
                continue
            if not message.get("ok"):
                raise PhoneError(f"{self.name}: {cmd}: {message.get('error')}")
            return message  # type: ignore[no-any-return]

    def _readline(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PhoneError(f"{self.name}: no reply in time")
            if not self._selector.select(left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise PhoneError(f"{self.name}: process ended ({self.proc.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def close(self, timeout: float = 10.0) -> int:
        """Quit politely, else kill (by the child's PID); return the exit status."""
        try:
            if self.proc.poll() is None:
                try:
                    self.command("quit", timeout=timeout)
                except (PhoneError, BrokenPipeError, ValueError):
                    self.proc.kill()
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)
        finally:
            self._selector.close()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> Phone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the phone (child side) ------------------------------------------------------------------


class Child:
    """Runs in the phone process: one pjsua2 endpoint, commands in, replies out."""

    def __init__(self, out: IO[str]) -> None:
        import pjsua2 as pj

        self.pj: Any = pj
        self.out = out
        self.ep: Any = None
        self.keep: list[Any] = []  # every pjsua2 object stays alive until libDestroy
        self.account: Any = None
        self.pending: dict[str, Any] | None = None

    # protocol
    def reply(self, **fields: Any) -> None:
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    def event(self, name: str, **fields: Any) -> None:
        self.reply(event=name, **fields)

    def poll(self, ms: int = 10) -> None:
        if self.ep is not None:
            self.ep.libHandleEvents(ms)

    def wait_for(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.poll(10)
        return True

    # commands
    def cmd_init(self, transport: str = "udp", log_level: int = 0, **_: Any) -> dict[str, Any]:
        pj = self.pj
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.hasIoqueue = False
        cfg.logConfig.level = log_level
        cfg.logConfig.consoleLevel = log_level
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        kinds = {
            "udp": pj.PJSIP_TRANSPORT_UDP,
            "tcp": pj.PJSIP_TRANSPORT_TCP,
            "tls": pj.PJSIP_TRANSPORT_TLS,
        }
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        if transport == "tls":
            tcfg.tlsConfig.verifyServer = False  # the switch's certificate is self-signed
            tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        tid = ep.transportCreate(kinds[transport], tcfg)
        ep.libStart()
        self.ep = ep
        self.keep += [cfg, tcfg]
        info = ep.transportGetInfo(tid)
        port = int(str(info.localName).rsplit(":", 1)[1])
        return {"port": port}

    def cmd_account(self, uri: str = "sip:phone@pbx.test", **_: Any) -> dict[str, Any]:
        pj: Any = self.pj
        child = self

        class Account(pj.Account):  # type: ignore[misc]
            def onSendRequest(self, prm: Any) -> None:
                child.on_send_request(prm)

        acfg = pj.AccountConfig()
        acfg.idUri = uri
        acfg.regConfig.registerOnAdd = False
        account = Account()
        account.create(acfg)
        self.account = account
        self.keep += [acfg, account]
        return {}

    def on_send_request(self, prm: Any) -> None:
        body = prm.e.body
        try:
            rdata = body.tsxState.src.rdata
            message = str(rdata.wholeMsg)
        except AttributeError:
            message = ""
        tsx = body.tsxState.tsx
        if self.pending is not None and tsx.statusCode >= 200:
            self.pending.update(
                status=int(tsx.statusCode), reason=str(tsx.statusText), message=message
            )

    def cmd_options(self, target: str, timeout: float = 5.0, **_: Any) -> dict[str, Any]:
        """Send an out-of-dialog OPTIONS through the account; wait for the final response."""
        pj = self.pj
        if self.account is None:
            self.cmd_account()
        prm = pj.SendRequestParam()
        prm.method = "OPTIONS"
        prm.txOption.targetUri = target
        self.pending = {}
        self.keep.append(prm)
        self.account.sendRequest(prm)
        if not self.wait_for(lambda: self.pending, timeout):
            raise TimeoutError("no final response to OPTIONS")
        result, self.pending = self.pending, None
        return result

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(sys.stdin, selectors.EVENT_READ)
        while True:
            if not selector.select(0.01):
                self.poll(0)
                continue
            line = sys.stdin.readline()
            if not line:
                break
            request = json.loads(line)
            cmd = request.pop("cmd")
            if cmd == "quit":
                self.reply(ok=True)
                break
            try:
                result = getattr(self, f"cmd_{cmd}")(**request)
            except Exception as exc:
                self.reply(ok=False, error=f"{type(exc).__name__}: {exc}")
            else:
                self.reply(ok=True, **result)
        if self.ep is not None:
            self.ep.libDestroy()


def _child_main() -> None:
    # The protocol owns the real stdout; pjsip's console log goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    Child(out).run()
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    _child_main()
