"""Composition root: ``aiguilleur run``.

Reads the settings, chooses the event loop (uvloop when installed, in
``loop_factory`` and nowhere else), builds the stack and runs it until a signal:

- SIGTERM or SIGINT, first time: graceful stop. Listeners stop accepting new
  connections; UDP and open connections keep serving while the transaction
  layer still has work (retransmissions, timers), for at most ``GRACE`` seconds.
  Then every socket is closed and the process exits 0.
- The same signal a second time: skip the wait, close now.
- SIGHUP: reserved for reloading the configuration (logged, nothing else yet).

With systemd (``Type=notify``), READY=1 is sent once every listener is bound
and STOPPING=1 when the stop begins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from media.ports import PortAllocator
from media.relay import MediaRelay
from routing.source import ConfigErrors
from switch import __version__
from switch.b2bua import B2bua
from switch.cdr import CdrStore, cdr_db_path
from switch.directory import DIRECTORY_FILE, Directory, load_directory, rewrite_clear_passwords
from switch.location import AsyncStore, LocationStoreError, SqliteLocationStore, location_db_path
from switch.log import LEVELS, configure_logging
from switch.registrar_service import BanGate, RegistrarService, StackPort, load_nonce_secret
from switch.settings import Settings, load_settings
from switch.sip.core import DEFAULT_ALLOW, Capabilities, StatelessCore
from switch.sip.transaction import TimerConfig
from switch.sip.transaction_layer import TransactionLayer
from switch.stack import Stack, new_branch
from switch.tls import contexts as tls_contexts
from switch.transport import ListenAddress, TransportLimits
from switch.trunk import Trunks

log = logging.getLogger("switch.app")

# In-dialog and call-setup methods the B2BUA handles (besides ACK, CANCEL).
CALL_METHODS = ("INVITE", "BYE", "UPDATE", "PRACK", "INFO", "REFER", "NOTIFY")
GRACE = 5.0  # seconds the first stop signal leaves to running transactions


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor: uvloop when installed (``auto``), else asyncio."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.new_event_loop


def _sd_notify(state: str) -> None:
    """systemd readiness protocol (sd_notify(3)); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(state.encode(), address)


def capabilities(settings: Settings) -> Capabilities:
    return Capabilities(
        allow=(*DEFAULT_ALLOW, "REGISTER", *CALL_METHODS),
        # REGISTER goes to a server transaction and the registrar service; the
        # call methods to the B2BUA (switch.b2bua). ACK and CANCEL always reach
        # the transaction layer.
        stateful=("REGISTER", *CALL_METHODS),
        supported=("100rel", "timer", "replaces"),
        server=f"{settings.sip.server_name}/{__version__}",
        tag_secret=os.urandom(16),
    )


def load_company_directory(config_dir: Path) -> Directory:
    """``DIR/directory.yaml``, its clear passwords replaced by HA1s in the file first.

    Raises ``ConfigErrors``. When clear secrets cannot be rewritten (read-only
    file), a warning says so and the switch works from the loaded copy.
    """
    directory = load_directory(config_dir)
    path = config_dir / DIRECTORY_FILE
    if path.is_file():
        count = rewrite_clear_passwords(path)
        if count:
            log.info("directory.passwords_hashed", extra={"file": str(path), "count": count})
        elif re.search(r"^\s*-?\s*(password|pin)\s*:", path.read_text(encoding="utf-8"), re.M):
            log.warning(
                "directory.clear_passwords",
                extra={"file": str(path), "detail": "could not rewrite clear passwords as HA1"},
            )
    return directory


