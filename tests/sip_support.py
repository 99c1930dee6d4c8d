"""Helpers shared by the adapter and interop tests: messages, ports, a switch process."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example"
_counter = itertools.count(1)


def options(
    transport: str = "UDP",
    host: str = "127.0.0.1",
    port: int = 5099,
    *,
    call_id: str | None = None,
    extra: str = "",
    method: str = "OPTIONS",
    max_forwards: int = 70,
    ruri: str = "sip:pbx.test",
    via_host: str | None = None,
) -> bytes:
    """A well-formed out-of-dialog request (OPTIONS unless told otherwise)."""
    n = next(_counter)
    call_id = call_id or f"test-{os.getpid()}-{n}@{host}"
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host or host}:{port};branch=z9hG4bK-t{n};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:probe@pbx.test>;tag=f{n}\r\n"
        f"To: <sip:pbx.test>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {n} {method}\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def status_of(data: bytes) -> int:
    """The status code of a response's bytes."""
    match = re.match(rb"SIP/2\.0 (\d{3}) ", data)
    assert match, data[:80]
    return int(match.group(1))


def header(data: bytes, name: str) -> str | None:
    match = re.search(rb"\r\n" + name.encode() + rb"[ \t]*:[ \t]*([^\r\n]*)", data, re.IGNORECASE)
    return match.group(1).decode() if match else None


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


def write_config(directory: Path, *, sip_port: int, tls_port: int, extra: str = "") -> Path:
    """A copy of config/example with the listeners moved to the given ports."""
    shutil.copytree(EXAMPLE, directory, dirs_exist_ok=True)
    text = (EXAMPLE / "switch.yaml").read_text(encoding="utf-8")
    text = text.replace("port: 5060}", f"port: {sip_port}}}").replace(
        "port: 5061}", f"port: {tls_port}}}"
    )
    assert str(sip_port) in text
    assert str(tls_port) in text
    # The admin API (127.0.0.1:8080 in the example) on a free port too: test
    # switches must not collide with each other nor with a running `make run`.
    assert "\n  port: 8080\n" in text
    text = text.replace("\n  port: 8080\n", f"\n  port: {free_port()}\n")
    for key in re.findall(r"^([A-Za-z_]+):", extra, re.M):
        text = without_section(text, key)
    (directory / "switch.yaml").write_text(text + extra, encoding="utf-8")
    return directory


def without_section(yaml_text: str, key: str) -> str:
    """``yaml_text`` without its top-level ``key:`` block (``extra`` replaces it)."""
    out: list[str] = []
    skipping = False
    for line in yaml_text.splitlines(keepends=True):
        if re.match(rf"{key}:", line):
            skipping = True
            continue
        if skipping and line.strip() and not line[0].isspace():
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


def udp_exchange(data: bytes, port: int, *, timeout: float = 1.0) -> bytes | None:
    """Send one datagram to 127.0.0.1:port and return the first answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        own = sock.getsockname()[1]
        sock.sendto(data.replace(b":5099;", f":{own};".encode()), ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


@dataclass(frozen=True)
class SwitchConfig:
    config_dir: Path
    data_dir: Path
    sip_port: int  # UDP and TCP
    tls_port: int


@dataclass
class SwitchProcess:
    """``aiguilleur run`` in its own process, on its own ports."""

    config_dir: Path
    data_dir: Path
    sip_port: int
    tls_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(
        self, *, log_level: str = "info", timeout: float = 15.0, args: Sequence[str] = ()
    ) -> SwitchProcess:
        """Start and wait until ready; ``args`` are more ``aiguilleur run`` options."""
        log = self.log_path.open("wb")
        self._log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switch",
                "run",
                "--config",
                str(self.config_dir),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                log_level,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll with OPTIONS until the switch answers 200 (no sleeping on faith)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"switch exited with {self.proc.returncode}:\n{self.log()}")
            answer = udp_exchange(options(), self.sip_port, timeout=0.2)
            if answer is not None and status_of(answer) == 200:
                return
        raise AssertionError(f"switch not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *, timeout: float = 10.0) -> int:
        """SIGTERM by PID; return the exit status (killed after ``timeout``)."""
        assert self.proc is not None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return -9
        finally:
            with contextlib.suppress(Exception):
                self._log.close()  # type: ignore[attr-defined]
