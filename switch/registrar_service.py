"""The REGISTER transaction user: admission, digest, devices, registrar, store, keep-alives.

The pure pieces decide; this module runs them in order for every REGISTER that
the transaction layer passes up (``RequestReceived``) and answers on its server
transaction:

1. **Ban check** (``Admission.check``): a banned source gets ``403``. With
   ``admission.silent`` it gets nothing from the ban on: ``BanGate`` drops its
   datagrams and stream messages before they are even parsed, so no transaction
   is created; only requests already past the gate when the ban fell still get
   their ``403``, which ends their transactions.
2. **Realm**: the company of the ``To`` domain; an unknown domain is challenged
   with its own name as realm, so it is answered like an unknown user.
3. **Digest** (``switch.sip.auth``): no credentials for the realm → ``401`` with
   one ``WWW-Authenticate`` per configured algorithm, one nonce for all
   (RFC 8760 §2.4: "the server SHOULD list them in order of preference").
   Verdicts: ``STALE`` → ``401`` with ``stale=true``; ``REPLAY`` (nonce-count
   not increasing) → ``403`` and a failure; ``FAILED`` (wrong password, unknown
   user, digest username other than the ``To`` user, algorithm not offered) →
   a failure, then ``401`` again, or ``403`` once the failure bans the source.
   Unknown users cost the same work and get byte-for-byte the same answers
   (``verify`` hashes against a dummy HA1).
4. **Declared device** (``device_mismatch``): ``403 Device not declared`` and a
   failure. Checked after the digest, so only password holders learn it.
5. **Registrar** (``Registrar.process``) → ``await store.apply(...)`` → the
   response. The bindings are committed before the ``200`` leaves (§10.3); a
   store error answers ``500``.

Time: admission, keep-alives and timers use the loop's monotonic clock;
bindings and nonces use wall time (epoch seconds), because both must mean the
same after a restart (and, for nonces, on another node sharing the secret).

Around the REGISTERs:

- **Expiry**: one ``loop.call_at`` at the store's ``next_expiry()``; it purges
  expired bindings and re-arms.
- **Keep-alives** (``registrar.keepalive``): a heap of (due, binding) spread
  over the interval. UDP bindings behind NAT (``udp: nat``: the REGISTER came
  from another address than its Contact) or all of them (``udp: all``) get an
  OPTIONS (``method: options``) or a bare CRLF (``crlf``); TCP/TLS bindings a
  CRLF ping on their connection (``stream``), which also keeps the transport's
  idle sweep away from it. An OPTIONS transaction that times out (Timer F,
  64*T1, with its ~10 retransmissions) or fails in the transport marks every
  binding of that address unreachable; any answer (even an error status) marks
  it reachable again, as does its next REGISTER.
- **Dead connections**: ``connection_lost(endpoint)`` (wired to the transport)
  marks the bindings that came over that TCP/TLS connection unreachable at once.
- **Bans** are logged once each (``admission.ban`` with address, reason, kind
  and until) and counted in ``stats`` (metrics-ready counters). With a
  ``BanStore`` (``switch.bans``) each is also written to ``DATA_DIR/bans.sqlite3``
  as it is made, and :meth:`RegistrarService.start` puts back those still in
  force: a restart does not lift a ban.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from switch.admission import DEVICE_NOT_DECLARED, Admission, Ban, device_mismatch
from switch.bans import BanStore, BanStoreError
from switch.directory import Directory, Line, normalize_domain
from switch.location import AsyncLocationStore, LocationStoreError
from switch.registrar import Binding, Registrar
from switch.settings import RegistrarSettings
from switch.sip.auth import (
    Credentials,
    NonceManager,
    Verdict,
    challenge_value,
    parse_credentials,
    verify,
)
from switch.sip.core import StatelessCore
from switch.sip.endpoint import Endpoint, hostport
from switch.sip.errors import ParseError
from switch.sip.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from switch.sip.message import Headers, Request, Response
from switch.sip.transaction import ClientKey, TransactionKey
from switch.sip.uri import Uri, parse_uri
from switch.sip.via import is_ip

log = logging.getLogger(__name__)

NONCE_SECRET_FILE = "nonce-secret"
CRLF_PING = b"\r\n\r\n"
# Keep-alives sent per tick at most: the rest wait for the next tick.
MAX_PINGS_PER_TICK = 2000


class SipPort(Protocol):
    """What the service needs from the stack (``StackPort`` adapts ``Stack``)."""

    def send_response(self, response: Response) -> None: ...

    def send_request(self, request: Request, dest: Endpoint) -> ClientKey: ...

    def send_raw(self, data: bytes, dest: Endpoint) -> None: ...

    def local_address(self, transport: str, peer_host: str) -> tuple[str, int] | None: ...


class StackPort:
    """``SipPort`` over a running ``switch.stack.Stack``."""

    __slots__ = ("stack",)

    def __init__(self, stack: Any) -> None:
        self.stack = stack

    def send_response(self, response: Response) -> None:
        self.stack.send_response(response)

    def send_request(self, request: Request, dest: Endpoint) -> ClientKey:
        key: ClientKey = self.stack.send_request(request, dest)
        return key

    def send_raw(self, data: bytes, dest: Endpoint) -> None:
        self.stack.transport.send(data, dest)

    def local_address(self, transport: str, peer_host: str) -> tuple[str, int] | None:
        local: tuple[str, int] | None = self.stack.transport.local_address(transport, peer_host)
        return local


def load_nonce_secret(data_dir: Path) -> bytes:
    """The nonce HMAC key in ``DATA_DIR/nonce-secret``, created (0600) when absent.

    Kept across restarts so that nonces handed out before a restart stay valid
    for their lifetime (phones reuse their nonce for the next REGISTER).
    """
    path = data_dir / NONCE_SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret[:32]
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return secret


def behind_nat(binding: Binding) -> bool:
    """True when the REGISTER came from another address than its Contact says."""
    try:
        uri = parse_uri(binding.contact)
    except ParseError:
        return True
    port = uri.port if uri.port is not None else 5060
    return (uri.host.strip("[]").lower(), port) != (
        binding.source.host.lower(),
        binding.source.port,
    )


class BanGate:
    """A ``TransportUser`` in front of the stack that drops what banned sources send.

    Used for silent bans: nothing is parsed, no transaction is created, nothing
    is answered. Everything else goes to ``inner`` unchanged.
    """

    __slots__ = ("_admission", "_banned", "_clock", "dropped", "inner")

    def __init__(self, inner: Any, admission: Admission, clock: Callable[[], float]) -> None:
        self.inner = inner
        self._admission = admission
        self._clock = clock
        self._banned: dict[str, float] = {}  # source key -> until (monotonic)
        self.dropped = 0

    def ban(self, ban: Ban) -> None:
        banned = self._banned
        banned.pop(ban.address, None)
        # Every ban lasts ``ban_seconds``: insertion order is expiry order, so the
        # expired ones are at the front. Drop them here, or the addresses of a
        # botnet that never comes back would stay for the life of the process.
        banned[ban.address] = ban.until
        now = self._clock()
        while banned:
            oldest, until = next(iter(banned.items()))
            if until > now:
                break
            del banned[oldest]

    def blocked(self, host: str) -> bool:
        if not self._banned:
            return False
        key = host if ":" not in host else self._admission.source_key(host)
        if key is None:
            return False
        until = self._banned.get(key)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._banned[key]
        return False

    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        if self._banned and self.blocked(source.host):
            self.dropped += 1
            return
        self.inner.datagram_received(data, source)

    def stream_message_received(self, data: bytes, source: Endpoint) -> None:
        if self._banned and self.blocked(source.host):
            self.dropped += 1
            return
        self.inner.stream_message_received(data, source)

    def stream_error(self, error: ParseError, source: Endpoint, chunk: bytes) -> None:
        self.inner.stream_error(error, source, chunk)

    def transport_error(self, dest: Endpoint, error: Exception) -> None:
        self.inner.transport_error(dest, error)


class RegistrarService:
    """Handles REGISTER server transactions and keeps the bindings alive (see above)."""

    def __init__(
        self,
        port: SipPort,
        core: StatelessCore,
        *,
        directory: Directory,
        store: AsyncLocationStore,
        settings: RegistrarSettings,
        nonce_secret: bytes,
        domain: str,
        server: str = "Aiguilleur",
        fallback: Callable[[Event], None] | None = None,
        gate: BanGate | None = None,
        admission: Admission | None = None,
        bans: BanStore | None = None,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.port = port
        self.core = core
        self.directory = directory
        self.store = store
        self.settings = settings
        self.domain = domain
        self.server = server
        self.fallback = fallback
        self.gate = gate
        self.loop = asyncio.get_running_loop()
        self.clock = clock or self.loop.time
        self.wall = wall
        self.random_bytes = random_bytes
        self.registrar = Registrar(
            min_expires=settings.min_expires,
            max_expires=settings.max_expires,
            default_expires=settings.default_expires,
            max_contacts_per_aor=settings.max_contacts_per_aor,
        )
        a = settings.admission
        self.admission = admission or Admission(
            a.max_failures,
            a.window,
            a.ban_seconds,
            silent=a.silent,
            allow=a.allow,
            challenge_grace=a.challenge_grace,
        )
        self.bans = bans  # bans kept across restarts (None: in memory only)
        self.nonces = NonceManager(nonce_secret, lifetime=settings.nonce_lifetime)
        self.algorithms = tuple(settings.digest_algorithms)
        self.stats: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[str, list[Any]] = {}  # aor -> [lock, users]
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._expiry_at: float | None = None
        self._ka_heap: list[tuple[float, str, str]] = []
        self._ka_due: dict[tuple[str, str], float] = {}
        # OPTIONS in flight: key -> (destination, whether the pinged binding was
        # unreachable: only its answer has bindings to revive).
        self._ka_pending: dict[TransactionKey, tuple[Endpoint, bool]] = {}
        self._ka_busy: set[Endpoint] = set()  # the destinations of _ka_pending
        self._ka_timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Put back the bans kept, arm the expiry timer and schedule keep-alives
        for the stored bindings."""
        self._restore_bans()
        await self._purge()
        interval = self.settings.keepalive.interval
        now = self.clock()
        for binding in await self.store.all():
            if self._wants_keepalive(binding):
                # Spread the restored bindings over one interval.
                phase = int.from_bytes(self.random_bytes(2), "big") / 65536
                self._schedule_keepalive(binding, now + interval * phase)
        self._arm_keepalive()

    async def close(self) -> None:
        self._closed = True
        for timer in (self._expiry_timer, self._ka_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._ka_timer = None
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for task in tasks:
            task.cancel()

    async def changed(self) -> None:
        """Wait for the next change of the stored bindings (tests, the admin API)."""
        await self._changed.wait()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("registrar.task_failed", exc_info=task.exception())

    # -- events from the transaction layer ---------------------------------------------------
    def handle_event(self, event: Event) -> None:
        """The stack's event handler: REGISTERs and keep-alive outcomes; the rest to
        ``fallback``."""
        if isinstance(event, RequestReceived) and event.request.method == "REGISTER":
            self._spawn(self._answer(event.request, event.source))
            return
        if self._ka_pending:
            if isinstance(event, ResponseReceived):
                if event.key in self._ka_pending and event.response.status >= 200:
                    dest, revive = self._ka_finished(event.key)
                    if revive:
                        self._spawn(self._keepalive_answered(dest))
                    return
            elif (
                isinstance(event, TransactionTimedOut | TransportErrorOccurred)
                and event.key in self._ka_pending
            ):
                dest, _ = self._ka_finished(event.key)
                self._spawn(self._keepalive_lost(dest))
                return
        if self.fallback is not None:
            self.fallback(event)

    def connection_lost(self, endpoint: Endpoint) -> None:
        """A TCP/TLS connection closed: its bindings are unreachable from now on."""
        if endpoint.conn_id is not None and not self._closed:
            self._spawn(self._mark_unreachable(endpoint.conn_id, "connection closed"))

    async def _answer(self, request: Request, source: Endpoint) -> None:
        self.port.send_response(await self.process(request, source))

    # -- REGISTER ------------------------------------------------------------------------------
    async def process(self, request: Request, source: Endpoint) -> Response:
        """The answer to one REGISTER, bindings stored first."""
        now = self.clock()
        host = source.host
        ban = self.admission.check(host, now)
        self._drain_bans()
        if ban is not None:
            # Even with silent bans: this request was already past the gate and
            # its server transaction waits for an answer (a non-INVITE server
            # transaction in Trying has no timer; only the TU can end it).
            self.stats["refused_banned"] += 1
            return self._reply(request, 403)
        try:
            uri = request.uri
            to = request.to
        except ParseError as exc:
            return self._reply(request, 400, exc.reason)
        if not uri.is_sip:
            return self._reply(request, 416)
        if not self._serves(uri.host):
            # §10.3 step 1: not a domain of ours (nor one of our addresses).
            return self._reply(request, 404, "Domain Not Served")
        if not to.uri.is_sip or not to.uri.host:
            return self._reply(request, 400, "To is not a SIP URI")
        user = to.uri.user or ""
        company = self.directory.company_for_domain(to.uri.host)
        # An unknown domain is its own realm: answered like an unknown user.
        realm = company.domain if company is not None else normalize_domain(to.uri.host)
        line_key = f"{user}@{realm}"

        refused = self.authenticate(request, host, user, realm, now)
        if refused is not None:
            return refused

        # The digest proves the password of an existing line.
        found = self.directory.line_for(user, realm)
        assert found is not None
        _, line = found
        mismatch = device_mismatch(line, request)
        if mismatch is not None:
            self.stats["device_refused"] += 1
            log.warning(
                "registrar.device_refused",
                extra={"line": line.key, "peer": str(source), "reason": mismatch},
            )
            self._failure(host, line_key, now, "device not declared")
            status, reason = DEVICE_NOT_DECLARED
            return self._reply(request, status, reason)
        return await self._register(request, line.aor, source)

    def banned(self, host: str, now: float) -> bool:
        """Whether ``host`` is banned (``Admission.check``): for the requests other
        services take (INVITE, SUBSCRIBE). A ban that the check itself creates
        (unanswered challenges past their grace) is logged, kept and, with silent
        bans, put in the gate at once, as for REGISTER."""
        ban = self.admission.check(host, now)
        self._drain_bans()
        return ban is not None

    def authenticate_line(
        self, request: Request, from_uri: Uri, host: str, now: float
    ) -> Line | Response:
        """A request made on behalf of one of our lines (INVITE, SUBSCRIBE): the line,
        or the response that refuses it: ``403`` when ``From`` names no line of ours
        (nothing is done for an unknown source), else the digest's challenge or
        refusal (``407``, as a proxy asks; ``authenticate``)."""
        company = self.directory.company_for_domain(from_uri.host) if from_uri.is_sip else None
        line = company.line(from_uri.user or "") if company is not None else None
        if company is None or line is None:
            return self.core.reply(request, 403)
        refused = self.authenticate(
            request, host, from_uri.user or "", company.domain, now, proxy=True
        )
        return line if refused is None else refused

    def authenticate(
        self, request: Request, host: str, user: str, realm: str, now: float, *, proxy: bool = False
    ) -> Response | None:
        """Digest check of ``request`` for line ``user@realm`` (None: it passed).

        The answer otherwise: a challenge (401 with ``WWW-Authenticate``, or with
        ``proxy`` 407 with ``Proxy-Authenticate`` as the B2BUA asks INVITEs), or
        403; failures count towards the source's ban as for REGISTER.
        """
        line_key = f"{user}@{realm}"
        creds = _credentials_for(
            request, realm, "Proxy-Authorization" if proxy else "Authorization"
        )
        if creds is None:
            return self._challenge(request, host, line_key, now, stale=False, proxy=proxy)
        stored: str | None = None
        if creds.username == user and creds.algorithm in self.algorithms:
            stored = self.directory.ha1_for(user, realm, creds.algorithm)
        verdict = verify(
            creds,
            method=request.method,
            realm=realm,
            stored_ha1=stored,
            nonces=self.nonces,
            now=self.wall(),
            address=host,
        )
        if verdict is Verdict.STALE:
            self.stats["stale"] += 1
            return self._challenge(request, host, line_key, now, stale=True, proxy=proxy)
        if verdict is Verdict.REPLAY:
            self.stats["replays"] += 1
            self._failure(host, line_key, now, "nonce-count replayed")
            return self._reply(request, 403, "Nonce Reused")
        if verdict is Verdict.FAILED:
            if self._failure(host, line_key, now, "wrong credentials") is not None:
                return self._reply(request, 403)
            # The same nonce again, when it is ours and fresh: a client seeing the
            # nonce it just used knows its credentials are wrong and stops
            # (pjsip does), instead of retrying on every new nonce.
            return self._challenge(
                request, host, line_key, now, stale=False, nonce=creds.nonce, proxy=proxy
            )
        self.admission.record_success(host, line_key, now)
        return None

    def _serves(self, host: str) -> bool:
        """Request-URI hosts accepted (§10.3 step 1): a company's domain, the
        switch's own domain, or an address (phones often use the server's IP)."""
        if is_ip(host.strip("[]")):  # an IPv6 Request-URI host is bracketed
            return True
        name = normalize_domain(host)
        return (
            name in (self.domain, "localhost")
            or self.directory.company_for_domain(name) is not None
        )

    async def _register(self, request: Request, aor: str, source: Endpoint) -> Response:
        # One REGISTER per AOR at a time between lookup and apply (a store
        # that suspends, such as Redis, would otherwise interleave them).
        entry = self._locks.get(aor)
        if entry is None:
            entry = self._locks[aor] = [asyncio.Lock(), 0]
        entry[1] += 1
        lock = entry[0]
        try:
            async with lock:
                current = await self.store.lookup(aor)
                at = self.wall()
                outcome = self.registrar.process(
                    request,
                    aor=aor,
                    current=current,
                    source=source,
                    at=at,
                    to_tag=self.core.to_tag(request),
                )
                if outcome.changed:
                    try:
                        await self.store.apply(outcome.upserts, outcome.removals)
                    except LocationStoreError as exc:
                        self.stats["store_errors"] += 1
                        log.error("registrar.store_failed", extra={"aor": aor, "error": str(exc)})
                        return self._reply(request, 500, "Binding Not Stored")
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[aor]
        response = outcome.response
        response.headers.add("Server", self.server)
        if response.status == 200:
            self.stats["registered"] += 1
            if outcome.changed:
                self._notify()
                now = self.clock()
                for binding in outcome.upserts:
                    if self._wants_keepalive(binding):
                        self._schedule_keepalive(binding, now + self.settings.keepalive.interval)
                self._arm_keepalive()
                self._arm_expiry(min((b.expires_at for b in outcome.upserts), default=None))
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "registrar.registered",
                    extra={"aor": aor, "peer": str(source), "because": outcome.because},
                )
        else:
            self.stats[f"refused_{response.status}"] += 1
        return response

    def _reply(self, request: Request, status: int, reason: str | None = None) -> Response:
        return self.core.reply(request, status, reason)

    def _challenge(
        self,
        request: Request,
        host: str,
        line_key: str,
        now: float,
        *,
        stale: bool,
        nonce: str | None = None,
        proxy: bool = False,
    ) -> Response:
        self.stats["challenges"] += 1
        self.admission.record_challenge(host, line_key, now)
        self._drain_bans()
        wall = self.wall()
        if nonce is not None:
            issued = self.nonces.issued_at(nonce, host)
            if issued is None or not 0 <= wall - issued < self.nonces.lifetime / 2:
                nonce = None
        if nonce is None:
            nonce = self.nonces.issue(wall, self.random_bytes(8), host)
        realm = line_key.rpartition("@")[2]
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        extra = [
            (name, challenge_value(realm, nonce, algorithm=alg, stale=stale))
            for alg in self.algorithms
        ]
        return self.core.reply(request, 407 if proxy else 401, extra=extra)

    def _failure(self, host: str, line_key: str, now: float, why: str) -> Ban | None:
        self.stats["auth_failures"] += 1
        if log.isEnabledFor(logging.INFO):
            log.info("registrar.auth_failed", extra={"line": line_key, "peer": host, "reason": why})
        ban = self.admission.record_failure(host, line_key, now)
        self._drain_bans()
        return ban

    def _drain_bans(self) -> None:
        for ban in self.admission.new_bans():
            self.stats[f"bans_{ban.kind}"] += 1
            self._keep_ban(ban)
            until = datetime.fromtimestamp(self.wall() + (ban.until - ban.since), UTC)
            log.warning(
                "admission.ban",
                extra={
                    "address": ban.address,
                    "kind": ban.kind,
                    "reason": ban.reason,
                    "until": until.isoformat(timespec="seconds"),
                    "silent": self.admission.silent,
                },
            )
            if self.gate is not None and self.admission.silent:
                self.gate.ban(ban)

    def _keep_ban(self, ban: Ban) -> None:
        """Write ``ban`` (monotonic times) to the ban store, in wall-clock time."""
        if self.bans is None:
            return
        wall = self.wall()
        offset = wall - self.clock()
        kept = replace(ban, since=ban.since + offset, until=ban.until + offset)
        try:
            self.bans.add(kept, wall)
        except BanStoreError as exc:  # the ban holds in memory all the same
            self.stats["ban_store_errors"] += 1
            log.error("admission.ban_not_kept", extra={"address": ban.address, "error": str(exc)})

    def _restore_bans(self) -> None:
        """The bans kept before a restart, back in ``admission`` (and the gate)."""
        if self.bans is None:
            return
        wall = self.wall()
        try:
            kept = self.bans.load(wall)
        except BanStoreError as exc:
            log.error("admission.bans_not_restored", extra={"error": str(exc)})
            return
        now = self.clock()
        offset = now - wall
        restored = 0
        for stored in kept:
            ban = replace(stored, since=stored.since + offset, until=stored.until + offset)
            if self.admission.restore(ban, now):
                restored += 1
                if self.gate is not None and self.admission.silent:
                    self.gate.ban(ban)
        if kept:
            log.info("admission.bans_restored", extra={"restored": restored, "kept": len(kept)})

    # -- expiry -----------------------------------------------------------------------------------
    def _arm_expiry(self, at: float | None) -> None:
        """Make sure the timer fires by ``at`` (epoch seconds)."""
        if at is None or self._closed:
            return
        if self._expiry_at is not None and self._expiry_at <= at:
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        self._expiry_at = at
        delay = max(0.0, at - self.wall())
        self._expiry_timer = self.loop.call_at(self.loop.time() + delay, self._on_expiry)

    def _on_expiry(self) -> None:
        self._expiry_timer = None
        self._expiry_at = None
        self._spawn(self._purge())

    async def _purge(self) -> None:
        try:
            gone = await self.store.purge_expired(self.wall())
        except LocationStoreError as exc:
            log.error("registrar.purge_failed", extra={"error": str(exc)})
            gone = []
            self._arm_expiry(self.wall() + 5.0)  # try again soon
        if gone:
            self.stats["expired"] += len(gone)
            log.info("registrar.expired", extra={"count": len(gone)})
            self._notify()
        self._arm_expiry(await self.store.next_expiry())

    # -- keep-alives ---------------------------------------------------------------------------
    def _wants_keepalive(self, binding: Binding) -> bool:
        ka = self.settings.keepalive
        if ka.interval <= 0 or binding.path:
            return False  # with a Path, the edge proxy in front keeps the flow alive
        transport = binding.source.transport
        if transport == "UDP":
            return ka.udp == "all" or (ka.udp == "nat" and behind_nat(binding))
        return ka.stream and transport in ("TCP", "TLS")

    def _schedule_keepalive(self, binding: Binding, due: float) -> None:
        ident = (binding.aor, binding.key)
        if ident in self._ka_due:
            return  # already scheduled: a refresh keeps its phase
        self._ka_due[ident] = due
        heapq.heappush(self._ka_heap, (due, binding.aor, binding.key))

    def _arm_keepalive(self) -> None:
        if self._closed or self._ka_timer is not None or not self._ka_heap:
            return
        interval = self.settings.keepalive.interval
        tick = min(1.0, interval / 4)
        due = max(self._ka_heap[0][0], self.clock() + tick / 10)
        self._ka_timer = self.loop.call_at(due, self._on_keepalive_tick)

    def _on_keepalive_tick(self) -> None:
        self._ka_timer = None
        self._spawn(self._keepalive_tick())

    async def _keepalive_tick(self) -> None:
        now = self.clock()
        at = self.wall()
        interval = self.settings.keepalive.interval
        sent = 0
        heap = self._ka_heap
        while heap and heap[0][0] <= now and sent < MAX_PINGS_PER_TICK:
            due, aor, key = heapq.heappop(heap)
            if self._ka_due.get((aor, key)) != due:
                continue  # a stale heap entry
            del self._ka_due[(aor, key)]
            binding = next((b for b in await self.store.lookup(aor) if b.key == key), None)
            if binding is None or binding.expired(at) or not self._wants_keepalive(binding):
                continue
            self._ping(binding)
            sent += 1
            self._schedule_keepalive(binding, now + interval)
        self.stats["keepalives_sent"] += sent
        self._arm_keepalive()

    def _ping(self, binding: Binding) -> None:
        source = binding.source
        if source.transport != "UDP":
            if binding.reachable:
                self.port.send_raw(CRLF_PING, source)
            return
        if self.settings.keepalive.method == "crlf":
            self.port.send_raw(CRLF_PING, source)
            return
        dest = Endpoint("UDP", source.host, source.port)
        if dest in self._ka_busy:
            return  # the previous one is still running (Timer F > interval)
        request = self._options(binding, dest)
        if request is None:
            return
        try:
            key = self.port.send_request(request, dest)
        except (ValueError, ParseError) as exc:
            log.warning("keepalive.not_sent", extra={"aor": binding.aor, "error": str(exc)})
            return
        self._ka_pending[key] = (dest, not binding.reachable)
        self._ka_busy.add(dest)

    def _ka_finished(self, key: TransactionKey) -> tuple[Endpoint, bool]:
        dest, revive = self._ka_pending.pop(key)
        self._ka_busy.discard(dest)
        return dest, revive

    def _options(self, binding: Binding, dest: Endpoint) -> Request | None:
        local = self.port.local_address("UDP", dest.host)
        if local is None:
            return None
        sent_by = hostport(*local)
        try:
            uri = parse_uri(binding.contact)
        except ParseError:
            return None
        tag = secrets.token_hex(6)
        return Request(
            "OPTIONS",
            uri,
            Headers(
                [
                    ("Via", f"SIP/2.0/UDP {sent_by};rport"),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:keepalive@{self.domain}>;tag={tag}"),
                    ("To", f"<{binding.contact}>"),
                    ("Call-ID", f"ka-{secrets.token_hex(10)}"),
                    ("CSeq", "1 OPTIONS"),
                    ("User-Agent", self.server),
                ]
            ),
        )

    async def _keepalive_answered(self, dest: Endpoint) -> None:
        """An answer to a ping of an unreachable binding: revive every binding of that
        address (they were marked together). A scan of the whole store, so only for
        those answers, not for every ping."""
        revived = [
            replace(b, reachable=True)
            for b in await self.store.all()
            if not b.reachable and _same_address(b.source, dest)
        ]
        if revived:
            try:
                await self.store.apply(revived)
            except LocationStoreError as exc:
                log.error("registrar.store_failed", extra={"error": str(exc)})
                return
            log.info("keepalive.reachable", extra={"peer": str(dest), "bindings": len(revived)})
            self._notify()

    async def _keepalive_lost(self, dest: Endpoint) -> None:
        self.stats["keepalives_lost"] += 1
        await self._mark_unreachable(dest, "keep-alive unanswered")

    async def _mark_unreachable(self, where: int | Endpoint, why: str) -> None:
        try:
            changed = await self.store.mark_unreachable(where)
        except LocationStoreError as exc:
            log.error("registrar.store_failed", extra={"error": str(exc)})
            return
        if changed:
            self.stats["unreachable"] += len(changed)
            log.info(
                "registrar.unreachable",
                extra={
                    "aors": ",".join(sorted({b.aor for b in changed})),
                    "peer": str(changed[0].source),
                    "reason": why,
                },
            )
            self._notify()


def _same_address(a: Endpoint, b: Endpoint) -> bool:
    return (a.transport, a.host, a.port) == (b.transport, b.host, b.port)


def _credentials_for(
    request: Request, realm: str, header: str = "Authorization"
) -> Credentials | None:
    """The Digest credentials for ``realm`` in the request's ``header`` fields
    (Authorization, or Proxy-Authorization).

    Values for other realms, other schemes or that do not parse are ignored (the
    request is then challenged, like one without credentials).
    """
    for value in request.headers.get_all(header):
        try:
            creds = parse_credentials(value)
        except (ParseError, ValueError):
            continue
        if creds.realm == realm:
            return creds
    return None


__all__ = [
    "NONCE_SECRET_FILE",
    "BanGate",
    "RegistrarService",
    "SipPort",
    "StackPort",
    "behind_nat",
    "load_nonce_secret",
]