class Server:
    """One running switch: build, serve until told to stop, stop in two steps."""

    def __init__(self, settings: Settings, data_dir: Path, *, grace: float = GRACE) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.grace = grace
        self.should_exit = asyncio.Event()
        self.force_exit = asyncio.Event()
        self.ready = asyncio.Event()
        self.stack: Stack | None = None
        self.registrar: RegistrarService | None = None
        self.b2bua: B2bua | None = None

    def handle_exit(self, signum: int) -> None:
        if self.should_exit.is_set():
            log.info("stop.forced", extra={"signal": signal.Signals(signum).name})
            self.force_exit.set()
        else:
            log.info("stop.requested", extra={"signal": signal.Signals(signum).name})
            self.should_exit.set()

    def handle_reload(self) -> None:
        log.warning("reload.unsupported", extra={"detail": "SIGHUP is reserved for reload"})

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig)
        loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
        try:
            sip = self.settings.sip
            needs_tls = any(listener.transport == "tls" for listener in sip.listen)
            server_ssl = client_ssl = None
            if needs_tls:
                try:
                    server_ssl, client_ssl = tls_contexts(self.settings, self.data_dir)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    log.error("tls.failed", extra={"error": str(exc)})
                    return 1
            try:
                directory = load_company_directory(self.settings.config_dir)
            except ConfigErrors as exc:
                for error in exc.errors:
                    log.error("directory.invalid", extra={"error": str(error)})
                return 1
            try:
                sync_store = SqliteLocationStore(location_db_path(self.data_dir))
                nonce_secret = load_nonce_secret(self.data_dir)
            except (LocationStoreError, OSError) as exc:
                log.error("registrar.store_failed", extra={"error": str(exc)})
                return 1
            timers = sip.timers
            layer = TransactionLayer(
                config=TimerConfig(t1=timers.t1, t2=timers.t2, t4=timers.t4),
                new_branch=new_branch,
            )
            self.stack = stack = Stack(
                StatelessCore(capabilities(self.settings)),
                layer,
                limits=TransportLimits(
                    max_message_size=sip.limits.max_message_size,
                    max_connections=sip.limits.max_connections,
                    max_connections_per_host=sip.limits.max_connections_per_host,
                    max_send_buffer=sip.limits.max_send_buffer,
                    idle_timeout=sip.limits.idle_timeout,
                    connect_timeout=sip.limits.connect_timeout,
                ),
                udp_mtu=sip.limits.udp_mtu,
                server_ssl=server_ssl,
                client_ssl=client_ssl,
            )
            self.registrar = registrar = RegistrarService(
                StackPort(stack),
                stack.core,
                directory=directory,
                store=AsyncStore(sync_store),
                settings=self.settings.registrar,
                nonce_secret=nonce_secret,
                domain=sip.domain,
                server=capabilities(self.settings).server,
            )
            # Silent bans: a gate in front of the stack drops what banned sources send.
            registrar.gate = BanGate(stack, registrar.admission, loop.time)
            stack.transport.user = registrar.gate
            stack.transport.on_connection_lost = registrar.connection_lost
            media = self.settings.media
            relay = MediaRelay(
                address=media.address,
                ports=PortAllocator(*media.rtp_ports),
                rtp_timeout=media.rtp_timeout,
            )
            cdr = CdrStore(cdr_db_path(self.data_dir))
            self.b2bua = b2bua = B2bua(
                stack,
                registrar=registrar,
                directory=directory,
                store=registrar.store,
                relay=relay,
                media=media,
                calls=self.settings.calls,
                domain=sip.domain,
                cdr=cdr,
                fallback=stack.on_event,  # the stack's own: 480 to any request left
                trunks=Trunks.from_settings(self.settings.trunks),
            )
            # Events: stack -> registrar (REGISTER) -> B2BUA (calls) -> stack's default.
            registrar.fallback = b2bua.handle_event
            stack.on_event = registrar.handle_event
            try:
                await stack.start(
                    [ListenAddress(li.transport.upper(), li.host, li.port) for li in sip.listen]
                )
            except OSError as exc:
                log.error("listen.failed", extra={"error": str(exc)})
                sync_store.close()
                return 1
            await registrar.start()
            log.info(
                "ready",
                extra={"version": __version__, "domain": sip.domain, "pid": os.getpid()},
            )
            _sd_notify("READY=1")
            self.ready.set()
            await self.should_exit.wait()
            _sd_notify("STOPPING=1")
            # New INVITEs get 503 while calls in progress end by themselves, up to
            # calls.drain_grace (a second signal cuts it short); then BYE the rest.
            await b2bua.drain(self.settings.calls.drain_grace, self.force_exit)
            await b2bua.close()  # BYE/CANCEL every call; the stop below lets them finish
            await self._stop(stack)
            await relay.close()
            await registrar.close()
            cdr.close()
            sync_store.close()
            log.info("stopped")
            return 0
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _stop(self, stack: Stack) -> None:
        # Step 1: no new connections; let running transactions finish.
        await stack.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        force = asyncio.ensure_future(self.force_exit.wait())
        try:
            while stack.busy() and not self.force_exit.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                # Wake when forced, or re-check at most every 100 ms.
                await asyncio.wait({force}, timeout=min(left, 0.1))
        finally:
            force.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await force
        # Step 2: close everything.
        await stack.close()


def run_command(args: argparse.Namespace) -> int:
    """``aiguilleur run --config DIR [--log-level L] [--data-dir D]``; the exit status."""
    try:
        settings = load_settings(Path(args.config))
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    level = getattr(args, "log_level", None) or settings.log_level
    configure_logging(level if level in LEVELS else "info")
    data_dir = settings.data_path(Path(args.data_dir) if getattr(args, "data_dir", None) else None)
    data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> int:
        return await Server(settings, data_dir).serve()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            return runner.run(main())
        except KeyboardInterrupt:  # a SIGINT before the handlers were installed
            return 130
