"""A pjsua2 phone in its own process, driven by JSON lines over stdin/stdout.

pjsua2 wants one endpoint per process and one thread (see
../shared/design/TESTING.md): so each ``Phone`` is a child process running this
file, and the test talks to it with one JSON object per line::

    -> {"cmd": "init", "transport": "tls"}
    <- {"ok": true, "port": 41234}
    -> {"cmd": "options", "target": "sip:127.0.0.1:5061;transport=tls"}
    <- {"ok": true, "status": 200, "reason": "OK", "message": "SIP/2.0 200 OK..."}
    -> {"cmd": "register", "registrar": "sip:127.0.0.1:5060;transport=tcp",
        "user": "401", "password": "secret401", "domain": "pbx.test"}
    <- {"ok": true, "status": 200, "reason": "OK", "expires": 300}
    -> {"cmd": "reregister"}       (the same account again, e.g. after a failure)
    -> {"cmd": "unregister"}
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
        self.reg_states: list[dict[str, Any]] = []
        self.call: Any = None  # the current call: the latest placed or received
        self.calls: list[Any] = []  # every call (index = "call" in commands), kept alive
        self.incoming: list[str] = []
        self.busy_code = 0  # answer incoming calls with this status at once
        self.players: list[Any] = []
        self.transfers: list[dict[str, Any]] = []  # NOTIFYs of our REFERs, in order

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
    def cmd_init(
        self, transport: str = "udp", log_level: int = 0, codec: str = "", **_: Any
    ) -> dict[str, Any]:
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
        if codec:
            # One codec only (e.g. "PCMU/8000"): what desk phones use, and what
            # the tests' tone detector expects.
            for info in ep.codecEnum2():
                ep.codecSetPriority(info.codecId, 255 if info.codecId.startswith(codec) else 0)
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

    def cmd_register(
        self,
        registrar: str,
        user: str,
        password: str,
        domain: str = "pbx.test",
        expires: int = 300,
        timeout: float = 10.0,
        srtp: int = 0,
        srtp_signaling: int = 0,
        prack: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        """Create an account registering ``user@domain`` at ``registrar``; wait for
        the first final outcome (pjsua2 answers the 401 challenge itself).

        ``srtp``: the account's SDES-SRTP use (0 disabled, 1 optional, 2 mandatory);
        ``srtp_signaling``: 1 requires TLS on the first hop for SRTP calls;
        ``prack``: reliable provisionals (RFC 3262) required, both ways."""
        pj: Any = self.pj
        child = self

        class Account(pj.Account):  # type: ignore[misc]
            def onRegState(self, prm: Any) -> None:
                child.reg_states.append(
                    {"status": int(prm.code), "reason": str(prm.reason), "expires": prm.expiration}
                )

            def onIncomingCall(self, prm: Any) -> None:
                call = child.new_call(self, prm.callId)
                if child.busy_code:
                    op = child.pj.CallOpParam(True)
                    op.statusCode = child.busy_code
                    call.hangup(op)
                    return
                child.incoming.append(str(prm.rdata.wholeMsg))
                child.learn_tags(call, str(prm.rdata.wholeMsg), outgoing=False)
                op = child.pj.CallOpParam(True)
                op.statusCode = 180
                call.answer(op)

        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{user}@{domain}"
        acfg.regConfig.registrarUri = registrar
        acfg.regConfig.timeoutSec = expires
        acfg.regConfig.retryIntervalSec = 0  # no automatic retries: the test drives
        acfg.regConfig.registerOnAdd = True
        if prack:
            acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
        if srtp:
            acfg.mediaConfig.srtpUse = srtp
            acfg.mediaConfig.srtpSecureSignaling = srtp_signaling
        cred = pj.AuthCredInfo("digest", "*", user, 0, password)
        acfg.sipConfig.authCreds.append(cred)
        account = Account()
        self.keep += [acfg, cred, account]
        self.reg_states.clear()
        account.create(acfg)
        self.account = account
        return self._wait_reg(timeout)

    def cmd_reregister(self, timeout: float = 10.0, **_: Any) -> dict[str, Any]:
        self.reg_states.clear()
        self.account.setRegistration(True)
        return self._wait_reg(timeout)

    def cmd_unregister(self, timeout: float = 10.0, **_: Any) -> dict[str, Any]:
        self.reg_states.clear()
        self.account.setRegistration(False)
        return self._wait_reg(timeout)

    def _wait_reg(self, timeout: float) -> dict[str, Any]:
        if not self.wait_for(lambda: self.reg_states, timeout):
            raise TimeoutError("no registration outcome")
        return self.reg_states[-1]

    # calls: commands act on the current call, or on ``call`` (its index) when given
    @property
    def call_states(self) -> list[dict[str, Any]]:
        return self.call.states if self.call is not None else []

    def pick(self, call: int | None) -> Any:
        return self.call if call is None else self.calls[call]

    def new_call(self, account: Any, call_id: int = -1) -> Any:
        pj: Any = self.pj
        child = self

        class Call(pj.Call):  # type: ignore[misc]
            def onCallState(self, prm: Any) -> None:
                info = self.getInfo()
                self.states.append(
                    {
                        "state": str(info.stateText),
                        "status": int(info.lastStatusCode),
                        "reason": str(info.lastReason),
                    }
                )

            def onCallMediaState(self, prm: Any) -> None:
                self.media_active = True
                self.media_changes += 1
                # pjsua2 rebuilds the stream on a re-INVITE (a transfer moves the
                # call to another relay port): keep what plays and records connected.
                try:
                    audio = self.getAudioMedia(-1)
                except Exception:
                    return
                for player in self.players:
                    player.startTransmit(audio)
                for recorder in self.recorders:
                    audio.startTransmit(recorder)

            def onCallTsxState(self, prm: Any) -> None:
                # The dialog's tags as this phone sees them (for a Replaces header).
                try:
                    sent = str(prm.e.body.tsxState.tsx.lastTx.wholeMsg)
                except Exception:
                    return
                child.learn_tags(self, sent, outgoing=True)

            def onCallTransferStatus(self, prm: Any) -> None:
                child.transfers.append(
                    {
                        "status": int(prm.statusCode),
                        "reason": str(prm.reason),
                        "final": bool(prm.finalNotify),
                    }
                )

        call = Call(account, call_id) if call_id != -1 else Call(account)
        call.states = []
        call.media_active = False
        call.media_changes = 0
        call.players = []
        call.recorders = []
        call.tags = {}
        self.calls.append(call)
        self.call = call
        return call

    def learn_tags(self, call: Any, message: str, *, outgoing: bool) -> None:
        """Our own tag (From of our requests, To of our responses) and the peer's."""
        first = message.split("\r\n", 1)[0]
        fields = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in message.split("\r\n")[1:])
            if value
        }
        tags = {
            key: value.split(";tag=", 1)[1].split(";", 1)[0]
            for key, value in (("from", fields.get("from", "")), ("to", fields.get("to", "")))
            if ";tag=" in value
        }
        is_response = first.startswith("SIP/2.0")
        ours, theirs = ("to", "from") if is_response == outgoing else ("from", "to")
        if ours in tags:
            call.tags["local"] = tags[ours]
        if theirs in tags:
            call.tags["remote"] = tags[theirs]

    def cmd_call(
        self, target: str, headers: dict[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        """Start a call to ``target`` (a SIP URI), with extra ``headers``; returns at
        once with the call's index."""
        call = self.new_call(self.account)
        prm = self.pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            header = self.pj.SipHeader()
            header.hName = name
            header.hValue = value
            prm.txOption.headers.append(header)
            self.keep.append(header)
        self.keep.append(prm)
        call.makeCall(target, prm)
        return {"call": len(self.calls) - 1}

    def cmd_busy(self, code: int = 486, **_: Any) -> dict[str, Any]:
        self.busy_code = code
        return {}

    def cmd_answer(
        self, code: int = 200, timeout: float = 10.0, count: int = 1, **_: Any
    ) -> dict[str, Any]:
        """Answer the ``count``-th incoming call (waits for it to arrive)."""
        if not self.wait_for(lambda: len(self.incoming) >= count, timeout):
            raise TimeoutError("no incoming call")
        prm = self.pj.CallOpParam(True)
        prm.statusCode = code
        self.call.answer(prm)
        return {"invite": self.incoming[count - 1], "call": len(self.calls) - 1}

    def cmd_wait_incoming(self, count: int = 1, timeout: float = 10.0, **_: Any) -> dict[str, Any]:
        """Wait for the ``count``-th incoming call (ringing: 180 sent)."""
        if not self.wait_for(lambda: len(self.incoming) >= count, timeout):
            raise TimeoutError("no incoming call")
        return {"invite": self.incoming[count - 1], "call": len(self.calls) - 1}

    def cmd_wait_state(
        self, state: str, timeout: float = 10.0, call: int | None = None, **_: Any
    ) -> dict[str, Any]:
        """Wait until the call reaches ``state`` (CONFIRMED, DISCONNECTED, EARLY...)."""
        states = self.pick(call).states
        seen = lambda: any(s["state"] == state for s in states)  # noqa: E731
        if not self.wait_for(seen, timeout):
            raise TimeoutError(f"call never {state}: {states}")
        return {"states": list(states)}

    def cmd_hangup(self, code: int = 0, call: int | None = None, **_: Any) -> dict[str, Any]:
        prm = self.pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        self.pick(call).hangup(prm)
        return {}

    def cmd_hold(self, call: int | None = None, **_: Any) -> dict[str, Any]:
        target = self.pick(call)
        target.media_active = False
        target.setHold(self.pj.CallOpParam(True))
        return {}

    def cmd_unhold(self, call: int | None = None, **_: Any) -> dict[str, Any]:
        target = self.pick(call)
        prm = self.pj.CallOpParam(True)
        prm.opt.flag = self.pj.PJSUA_CALL_UNHOLD
        target.media_active = False
        target.reinvite(prm)
        return {}

    def cmd_xfer(self, target: str, call: int | None = None, **_: Any) -> dict[str, Any]:
        """Blind transfer: REFER on the call to ``target`` (a SIP URI)."""
        prm = self.pj.CallOpParam(True)
        self.keep.append(prm)
        self.pick(call).xfer(target, prm)
        return {}

    def cmd_xfer_replaces(self, dest: int, call: int | None = None, **_: Any) -> dict[str, Any]:
        """Attended transfer: REFER on the call with Replaces naming call ``dest``."""
        prm = self.pj.CallOpParam(True)
        self.keep.append(prm)
        self.pick(call).xferReplaces(self.calls[dest], prm)
        return {}

    def cmd_wait_transfer(self, timeout: float = 10.0, **_: Any) -> dict[str, Any]:
        """Wait for the final NOTIFY of our REFER; returns every status seen."""
        if not self.wait_for(lambda: any(t["final"] for t in self.transfers), timeout):
            raise TimeoutError(f"no final NOTIFY: {self.transfers}")
        return {"transfers": list(self.transfers)}

    def cmd_dialog(self, call: int | None = None, **_: Any) -> dict[str, Any]:
        """The call's Call-ID and tags, as this phone sees its dialog."""
        target = self.pick(call)
        info = target.getInfo()
        return {"call_id": str(info.callIdString), **target.tags}

    def cmd_media_changes(self, call: int | None = None, **_: Any) -> dict[str, Any]:
        return {"count": self.pick(call).media_changes}

    def cmd_wait_media_change(
        self, above: int, timeout: float = 10.0, call: int | None = None, **_: Any
    ) -> dict[str, Any]:
        """Until the call's media changed more than ``above`` times (a re-INVITE
        applied: hold, resume, a transfer's new relay port)."""
        target = self.pick(call)
        if not self.wait_for(lambda: target.media_changes > above, timeout):
            raise TimeoutError(f"media still changed {target.media_changes} times")
        return {"count": target.media_changes}

    def _audio(self, timeout: float, call: int | None = None) -> Any:
        target = self.pick(call)
        if not self.wait_for(lambda: target.media_active, timeout):
            raise TimeoutError("no active media")
        return target, target.getAudioMedia(-1)

    def cmd_play(
        self, path: str, timeout: float = 5.0, call: int | None = None, **_: Any
    ) -> dict[str, Any]:
        """Send a WAV file (looped) into the call (again after each re-INVITE)."""
        target, media = self._audio(timeout, call)
        player = self.pj.AudioMediaPlayer()
        player.createPlayer(path)
        player.startTransmit(media)
        target.players.append(player)
        self.players.append(player)
        self.keep.append(player)
        return {}

    def cmd_record(
        self, path: str, timeout: float = 5.0, call: int | None = None, **_: Any
    ) -> dict[str, Any]:
        """Record what the call receives into a WAV file (across re-INVITEs)."""
        target, media = self._audio(timeout, call)
        recorder = self.pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        media.startTransmit(recorder)
        target.recorders.append(recorder)
        self.keep.append(recorder)
        return {}

    def cmd_dtmf(self, digits: str, call: int | None = None, **_: Any) -> dict[str, Any]:
        """Send ``digits`` in the current call (RFC 4733, pjsua2's default method)."""
        self.pick(call).dialDtmf(digits)
        return {}

    def cmd_info(self, call: int | None = None, **_: Any) -> dict[str, Any]:
        info = self.pick(call).getInfo()
        return {"state": str(info.stateText), "status": int(info.lastStatusCode)}

    def cmd_sleep(self, seconds: float = 1.0, **_: Any) -> dict[str, Any]:
        """Keep polling pjsip for ``seconds`` (media flows meanwhile)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(10)
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
