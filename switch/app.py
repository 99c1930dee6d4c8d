"""Composition root: ``aiguilleur run``.

Reads the settings, chooses the event loop (uvloop when installed, in
``loop_factory`` and nowhere else), builds the stack and runs it until a signal:

- SIGTERM or SIGINT, first time: graceful stop. Listeners stop accepting new
  connections; UDP and open connections keep serving while the transaction
  layer still has work (retransmissions, timers), for at most ``GRACE`` seconds.
  Then every socket is closed and the process exits 0.
- The same signal a second time: skip the wait, close now.
- SIGHUP: reload the routing programs (``DIR/routing/*.yaml``), exactly as
  ``POST /reload`` on the admin API does. Files with errors are refused, every
  error logged as ``file:line:col: ...``, and the running programs stay.

Routing programs load at start (an error stops the start, like directory
errors); plans de secours switched on through the admin API are kept in
``DATA_DIR/plans.sqlite3`` and applied again to every library installed. The
admin HTTP API (``switch.admin``: metrics, reload, plans) starts once the SIP
listeners are bound and stops after them.

With systemd (``Type=notify``), READY=1 is sent once every listener is bound
and STOPPING=1 when the stop begins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import re
import resource
import secrets
import signal
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.announcements import Announcements
from media.ports import PortAllocator
from media.relay import MediaRelay
from routing.loader import LibraryHolder, load_library
from routing.source import ConfigErrors
from switch import __version__
from switch.admin import AdminServer, Reloaded, admin_url
from switch.b2bua import B2bua
from switch.bans import BanStore, BanStoreError, bans_db_path
from switch.blf import Blf
from switch.cdr import CdrStore, cdr_db_path
from switch.cursors import CursorStore, cursors_db_path
from switch.daynight import GroupDayNight
from switch.directory import DIRECTORY_FILE, Directory, load_directory, rewrite_clear_passwords
from switch.line_settings import (
    AsyncSettingsStore,
    SqliteLineSettingsStore,
    line_settings_db_path,
)
from switch.location import AsyncStore, LocationStoreError, SqliteLocationStore, location_db_path
from switch.log import configure_logging
from switch.metrics import CONTENT_TYPE, Metrics
from switch.plans import BackupPlans, PlanChange, PlanError, PlanStore, plans_db_path
from switch.registrar import live_bindings
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
# Event subscriptions (BLF: switch.blf).
EVENT_METHODS = ("SUBSCRIBE",)
GRACE = 5.0  # seconds the first stop signal leaves to running transactions
ROUTING_DIR = "routing"  # in the configuration directory
# Relay port pairs kept bound between calls (``MediaRelay.pool``): with the
# relay's half-second quarantine, enough for about 1000 calls/s.
RELAY_POOL = 1024


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


def relay_pool() -> int:
    """How many port pairs the media relay keeps bound between calls: up to
    ``RELAY_POOL``, within an eighth of the process's descriptor limit (two
    sockets per pair; calls in progress need theirs)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return RELAY_POOL
    return max(0, min(RELAY_POOL, soft // 8))


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
        allow=(*DEFAULT_ALLOW, "REGISTER", *CALL_METHODS, *EVENT_METHODS),
        # REGISTER goes to a server transaction and the registrar service; the
        # call methods to the B2BUA (switch.b2bua). ACK and CANCEL always reach
        # the transaction layer.
        stateful=("REGISTER", *CALL_METHODS, *EVENT_METHODS),
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


def injected_clock(at: datetime) -> Callable[[], float]:
    """A wall clock that reads ``at`` now and then advances with real time.

    A test hook (``aiguilleur run --clock``): calendars and CDRs of a test
    switch see the instant the test chose. Monotonic time drives it, so it
    moves at the real pace and never jumps.
    """
    if at.tzinfo is None:
        raise ValueError("the clock needs a time zone offset, e.g. 2026-05-14T10:00:00+02:00")
    base, start = at.timestamp(), time.monotonic()
    return lambda: base + (time.monotonic() - start)


class Server:
    """One running switch: build, serve until told to stop, stop in two steps.

    ``wall`` is the switch's wall clock for call handling (routing calendars,
    CDR times): ``time.time`` except under test (:func:`injected_clock`). It
    is also the admin API's backend (``switch.admin.Backend``).
    """

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        grace: float = GRACE,
        wall: Callable[[], float] = time.time,
        tune_gc: bool = False,
    ) -> None:
        self.settings = settings
        self.tune_gc = tune_gc
        self.data_dir = data_dir
        self.grace = grace
        self.wall = wall
        self.should_exit = asyncio.Event()
        self.force_exit = asyncio.Event()
        self.ready = asyncio.Event()
        self.stack: Stack | None = None
        self.registrar: RegistrarService | None = None
        self.b2bua: B2bua | None = None
        self.blf: Blf | None = None
        self.metrics = Metrics()
        self.routing: LibraryHolder | None = None
        self.plans: BackupPlans | None = None
        self.admin: AdminServer | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def handle_exit(self, signum: int) -> None:
        if self.should_exit.is_set():
            log.info("stop.forced", extra={"signal": signal.Signals(signum).name})
            self.force_exit.set()
        else:
            log.info("stop.requested", extra={"signal": signal.Signals(signum).name})
            self.should_exit.set()

    def handle_reload(self) -> asyncio.Task[Reloaded]:
        """SIGHUP: :meth:`reload` in a task (signal handlers cannot await)."""
        task = asyncio.get_running_loop().create_task(self.reload("SIGHUP"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _announcements(self) -> Announcements | None:
        """The messages of the loaded routing, decoded once now (not on a call's path);
        an undecodable file is logged and the call that needs it is told so."""
        if self.routing is None:
            return None
        announcements = Announcements.from_library(self.routing.current)
        for error in announcements.preload():
            log.error("message.unreadable", extra={"error": str(error)})
        return announcements

    @property
    def routing_dir(self) -> Path:
        return self.settings.config_dir / ROUTING_DIR

    async def reload(self, by: str) -> Reloaded:
        """Load the routing files again; install them only if they have no error.

        Loading runs in a thread: a large library takes a while to validate and
        the SIP stack keeps serving meanwhile. Reloads run one at a time. Active
        calls keep the library they started with.
        """
        async with self._reload_lock:
            holder, plans = self.routing, self.plans
            if holder is None or plans is None:
                errors = [
                    f"{self.routing_dir}: no routing programs were loaded at start; "
                    "restart the switch to load them"
                ]
            else:
                try:
                    library = await asyncio.to_thread(load_library, self.routing_dir)
                except ConfigErrors as exc:
                    errors = [str(error) for error in exc.errors]
                else:
                    holder.swap(plans.apply(library))
                    self.metrics.reloaded(True)
                    if self.b2bua is not None:
                        # New or changed message files: decoded now, off the event
                        # loop, rather than by the first call that plays them.
                        messages = self.b2bua.announcements_for(holder.current)
                        for failed in await asyncio.to_thread(messages.preload):
                            log.error("message.unreadable", extra={"error": str(failed)})
                    log.info(
                        "routing.reloaded",
                        extra={"by": by, "numbers": len(library.numbers), "digest": library.digest},
                    )
                    return Reloaded([], len(library.numbers))
            self.metrics.reloaded(False)
            log.error("routing.reload_refused", extra={"by": by, "errors": len(errors)})
            for error in errors:
                log.error("routing.invalid", extra={"error": error})
            return Reloaded(errors)

    # -- the admin API's backend (switch.admin.Backend) --------------------------------------
    def render_metrics(self) -> tuple[bytes, str]:
        return self.metrics.render(), CONTENT_TYPE

    def activate_plan(self, number: str, plan: str, by: str) -> PlanChange:
        return self._backup_plans().activate(number, plan, by)

    def deactivate_plan(self, number: str, by: str) -> PlanChange:
        return self._backup_plans().deactivate(number, by)

    def active_plans(self) -> list[dict[str, str | None]]:
        return self._backup_plans().listing()

    def health(self) -> dict[str, Any]:
        library = self.routing.current if self.routing is not None else None
        return {
            "version": __version__,
            "ready": self.ready.is_set(),
            "stopping": self.should_exit.is_set(),
            # The wall time calls see (shows an injected --clock at work).
            "wall_time": datetime.fromtimestamp(self.wall(), UTC).isoformat(),
            "routing": None
            if library is None
            else {"numbers": len(library.numbers), "digest": library.digest},
        }

    def _backup_plans(self) -> BackupPlans:
        if self.plans is None:
            raise PlanError("the switch is not started")
        return self.plans

    def _load_routing(self, plans: PlanStore) -> bool:
        """Routing programs and stored plans at start; False (logged) on errors."""
        routing_dir = self.routing_dir
        if not routing_dir.is_dir():
            log.info("routing.none", extra={"dir": str(routing_dir)})
            self.plans = BackupPlans(plans, None, wall=time.time)
            return True
        try:
            library = load_library(routing_dir)
        except ConfigErrors as exc:
            for error in exc.errors:
                log.error("routing.invalid", extra={"error": str(error)})
            return False
        self.routing = holder = LibraryHolder(library)
        self.plans = backup = BackupPlans(plans, holder, wall=time.time)
        holder.swap(backup.apply(library))
        self.metrics.library_installed(time.time())
        log.info(
            "routing.loaded",
            extra={
                "numbers": len(library.numbers),
                "digest": library.digest,
                "plans": ",".join(f"{p.number}={p.plan}" for p in plans.active()) or "none",
            },
        )
        return True

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as closing:
            # Everything opened below is closed by this stack, in reverse order,
            # whether the start fails half-way or the switch stops after serving.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handle_exit, sig)
            loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                closing.callback(loop.remove_signal_handler, sig)
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
                closing.callback(sync_store.close)
                ban_store = BanStore(bans_db_path(self.data_dir))  # bans outlive a restart
                closing.callback(ban_store.close)
                nonce_secret = load_nonce_secret(self.data_dir)
            except (LocationStoreError, BanStoreError, OSError) as exc:
                log.error("registrar.store_failed", extra={"error": str(exc)})
                return 1
            try:
                plan_store = PlanStore(plans_db_path(self.data_dir))
            except sqlite3.Error as exc:
                log.error("plans.store_failed", extra={"error": str(exc)})
                return 1
            closing.callback(plan_store.close)
            if not self._load_routing(plan_store):
                return 1
            timers = sip.timers
            layer = TransactionLayer(
                config=TimerConfig(t1=timers.t1, t2=timers.t2, t4=timers.t4),
                new_branch=new_branch,
            )
            caps = capabilities(self.settings)
            self.stack = stack = Stack(
                StatelessCore(caps),
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
            stack.observer = self.metrics  # SIP message counters
            self.metrics.set_stack(lambda: stack.stats)  # aiguilleur_stack_*, read per scrape
            self.registrar = registrar = RegistrarService(
                StackPort(stack),
                stack.core,
                directory=directory,
                store=AsyncStore(sync_store),
                settings=self.settings.registrar,
                nonce_secret=nonce_secret,
                domain=sip.domain,
                server=caps.server,
                bans=ban_store,
            )
            # Silent bans: a gate in front of the stack drops what banned sources send.
            registrar.gate = gate = BanGate(stack, registrar.admission, loop.time)
            self.metrics.set_registrations(
                lambda: len(live_bindings(sync_store.all(), registrar.wall()))
            )
            self.metrics.set_registrar(lambda: registrar.stats)  # aiguilleur_registrar_*
            self.metrics.set_ban_gate(lambda: gate.dropped)
            stack.transport.user = registrar.gate
            stack.transport.on_connection_lost = registrar.connection_lost
            media = self.settings.media
            relay = MediaRelay(
                address=media.address,
                # A random starting place in the range: see media.ports.
                ports=PortAllocator(
                    *media.rtp_ports,
                    start=media.rtp_ports[0]
                    + secrets.randbelow(media.rtp_ports[1] - media.rtp_ports[0] + 1),
                ),
                rtp_timeout=media.rtp_timeout,
                pool=relay_pool(),
            )
            cdr = CdrStore(cdr_db_path(self.data_dir))
            cursors = CursorStore(cursors_db_path(self.data_dir))
            # Star-code settings (forwards, CLIR, groups...): committed before any
            # confirmation is played, so they survive a restart.
            line_settings = SqliteLineSettingsStore(line_settings_db_path(self.data_dir))
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
                wall=self.wall,
                routing=self.routing,
                metrics=self.metrics,
                cursors=cursors,
                line_settings=AsyncSettingsStore(line_settings),
                data_dir=self.data_dir,
                announcements=self._announcements(),
            )
            self.metrics.set_b2bua(lambda: b2bua.stats)  # aiguilleur_b2bua_*, read per scrape
            # BLF: SUBSCRIBE Event: dialog, call state from the B2BUA's observer hook.
            self.blf = blf = Blf(
                stack,
                registrar=registrar,
                directory=directory,
                calls=lambda: b2bua.calls,
                fallback=b2bua.fallback,
            )
            self.metrics.set_blf(lambda: blf.stats)  # aiguilleur_blf_*
            b2bua.fallback = blf.handle_event
            b2bua.on_call_change = blf.call_changed
            # Events: stack -> registrar (REGISTER) -> B2BUA (calls) -> BLF (SUBSCRIBE,
            # NOTIFY answers) -> stack's default.
            registrar.fallback = b2bua.handle_event
            stack.on_event = registrar.handle_event
            admin_settings = self.settings.admin
            self.admin = admin = AdminServer(
                self,
                host=admin_settings.host,
                port=admin_settings.port,
                token=admin_settings.token,
                groups=GroupDayNight(b2bua),
            )
            # The stop, last first: the B2BUA hangs up every call, the stack lets
            # their transactions end (:meth:`_stop`), then the admin API, the media,
            # the registrar, a reload in flight and the stores close.
            closing.callback(cursors.close)
            closing.callback(line_settings.close)
            closing.callback(cdr.close)
            closing.push_async_callback(self._cancel_tasks)
            closing.push_async_callback(registrar.close)
            closing.push_async_callback(relay.close)
            closing.push_async_callback(admin.close)
            closing.push_async_callback(self._stop, stack)
            closing.push_async_callback(b2bua.close)
            closing.push_async_callback(blf.close)
            try:
                await stack.start(
                    [ListenAddress(li.transport.upper(), li.host, li.port) for li in sip.listen]
                )
            except OSError as exc:
                log.error("listen.failed", extra={"error": str(exc)})
                return 1
            await registrar.start()
            try:
                await admin.start()
            except OSError as exc:
                log.error(
                    "admin.listen_failed",
                    extra={
                        "address": f"{admin_settings.host}:{admin_settings.port}",
                        "error": str(exc),
                    },
                )
                return 1
            log.info(
                "ready",
                extra={
                    "version": __version__,
                    "domain": sip.domain,
                    "pid": os.getpid(),
                    "admin": admin_url(admin.host, admin.port),
                },
            )
            # Everything built so far lives as long as the process: out of the
            # collector's sight. Calls allocate many short-lived objects; a larger
            # first generation threshold collects them far less often (profiled at
            # 280 calls/s: GC time per call more than halved).
            if self.tune_gc:  # the process's own switch, not one inside a test run
                gc.freeze()
                gc.set_threshold(10_000, 10, 10)
            _sd_notify("READY=1")
            self.ready.set()
            await self.should_exit.wait()
            _sd_notify("STOPPING=1")
            # New INVITEs get 503 while calls in progress end by themselves, up to
            # calls.drain_grace (a second signal cuts it short); leaving the block
            # then BYEs the rest and stops in two steps (``closing`` above).
            await b2bua.drain(self.settings.calls.drain_grace, self.force_exit)
        log.info("stopped")
        return 0

    async def _stop(self, stack: Stack) -> None:
        """Close the stack: in two steps once it served (``ready``), else at once."""
        if self.ready.is_set():
            await self._finish_transactions(stack)
        # Step 2: close every socket and connection.
        await stack.close()

    async def _finish_transactions(self, stack: Stack) -> None:
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

    async def _cancel_tasks(self) -> None:
        """A SIGHUP reload still in flight at the stop: its answer is moot."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def run_command(args: argparse.Namespace) -> int:
    """``aiguilleur run --config DIR [--log-level L] [--data-dir D] [--clock T]``: exit status."""
    try:
        settings = load_settings(Path(args.config))
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    wall: Callable[[], float] = time.time
    clock = args.clock
    if clock is not None:
        try:
            wall = injected_clock(datetime.fromisoformat(clock))
        except ValueError as exc:
            print(f"--clock {clock}: {exc}", file=sys.stderr)
            return 1
    configure_logging(args.log_level or settings.log_level)  # both checked: choices, LogLevel
    if clock is not None:
        log.warning(
            "clock.injected",
            extra={"at": clock, "detail": "test hook: calls see this wall time, advancing"},
        )
    data_dir = settings.data_path(Path(args.data_dir) if args.data_dir else None)
    data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> int:
        return await Server(settings, data_dir, wall=wall, tune_gc=True).serve()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            return runner.run(main())
        except KeyboardInterrupt:  # a SIGINT before the handlers were installed
            return 130
