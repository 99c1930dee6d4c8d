"""The B2BUA executor: INVITEs become ``switch.call.Call``s; their commands run here.

For every out-of-dialog INVITE the transaction layer passes up
(``RequestReceived``), in order:

1. **Ban check** (the registrar's ``Admission``): a banned source gets ``403``.
2. **Caller**: the ``From`` domain must be a company's; anything else is refused
   ``403`` (no open relay: nothing is called on behalf of an unknown source).
3. **Digest** (``RegistrarService.authenticate`` with ``proxy=True``): the
   same nonces, algorithms and brute-force accounting as REGISTER, answered
   ``407`` with ``Proxy-Authenticate`` (RFC 3261 §22.3); the digest user must be
   the ``From`` user.
4. **Caller's line limit** (``Line.max_calls``): ``486`` beyond it.
5. The A leg (``InviteSession.uas``) and the ``Call`` are created at once, so
   that a CANCEL arriving during the lookups finds them; then, asynchronously:
6. **Callee**: the Request-URI user as an extension of the caller's company,
   else a service number with a routing program (``switch.service`` runs it:
   limiter, messages, GNR, overflow), else a direct number, else (lines only) a
   number out through a trunk (``404`` when none applies); its line limit (``486``);
   its reachable bindings (``480`` when none); a relay session; one B leg per
   binding, sent to the binding's source (over its connection for TCP/TLS).

Then the executor only pumps: layer events to the call that owns the Call-ID
(or the client transaction, for timeouts), the call's commands to the stack,
the relay and the CDR store, one ``loop.call_at`` per call for its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ivr.announcements import Announcements
from media.relay import SrtpKeys, SrtpKeysError
from routing.engine import DialTarget
from routing.forwarding import Caller as ForwardCaller
from routing.loader import Library, LibraryHolder, NumberEntry
from switch import features
from switch.call import (
    SRTP_KEY_MATERIAL,
    Call,
    CallCommand,
    CallEnded,
    CallState,
    DialFailed,
    DigitPressed,
    LegSend,
    Limits,
    MediaAnswered,
    MediaPlan,
    MediaUpdate,
    Target,
    TargetAnswered,
    TransferAbandoned,
    TransferRequested,
)
from switch.cdr import CdrStore
from switch.cursors import CursorStore
from switch.directory import Company, Directory, Line
from switch.limiter import Limiter
from switch.line_call import LineCall, needs_driver
from switch.line_settings import (
    AsyncLineSettingsStore,
    AsyncSettingsStore,
    MemoryLineSettingsStore,
)
from switch.location import AsyncLocationStore
from switch.registrar_service import RegistrarService
from switch.service import Caller, ServiceCall
from switch.settings import CallSettings, MediaSettings
from switch.sip.endpoint import Endpoint, hostport
from switch.sip.errors import ParseError
from switch.sip.events import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.invite import (
    InviteSession,
    LocalOrigin,
    SendAck,
    SendCancel,
    SendRequest,
    SendResponse,
    SessionConfig,
    SessionIds,
)
from switch.sip.message import Request, Response
from switch.sip.transaction import ClientKey
from switch.sip.transaction_layer import NoSuchTransaction
from switch.sip.uri import parse_uri
from switch.stack import LoopTimer, new_branch
from switch.tokens import token_bytes, token_hex
from switch.transfer import Transfers
from switch.trunk import Outbound, Refusal, Trunk, Trunks, identity_headers

if TYPE_CHECKING:
    from switch.metrics import Metrics

log = logging.getLogger(__name__)
OVERLOAD_RETRY_AFTER = "5"  # seconds, in the 503 of a call shed under overload

RECONCILE_EVERY = 60.0  # seconds between limiter reconciliations against live calls


class RelayPort(Protocol):
    """What the executor needs of ``media.relay.MediaRelay``."""

    async def open_session(self, name: str) -> Any: ...


@dataclass(slots=True)
class _Running:
    call: Call
    lines: list[str]
    session: Any = None  # media.relay.RelaySession once open
    media: dict[str, MediaUpdate] = field(default_factory=dict)  # before the session opens
    timer: LoopTimer | None = None  # follows the call's deadline; dropped when forgotten
    call_ids: set[str] = field(default_factory=set)
    keys: set[ClientKey] = field(default_factory=set)
    ended: bool = False
    # A call to a service number (its routing), or to a line or group (its forwards).
    service: ServiceCall | LineCall | None = None
    target_lines: dict[str, str] = field(default_factory=dict)  # dialled label -> line key
    # Called with every command of the call (switch.features waits on digits and the end);
    # at most one: the star-code or pre-answer player of the call.
    watcher: Callable[[CallCommand], None] | None = None
    transfer: _Running | None = None  # the new call of the blind transfer this call accepted
    origin: _Running | None = None  # the call whose REFER this call carries out


class B2bua:
    """Calls between the company's phones; see the module docstring."""

    def __init__(
        self,
        stack: Any,
        *,
        registrar: RegistrarService,
        directory: Directory,
        store: AsyncLocationStore,
        relay: RelayPort,
        media: MediaSettings,
        calls: CallSettings,
        domain: str,
        cdr: CdrStore | None = None,
        fallback: Callable[[Event], None] | None = None,
        trunks: Trunks | None = None,
        wall: Callable[[], float] = time.time,
        routing: LibraryHolder | None = None,
        metrics: Metrics | None = None,
        limiter: Limiter | None = None,
        cursors: CursorStore | None = None,
        announcements: Announcements | None = None,
        line_settings: AsyncLineSettingsStore | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.stack = stack
        self.registrar = registrar
        self.directory = directory
        self.store = store
        self.relay = relay
        self.media = media
        self.limits = Limits(ring_timeout=calls.ring_timeout, max_duration=calls.max_duration)
        self.domain = domain
        self.cdr = cdr
        self.fallback = fallback
        self.trunks = trunks or Trunks()
        self.wall = wall
        self.loop = asyncio.get_running_loop()
        self.stats: Counter[str] = Counter()
        self.active: Counter[str] = Counter()  # line key -> calls in progress
        self._by_call_id: dict[str, _Running] = {}
        self._by_key: dict[ClientKey, _Running] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = SessionIds(
            new_tag=lambda: token_hex(6),
            new_branch=new_branch,
            new_call_id=lambda: f"{token_hex(12)}@{domain}",
            rng=random.Random(os.urandom(16)),
        )
        self.closing = asyncio.Event()  # set: new INVITEs get 503 (drain, close)
        self.routing = routing
        self.metrics = metrics
        self.limiter = limiter or Limiter()
        self.cursors = cursors or CursorStore(None)
        # Per-line settings changed by star codes (forwards, CLIR, groups, ...).
        self.line_settings: AsyncLineSettingsStore = line_settings or AsyncSettingsStore(
            MemoryLineSettingsStore()
        )
        self.announcements = announcements
        self.data_dir = data_dir  # pre-answer recordings (switch.features); None: not kept
        # The library ``announcements`` was built from (the one loaded at start).
        self._announced: Library | None = (
            routing.current if routing is not None and announcements is not None else None
        )
        self._rng = random.Random(os.urandom(16))
        self._reconcile = self.loop.call_later(RECONCILE_EVERY, self._reconcile_limits)
        # Observer of call state (BLF, ``switch.blf``): called after each execute().
        self.on_call_change: Callable[[Call], None] | None = None
        self.transfers = Transfers(self)

    # -- lifecycle -------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        return list({id(r.call): r.call for r in self._by_call_id.values()}.values())

    async def drain(self, grace: float, force: asyncio.Event | None = None) -> None:
        """Graceful stop, first step: new INVITEs get ``503`` with ``Retry-After``
        while the calls in progress may end by themselves, for at most ``grace``
        seconds (or until ``force`` is set); ``close`` then hangs up the rest."""
        self.closing.set()
        deadline = self.loop.time() + grace
        while any(not r.ended for r in self._by_call_id.values()):
            left = deadline - self.loop.time()
            if left <= 0 or (force is not None and force.is_set()):
                return
            await asyncio.sleep(min(left, 0.05))

    async def close(self) -> None:
        """Hang up every call (BYE/CANCEL/480) and release the media."""
        self.closing.set()
        self._reconcile.cancel()
        now = self.loop.time()
        for running in list({id(r): r for r in self._by_call_id.values()}.values()):
            running.call.hang_up("shutdown", now)
            self.execute(running)
        for task in list(self._tasks):
            task.cancel()

    # -- events --------------------------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        running = self._owner(event)
        if running is not None:
            if isinstance(event, TransactionTerminated):
                if isinstance(event.key, ClientKey):
                    running.keys.discard(event.key)
                    self._by_key.pop(event.key, None)
                return
            if running.call.handle(event, self.loop.time()):
                self.execute(running)
                return
        if (
            isinstance(event, RequestReceived)
            and event.request.method == "INVITE"
            and event.request.to_tag is None
        ):
            self._new_call(event)
            return
        if (
            isinstance(event, RequestReceived)
            and event.request.to_tag is not None
            and event.request.method in ("BYE", "INVITE", "UPDATE", "PRACK", "INFO", "REFER")
        ):
            # §12.2.2: a request for a dialog we do not have.
            self._refuse(event.request, 481)
            return
        if isinstance(event, RequestReceived) and event.request.method == "REFER":
            # RFC 3515 §2.4.2 lets a UA decline a REFER: a transfer is done from
            # inside a call (``switch.transfer``), never by an outsider's REFER.
            self._refuse(event.request, 403, "REFER outside a call")
            return
        if self.fallback is not None:
            self.fallback(event)

    def _owner(self, event: Event) -> _Running | None:
        if isinstance(event, RequestReceived | AckReceived):
            return self._by_call_id.get(event.request.call_id)
        if isinstance(event, CancelReceived):
            return self._by_call_id.get(event.cancel_request.call_id)
        if isinstance(event, ResponseReceived | StrayResponseReceived):
            return self._by_call_id.get(event.response.call_id)
        if isinstance(event, TransactionTimedOut | TransportErrorOccurred | TransactionTerminated):
            key = event.key
            return self._by_key.get(key) if isinstance(key, ClientKey) else None
        return None

    # -- new calls ---------------------------------------------------------------------------
    def _refuse(self, request: Request, status: int, reason: str | None = None) -> None:
        self.stats[f"refused_{status}"] += 1
        with contextlib.suppress(NoSuchTransaction):
            self.stack.send_response(self.registrar.core.reply(request, status, reason))

    def _new_call(self, event: RequestReceived) -> None:
        request, source = event.request, event.source
        now = self.loop.time()
        overloaded = not self.closing.is_set() and self.stack.overloaded()
        if self.closing.is_set() or overloaded:  # overloaded: shed the new call
            self.stats["overload_503"] += overloaded
            retry_after = OVERLOAD_RETRY_AFTER if overloaded else "30"
            with contextlib.suppress(NoSuchTransaction):
                self.stack.send_response(
                    self.registrar.core.reply(request, 503, extra=[("Retry-After", retry_after)])
                )
            return
        if self.registrar.banned(source.host, now):
            self._refuse(request, 403)
            return
        try:
            from_uri = request.from_.uri
            called_user = request.uri.user or ""
        except ParseError as exc:
            self._refuse(request, 400, exc.reason)
            return
        trunk = self.trunks.by_source(source)
        if trunk is not None:
            self._new_trunk_call(event, trunk, from_uri.user or "", called_user, now)
            return
        # Only for one of our lines, digest-authenticated (no open relay).
        caller = self.registrar.authenticate_line(request, from_uri, source.host, now)
        if isinstance(caller, Response):
            self.stats[f"refused_{caller.status}"] += 1
            with contextlib.suppress(NoSuchTransaction):
                self.stack.send_response(caller)
            return
        if self.active[caller.key] >= caller.max_calls:
            self._refuse(request, 486)
            return
        if "Replaces" in request.headers:
            self.transfers.replaces_invite(event, caller, now)  # pickup, transfer
            return
        running = self._start(event, caller.key, called_user, line=caller.key, now=now)
        if running is not None:
            self._spawn(self._setup(running, caller.domain, caller, called_user))

    def _start(
        self, event: RequestReceived, caller: str, called: str, *, line: str, now: float
    ) -> _Running | None:
        """The A leg and its ``Call``, indexed and counted against ``line``; None when
        the A leg could not start (the caller then gets ``500``)."""
        leg = InviteSession.uas(
            self._config(event.source), self._ids, event.request, event.key, now=now
        )
        call = Call(
            leg,
            a_dest=event.source,
            ids=self._ids,
            media=None,
            now=now,
            started_at=datetime.fromtimestamp(self.wall(), UTC),
            caller=caller,
            called=called,
            id=token_hex(8),
            limits=self.limits,
            srtp_keys=_srtp_keys(),
            line=line,
        )
        running = _Running(call, lines=[line])
        self.active[line] += 1
        self._index(running, leg.call_id)
        self.stats["calls"] += 1
        self.execute(running)
        if leg.terminated:
            call.reject(500, now)
            self.execute(running)
            return None
        return running

    async def _setup(
        self,
        running: _Running,
        domain: str,
        caller: Line | None,
        called: str,
        *,
        from_: str | None = None,
    ) -> None:
        """Find the callee and dial it; ``caller`` None: a trunk's call (``from_`` set)."""
        call = running.call
        try:
            withheld = False
            if caller is not None:  # star codes, speed dials, CLIR: switch.features
                dialled = await features.intercept(self, running, caller, called)
                if dialled is None:
                    return
                called, withheld = dialled.number, dialled.withheld
            found = self.directory.line_for(called, domain) if caller is not None else None
            if found is None and caller is not None:
                company = features.company_of(self, caller)
                if company.group(called) is not None:
                    await self._hunt(running, company, caller, called, withheld=withheld)
                    return
            if found is None and await self._service(
                running, called, domain, caller, withheld=withheld
            ):
                return
            found = found or self.directory.line_by_direct_number(called)
            if found is None and caller is not None:
                await self._dial_out(running, caller, called, withheld=withheld)
                return
            if found is None:
                self.reject(running, 404, "not-found")
                return
            company, callee = found
            if caller is not None:
                from_ = features.phone_from(caller.extension, caller.name, withheld, caller.domain)
            assert from_ is not None
            # Forwards, the main number's Standard, a mobile: switch.line_call.
            main_number = called != callee.extension and callee.direct_number == (
                company.main_number
            )
            settings = await self.line_settings.load(callee.key)
            if needs_driver(settings, callee, main_number=main_number):
                driver = self._line_call(running, company, caller, from_, withheld=withheld)
                await driver.call_line(callee, settings, main_number=main_number)
                return
            if self.active[callee.key] >= callee.max_calls:
                self.reject(running, 486, "line-limit")
                return
            targets = await self._line_targets(callee, from_, callee.key)
            if call.state >= CallState.ENDING:
                return
            if not targets:
                self.reject(running, 480, "unregistered")
                return
            if not await self.open_media(running, callee.key):
                return
            await features.pre_answer(self, running, callee, settings)  # *35*1: before it rings
            call.dial(targets, self.loop.time())
            self.execute(running)
        except Exception:
            log.exception("call.setup_failed", extra={"call": call.id})
            self.reject(running, 500, "internal-error")

    # -- lines and groups (switch.line_call runs forwards and hunts) ---------------------
    def _line_call(
        self,
        running: _Running,
        company: Company,
        caller: Line | None,
        from_: str,
        *,
        withheld: bool = False,
    ) -> LineCall:
        """The driver of a routed call to a line or group of ``company`` (``withheld``:
        the caller's identity withheld on this call, its CLIR included)."""
        request = running.call.a.leg.invite
        assert request is not None
        privacy = _privacy_id(request)
        if caller is not None:
            who = ForwardCaller(
                caller.direct_number or company.company_number,
                privacy or withheld,
                caller.extension,
            )
        else:
            presented = running.call.caller  # the trunk's key when nothing was presented
            number = presented if any(c.isdigit() for c in presented) else None
            who = ForwardCaller(number, privacy)
        driver = LineCall(self, running, company, caller=who, from_=from_)
        running.service = driver
        return driver

    async def call_group(
        self, running: _Running, caller: Line, group_number: str, *, withheld: bool = False
    ) -> None:
        """Ring hunt group ``group_number`` of ``caller``'s company for ``running``
        (``999``: the Standard, every member but the caller; ``withheld``: ``*66*``
        or CLIR); the call is rejected with the hunt's cause when nobody answers."""
        company = features.company_of(self, caller)
        if company.group(group_number) is None:
            self.reject(running, 404, "not-found")
            return
        await self._hunt(running, company, caller, group_number, withheld=withheld)

    async def _hunt(
        self, running: _Running, company: Company, caller: Line, group: str, *, withheld: bool
    ) -> None:
        try:
            from_ = features.phone_from(caller.extension, caller.name, withheld, caller.domain)
            driver = self._line_call(running, company, caller, from_, withheld=withheld)
            await driver.call_group(group)
        except Exception:
            log.exception("call.group_failed", extra={"call": running.call.id})
            self.reject(running, 500, "internal-error")

    # -- service numbers (switch.service runs the routing) ------------------------------
    async def _service(
        self,
        running: _Running,
        called: str,
        domain: str,
        caller: Line | None,
        *,
        withheld: bool = False,
    ) -> bool:
        """Run the routing program of service number ``called``, if it is one."""
        found = self._service_entry(called)
        if found is None:
            return False
        library, entry = found
        request = running.call.a.leg.invite
        assert request is not None
        display: str | None
        if caller is not None:
            user, display = caller.direct_number or caller.extension, caller.name
        else:
            user, display = running.call.caller, _display(request)
        service = ServiceCall(
            self,
            running,
            library,
            entry,
            Caller(
                user,
                withheld or _privacy_id(request),
                display,
                entry.service.domain or domain,
            ),
            rng=self._rng,
        )
        running.service = service
        await service.run()
        return True

    def _service_entry(self, called: str) -> tuple[Library, NumberEntry] | None:
        """The current library and ``called``'s entry in it, if a service number."""
        if self.routing is None:
            return None
        library = self.routing.current
        entry = library.find_number(called)
        return None if entry is None else (library, entry)

    async def service_targets(
        self, running: _Running, target: DialTarget, from_: str
    ) -> list[Target] | None:
        """The B legs for one target of a routing ``Dial``: its line's registered
        contacts, or a trunk for an outside number; None when its line is at its
        call limit (busy), [] when unreachable."""
        label = target.number
        found = None
        if target.domain is not None:
            found = self.directory.line_for(target.number, target.domain)
        if found is None:
            found = self.directory.line_by_direct_number(target.number)
        if found is None:
            route = self.trunks.service_out(target.number, running.call.called)
            if isinstance(route, Refusal):
                return []
            trunk = route.trunk
            if trunk.max_calls is not None and self.active[trunk.key] >= trunk.max_calls:
                return None
            running.lines.append(trunk.key)
            self.active[trunk.key] += 1
            return [self._trunk_target(route, label)]
        callee = found[1]
        if self.active[callee.key] >= callee.max_calls:
            return None
        running.target_lines[label] = callee.key  # counted if it answers
        return await self._line_targets(callee, from_, label)

    async def _line_targets(self, callee: Line, from_: str, label: str) -> list[Target]:
        """One B leg per reachable, unexpired binding of ``callee``'s line."""
        bindings = await self.store.lookup(callee.aor)
        at = self.registrar.wall()  # bindings expire on the registrar's clock
        to = f"<sip:{callee.extension}@{callee.domain}>"
        identity = features.phone_identity(from_)
        return [
            Target(
                request_uri=parse_uri(binding.contact),
                dest=binding.source,
                config=self._config(binding.source),
                from_=from_,
                to=to,
                route=binding.path,
                label=label,
                extra=identity,
                line=callee.key,
                srtp=callee.device.srtp,
            )
            for binding in bindings
            if binding.reachable and not binding.expired(at)
        ]

    def announcements_for(self, library: Library) -> Announcements:
        """The decoded messages of ``library`` (rebuilt, reusing what did not change,
        when a reload brought another library)."""
        if self.announcements is not None and self._announced is library:
            return self.announcements
        self.announcements = Announcements.from_library(library, self.announcements)
        self._announced = library
        return self.announcements

    def _reconcile_limits(self) -> None:
        """Free limiter slots held by calls that no longer exist (should never happen)."""
        live = {r.call.id for r in self._by_call_id.values() if not r.ended}
        for drift in self.limiter.reconcile(live):
            log.warning("limiter.drift", extra={"key": drift.key, "call": drift.owner})
        self._reconcile = self.loop.call_later(RECONCILE_EVERY, self._reconcile_limits)

    # -- trunks (switch.trunk decides; here only the execution) -------------------------
    def _new_trunk_call(
        self, event: RequestReceived, trunk: Trunk, presented: str, called: str, now: float
    ) -> None:
        """A call from a trunk: not challenged, only to a direct or service number of ours."""
        request = event.request
        domain = self.domain
        if self._service_entry(called) is None:
            found = self.trunks.inbound(called, self.directory.line_by_direct_number)
            if isinstance(found, Refusal):
                self._refuse(request, found.status)
                return
            domain = found[0].domain
        if trunk.max_calls is not None and self.active[trunk.key] >= trunk.max_calls:
            self._refuse(request, 486)
            return
        self.stats["trunk_in"] += 1
        running = self._start(event, presented or trunk.key, called, line=trunk.key, now=now)
        if running is None:
            return
        from_ = features.phone_from(presented, _display(request), _privacy_id(request), domain)
        self._spawn(self._setup(running, domain, None, called, from_=from_))

    async def _dial_out(
        self, running: _Running, caller: Line, called: str, *, withheld: bool = False
    ) -> None:
        """An authenticated line calls a number that is none of ours: out via a trunk
        (``withheld``: CLIR on this call)."""
        call = running.call
        company = self.directory.company_for_domain(caller.domain)
        route = self.trunks.outbound(called, caller, company, withheld=withheld)
        if isinstance(route, Refusal):
            if route.because:  # a barred call: why, in the CDR's trace
                call.because.append(route.because)
            self.reject(running, route.status, route.cause, route.reason)
            return
        trunk = route.trunk
        if trunk.max_calls is not None and self.active[trunk.key] >= trunk.max_calls:
            self.reject(running, 503, "trunk-limit")
            return
        if not await self.open_media(running, trunk.key):
            return
        call.dial([self._trunk_target(route)], self.loop.time())
        self.stats["trunk_out"] += 1
        self.execute(running)

    async def open_media(self, running: _Running, line: str) -> bool:
        """Count the call against ``line`` (its callee's or trunk's), open its relay
        session and give the call the session's ports; False if the call has ended (a
        CANCEL may come before the setup task runs: ``_ended`` has released its lines)."""
        call = running.call
        if call.state >= CallState.ENDING:
            return False
        self.active[line] += 1
        running.lines.append(line)
        session = await self.relay.open_session(call.id)
        if call.state >= CallState.ENDING:
            session.close()
            return False
        running.session = session
        session.on_timeout(lambda _s, reason: self._media_timeout(running, reason))
        for update in running.media.values():
            self._apply_media(session, update)
        running.media.clear()
        call.media = MediaPlan(self.media.address, session.a.rtp_port, session.b.rtp_port)
        return True

    def _trunk_target(self, route: Outbound, label: str | None = None) -> Target:
        trunk = route.trunk
        dest = trunk.dest
        host = f"[{dest.host}]" if ":" in dest.host else dest.host
        param = "" if dest.transport == "UDP" else f";transport={dest.transport.lower()}"
        uri = f"sip:{route.number}@{hostport(dest.host, dest.port)}{param}"
        config = self._config(dest)
        config = dataclasses.replace(config, authenticate=trunk.authorize)
        from_, identity = identity_headers(route, self.domain)
        return Target(
            request_uri=parse_uri(uri),
            dest=dest,
            config=config,
            from_=from_,
            to=f"<sip:{route.number}@{host}>",
            label=label or f"{trunk.key}:{route.e164}",
            extra=identity,
            line=trunk.key,
        )

    def pickup(self, running: _Running, line: Line) -> bool:
        """Directed pickup (a star code): answer the call ringing at ``line`` with the
        picker's call ``running`` (its INVITE not answered yet); False if nothing
        rings there (``switch.transfer``)."""
        return self.transfers.pickup(running, line)

    def reject(self, running: _Running, status: int, cause: str, reason: str | None = None) -> None:
        running.call.reject(status, self.loop.time(), cause=cause, reason=reason)
        self.execute(running)

    def _media_timeout(self, running: _Running, reason: str) -> None:
        running.call.media_timeout(reason, self.loop.time())
        self.execute(running)

    def _config(self, peer: Endpoint) -> SessionConfig:
        """Contact and Via for a leg towards ``peer`` (``Stack.local_contact``)."""
        contact, via = self.stack.local_contact(peer)
        return SessionConfig(contact=contact, via=via)

    # -- executing a call's commands --------------------------------------------------------
    def _index(self, running: _Running, call_id: str) -> None:
        running.call_ids.add(call_id)
        self._by_call_id[call_id] = running

    def execute(self, running: _Running) -> None:
        call = running.call
        for _ in range(100):
            commands = call.commands()
            if not commands:
                break
            for cmd in commands:
                if running.watcher is not None:
                    running.watcher(cmd)
                if isinstance(cmd, LegSend):
                    self._send(running, cmd)
                elif isinstance(cmd, MediaUpdate):
                    if running.session is None:
                        running.media[cmd.side] = cmd
                    else:
                        self._apply_media(running.session, cmd)
                elif isinstance(cmd, MediaAnswered):
                    if running.session is not None:
                        running.session.set_answered(True)
                elif isinstance(cmd, CallEnded):
                    self._ended(running, cmd)
                elif isinstance(cmd, DialFailed | TargetAnswered | DigitPressed):
                    if isinstance(cmd, TargetAnswered):
                        line = running.target_lines.get(cmd.label)
                        if line is not None and line not in running.lines:
                            running.lines.append(line)
                            self.active[line] += 1
                    if running.service is not None:
                        running.service.on_command(cmd)
                elif isinstance(cmd, TransferRequested | TransferAbandoned):
                    self.transfers.on_command(running, cmd)
        if call.finished:
            self._forget(running)
        else:
            self._arm(running)
        if self.on_call_change is not None:
            self.on_call_change(call)

    def _send(self, running: _Running, cmd: LegSend) -> None:
        command, dest = cmd.command, cmd.dest
        if isinstance(cmd.leg, LocalOrigin):
            # A blind transfer's new call answers nobody: its answers are observed.
            if isinstance(command, SendResponse):
                self.transfers.origin_response(running, command.response)
            return
        if cmd.leg.call_id not in running.call_ids:
            self._index(running, cmd.leg.call_id)
        try:
            if isinstance(command, SendRequest):
                key = self.stack.send_request(command.request, dest)
                running.keys.add(key)
                self._by_key[key] = running
            elif isinstance(command, SendAck):
                self.stack.send_ack(command.ack, dest)
            elif isinstance(command, SendResponse):
                with contextlib.suppress(NoSuchTransaction):
                    self.stack.send_response(command.response)
            elif isinstance(command, SendCancel):
                extra = (("Reason", command.reason),) if command.reason else ()
                self.stack.cancel(ClientKey(command.invite.branch or "", "INVITE"), extra)
        except Exception:
            log.exception("call.send_failed", extra={"call": running.call.id})

    @staticmethod
    def _apply_media(session: Any, update: MediaUpdate) -> None:
        leg = session.a if update.side == "a" else session.b
        leg.set_remote(update.rtp, update.rtcp)
        leg.set_direction(update.sends, update.receives)
        if update.srtp is None:
            leg.set_srtp(None, None)
            return
        # SDES terminated on this leg: the phone's key decrypts, ours encrypts.
        suite, theirs, ours = update.srtp
        try:
            leg.set_srtp(SrtpKeys(suite, theirs), SrtpKeys(suite, ours))
        except SrtpKeysError:
            log.warning("call.srtp_refused", extra={"suite": suite})

    def _ended(self, running: _Running, cmd: CallEnded) -> None:
        if running.ended:
            return
        running.ended = True
        record = cmd.record
        for key in running.lines:
            self.active[key] -= 1
            if self.active[key] <= 0:
                del self.active[key]
        self.limiter.release(running.call.id)
        if running.session is not None:
            running.session.close()
        if running.service is not None:
            running.service.on_ended(record.answered_at is not None, record.duration)
        self.stats[f"outcome_{record.outcome}"] += 1
        log.info(
            "call.ended",
            extra={
                "call": record.id,
                "caller": record.caller,
                "called": record.called,
                "outcome": str(record.outcome),
                "cause": record.cause,
                "duration": round(record.duration, 3),
            },
        )
        if self.cdr is not None:
            try:
                self.cdr.write(record)
            except Exception:
                log.exception("cdr.write_failed", extra={"call": record.id})

    def _arm(self, running: _Running) -> None:
        deadline = running.call.get_timer()
        if running.timer is None:
            if deadline is None:
                return
            running.timer = LoopTimer(self.loop, functools.partial(self._on_timer, running))
        running.timer.follow(deadline)

    def _on_timer(self, running: _Running) -> None:
        try:
            running.call.handle_timer(self.loop.time())
        except Exception:
            log.exception("call.timer_failed", extra={"call": running.call.id})
        self.execute(running)

    def _forget(self, running: _Running) -> None:
        if running.timer is not None:
            running.timer.cancel()
            running.timer = None  # it refers back to the call: no cycle left for the GC
        for call_id in running.call_ids:
            if self._by_call_id.get(call_id) is running:
                del self._by_call_id[call_id]
        for key in running.keys:
            if self._by_key.get(key) is running:
                del self._by_key[key]

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _privacy_id(request: Request) -> bool:
    """The caller asks for its identity to be withheld (RFC 3323 ``Privacy: id``)."""
    # Privacy = "Privacy" HCOLON priv-value *(";" priv-value): white space may
    # surround the separators (SEMI = SWS ";" SWS).
    return any(v.strip() == "id" for v in (request.headers.get("Privacy") or "").lower().split(";"))


def _display(request: Request) -> str | None:
    """The display name of the request's ``From``, if any and readable."""
    with contextlib.suppress(ParseError):
        return request.from_.display
    return None


def _srtp_keys() -> tuple[bytes, bytes]:
    """Fresh SRTP key material for a call's two sides (used only if a phone asks for SRTP)."""
    return token_bytes(SRTP_KEY_MATERIAL), token_bytes(SRTP_KEY_MATERIAL)


__all__ = ["B2bua"]
