"""Who may register: declared devices, and a brute-force throttle with a ban list.

Pure: no clock (``now`` is passed in, monotonic seconds), no sockets, no logging.
The registrar asks, in this order, and answers the same way for lines that exist
and lines that do not, so extensions cannot be enumerated:

1. ``admission.check(source, now)``: a banned source gets ``403`` (or nothing,
   when ``admission.silent``), whatever it asks;
2. digest authentication (``switch.sip.auth``): an unknown user is challenged
   and refused exactly like a known one with a wrong password. Call
   ``record_challenge`` for every ``401`` sent, ``record_failure`` for every
   wrong answer (unknown user included: same ``line_key`` shape, ``user@domain``),
   ``record_success`` when the answer is right;
3. only then ``device_mismatch(line, request)``: ``403 Device not declared``
   (and ``record_failure``). Checking the device after the digest means the
   device answer is only ever shown to someone who knows the password, so it
   reveals nothing about which extensions exist.

Device identity (PHONES.md)
---------------------------
A REGISTER says which phone sends it in three ways:

- Poly VVX: ``+sip.instance="<urn:uuid:00000000-0000-1000-8000-0004f2abcdef>"``
  on the Contact, the UUID ending in the phone's MAC (compared case-insensitively);
- Aastra/Mitel: an ``Aastra-Mac: 00085D1A2B3C`` header (optional on the phone);
- the User-Agent model: ``PolycomVVX-VVX_411-UA/6.3.1.8427`` is a VVX,
  ``Aastra 6757i/3.3.1.4322`` and ``Mitel 6867i/5.1.0.1024`` are the 67i family.

``device_mismatch`` compares them with the line's declaration:

========== ===============================================================
declared   refused when
========== ===============================================================
``vvx``    the User-Agent names another model; an ``Aastra-Mac``; a
           ``+sip.instance`` UUID not ending in the MAC (any instance
           counts unless the User-Agent names another model); no identity
           at all (no instance, no ``Aastra-Mac``, no model in the UA)
``67i``    the User-Agent names another model; an ``Aastra-Mac`` other than
           the MAC; no identity at all (``+sip.instance`` is not used: its
           UUID is not documented to carry the MAC on these phones)
softphone  the request claims to be a VVX or a 67i (User-Agent or
           ``Aastra-Mac``) *and* shows a MAC that is not the line's declared
           one (a softphone line rarely declares one). Any other User-Agent,
           random ``+sip.instance`` UUIDs (pjsua2, Linphone) included, is fine.
========== ===============================================================

Brute-force throttle
--------------------
``Admission`` counts failures in a sliding window (default 10 in 300 s) and bans
the *source address* (default 86,400 s), by two rules:

- **per source**: ``max_failures`` failures from one address, against any
  lines: the address is banned (password guessing, ``svcrack``);
- **per line**: ``max_failures`` failures against one ``line_key``, from any
  addresses: every address that failed against that line within the window
  is banned (the most recent ``2 * max_failures`` failures are remembered per
  line), and while the line stays over the threshold any new address that
  fails against it is banned at its first failure. A line under attack from a
  botnet thus costs the attacker one address per failure; the line's owner is
  only caught if they fail while the attack lasts (put office NATs and trunks
  in the allow-list).

A ``401`` challenge is not a failure: every registration starts with one.
But a challenge that stays unanswered for ``challenge_grace`` seconds counts as
one failure (at the time of the challenge): extension scanners (``svwar``)
send unauthenticated REGISTERs for many users and never answer, while phones
answer within milliseconds, and fifty phones of an office behind one NAT that
boot at once do not trip anything. At most ``4 * max_failures`` unanswered
challenges are remembered per address with their lines; older ones are pushed
out to a list of times that still count once their grace is over (a fast
scanner cannot evict its own challenges before they count), and beyond
``8 * max_failures`` in flight the oldest count at once. An answer for a line
whose challenge was pushed out takes one of those back.

IPv6 sources are tracked and banned per ``/64`` (``ipv6_prefix``): an attacker
owns whole prefixes. IPv4-mapped IPv6 addresses count as IPv4. Addresses in
``allow`` (trunks, the operator's own networks) are never counted nor banned.

Memory is bounded: at most ``max_tracked`` addresses and ``max_tracked``
lines are tracked, least recently used first out; at most ``max_tracked``
bans are kept (the oldest first out, counted in ``evicted_bans``).
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from switch.directory import Device, Line, normalize_mac
from switch.sip.errors import ParseError
from switch.sip.headers import parse_name_addr
from switch.sip.message import Request

DEVICE_NOT_DECLARED = (403, "Device not declared")
_KEYS_MAX = 4096  # addresses whose tracking key is kept (``Admission.source_key``)

HardwareModel = Literal["vvx", "67i"]

# --- device identity ---------------------------------------------------------------

# "PolycomVVX-VVX_411-UA/6.3.1.8427", "PolycomVVX-VVX_450-UA/6.4.3.5018",
# "Poly VVX 250/6.4.0": a VVX model number after the vendor name.
_POLY_VVX_UA = re.compile(r"\bpoly(?:com)?.*?vvx[ _-]?([a-z]?\d{3})\b", re.IGNORECASE)
# "Aastra 6757i/3.3.1.4322", "Mitel 6867i/5.1.0.1024", "Aastra 6731i/3.3.1": the
# Aastra/Mitel SIP desk phones (67xxi, 68xxi), the product's "67i" family.
_AASTRA_UA = re.compile(r"\b(?:aastra|mitel)[ /-]?(6\d{3}i)\b", re.IGNORECASE)
#   instance-val = "<" urn:uuid:8-4-4-4-12 ">"  (RFC 5626 §4.1, RFC 4122)
_UUID_URN = re.compile(
    r"^<?urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})>?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What a REGISTER says about the phone that sent it."""

    user_agent: str | None = None
    ua_model: HardwareModel | None = None  # model named by the User-Agent
    ua_product: str | None = None  # e.g. "VVX 411", "6757i"
    aastra_mac: str | None = None  # normalised; "" when present but not a MAC
    instance_nodes: tuple[str, ...] = ()  # last 12 hex digits of each urn:uuid instance

    @property
    def hardware_model(self) -> HardwareModel | None:
        """The desk-phone family the request claims: UA first, else ``Aastra-Mac``."""
        if self.ua_model is not None:
            return self.ua_model
        return "67i" if self.aastra_mac is not None else None


def device_identity(request: Request) -> DeviceIdentity:
    """Read the identity a REGISTER carries; never raises on malformed headers."""
    ua = request.headers.get("User-Agent")
    ua_model: HardwareModel | None = None
    product: str | None = None
    if ua:
        m = _POLY_VVX_UA.search(ua)
        if m:
            ua_model, product = "vvx", f"VVX {m.group(1).upper()}"
        else:
            m = _AASTRA_UA.search(ua)
            if m:
                ua_model, product = "67i", m.group(1).lower()
    aastra = request.headers.get("Aastra-Mac")
    aastra_mac = None if aastra is None else (normalize_mac(aastra) or "")
    nodes: list[str] = []
    for value in request.headers.get_all("Contact"):
        if value.strip() == "*":
            continue
        try:
            contact = parse_name_addr(value)
        except ParseError:
            continue
        instance = contact.params.get("+sip.instance")
        if instance is None:
            continue
        m = _UUID_URN.match(instance.strip().strip('"'))
        if m:
            nodes.append(m.group(1).lower())
    return DeviceIdentity(ua, ua_model, product, aastra_mac, tuple(dict.fromkeys(nodes)))


def _label(model: str) -> str:
    return {"vvx": "a Poly VVX", "67i": "an Aastra/Mitel 67i", "softphone": "a softphone"}[model]


def device_mismatch(line: Line, request: Request) -> str | None:
    """Why ``request`` (a REGISTER for ``line``) contradicts the declared device, or None.

    The reason is for logs; the answer on the wire is ``403 Device not declared``.
    """
    return identity_mismatch(line.device, device_identity(request))


def identity_mismatch(device: Device, ident: DeviceIdentity) -> str | None:
    """``device_mismatch`` on an already-read identity (see the table above)."""
    claimed = ident.hardware_model
    if device.model == "softphone":
        if claimed is None:
            return None
        macs = _claimed_macs(ident, trust_instance=claimed == "vvx")
        wrong = [(source, mac) for source, mac in macs if mac != device.mac]
        if not wrong:
            return None
        source, mac = wrong[0]
        described = _described(ident, claimed)
        return f"{described} ({source} {mac or '?'}) on a line declared for a softphone"

    if claimed is not None and claimed != device.model:
        return f"{_described(ident, claimed)} on a line declared for {_label(device.model)}"
    trust_instance = device.model == "vvx"
    macs = _claimed_macs(ident, trust_instance=trust_instance)
    for source, mac in macs:
        if mac != device.mac:
            if source == "+sip.instance":
                return f"+sip.instance does not end in the declared MAC {device.mac}"
            return f"{source} {mac or '?'} is not the declared MAC {device.mac}"
    if not macs and claimed is None:
        return (
            f"no device identity (line declared for {_label(device.model)} {device.mac}): "
            "no +sip.instance, Aastra-Mac or User-Agent model"
        )
    return None


def _claimed_macs(ident: DeviceIdentity, *, trust_instance: bool) -> list[tuple[str, str]]:
    macs: list[tuple[str, str]] = []
    if ident.aastra_mac is not None:
        macs.append(("Aastra-Mac", ident.aastra_mac))
    if trust_instance:
        macs.extend(("+sip.instance", node) for node in ident.instance_nodes)
    return macs


def _described(ident: DeviceIdentity, claimed: HardwareModel) -> str:
    if ident.ua_product is not None:
        return f"User-Agent {ident.user_agent!r} ({ident.ua_product})"
    return _label(claimed)


# --- brute-force throttle ----------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
BanKind = Literal["source", "line"]


@dataclass(frozen=True, slots=True)
class Ban:
    """A banned source: ``address`` is an IPv4 address or an IPv6 ``/64`` (as text)."""

    address: str
    reason: str
    kind: BanKind
    since: float
    until: float

    def active(self, now: float) -> bool:
        return self.since <= now < self.until


@dataclass(slots=True)
class _Source:
    failures: deque[float]  # times, the newest max_failures
    pending: OrderedDict[str, float] = field(default_factory=OrderedDict)  # line_key -> t
    # Times of unanswered challenges pushed out of ``pending`` by newer ones (their
    # lines forgotten): they still count once their grace is over.
    spilled: deque[float] = field(default_factory=deque)

    @property
    def unanswered(self) -> bool:
        return bool(self.pending or self.spilled)

    def answered(self, line_key: str) -> None:
        """The challenge sent for ``line_key`` got an answer (right or wrong). When it
        is no longer in ``pending`` (pushed out), one spilled challenge is taken back
        instead: a line answering cannot tell which one was its own."""
        if self.pending.pop(line_key, None) is None and self.spilled:
            self.spilled.popleft()


class Admission:
    """Failure counting and the ban list (see the module docstring for the rules)."""

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 300.0,
        ban_seconds: float = 86_400.0,
        *,
        silent: bool = False,
        allow: Iterable[str | Network] = (),
        challenge_grace: float = 32.0,
        max_tracked: int = 100_000,
        ipv6_prefix: int = 64,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if window <= 0 or ban_seconds <= 0 or challenge_grace <= 0:
            raise ValueError("window, ban_seconds and challenge_grace must be positive")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be within 1-128")
        self.max_failures = max_failures
        self.window = window
        self.ban_seconds = ban_seconds
        self.silent = silent
        self.challenge_grace = challenge_grace
        self.max_tracked = max_tracked
        self.ipv6_prefix = ipv6_prefix
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n for n in allow
        )
        # Address text -> its tracking key: ``source_key`` runs for every new
        # call and REGISTER, from few distinct addresses. Bounded (network input).
        self._keys: dict[str, str | None] = {}
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._lines: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._bans: OrderedDict[str, Ban] = OrderedDict()
        self._new_bans: list[Ban] = []
        self.evicted_bans = 0
        self.bans_total: dict[BanKind, int] = {"source": 0, "line": 0}

    # -- addresses

    def source_key(self, source_ip: str) -> str | None:
        """The tracking key of an address (IPv6 per prefix), or None when allow-listed."""
        keys = self._keys
        if source_ip in keys:
            return keys[source_ip]
        key = self._source_key(source_ip)
        if len(keys) >= _KEYS_MAX:
            keys.clear()
        keys[source_ip] = key
        return key

    def _source_key(self, source_ip: str) -> str | None:
        address = ipaddress.ip_address(source_ip)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allow):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            network = ipaddress.IPv6Network((address, self.ipv6_prefix), strict=False)
            return str(network)
        return str(address)

    def is_allowed(self, source_ip: str) -> bool:
        return self.source_key(source_ip) is None

    # -- queries

    def check(self, source_ip: str, now: float) -> Ban | None:
        """The ban in force for this address, if any (expired bans are dropped).

        Also turns the address's challenges left unanswered past the grace
        period into failures, which may ban it now.
        """
        key = self.source_key(source_ip)
        if key is None:
            return None
        ban = self._active_ban(key, now)
        if ban is not None:
            return ban
        source = self._sources.get(key)
        if source is not None and source.unanswered:
            return self._evaluate(key, source, now)
        return None

    def bans(self, now: float) -> list[Ban]:
        """Bans in force, oldest first (for logs, metrics and the admin API).

        Sweeps unanswered challenges first, so a scanner that has stopped
        sending still shows up once its grace period is over.
        """
        for key in list(self._sources):
            source = self._sources.get(key)
            if source is not None and source.unanswered:
                self._evaluate(key, source, now)
        for key in [k for k, ban in self._bans.items() if now >= ban.until]:
            del self._bans[key]
        return [ban for ban in self._bans.values() if ban.active(now)]

    def new_bans(self) -> list[Ban]:
        """Bans created since the last call (pull: the caller logs and counts them)."""
        out, self._new_bans = self._new_bans, []
        return out

    @property
    def tracked_sources(self) -> int:
        return len(self._sources)

    @property
    def tracked_lines(self) -> int:
        return len(self._lines)

    # -- inputs

    def record_challenge(self, source_ip: str, line_key: str, now: float) -> Ban | None:
        """A ``401``/``407`` was sent for ``line_key`` (known or not) to this address."""
        key = self.source_key(source_ip)
        if key is None:
            return None
        ban = self._active_ban(key, now)
        if ban is not None:
            return ban
        source = self._source(key)
        if line_key not in source.pending:  # the first unanswered challenge counts
            source.pending[line_key] = now
            cap = 4 * self.max_failures
            while len(source.pending) > cap:
                source.spilled.append(source.pending.popitem(last=False)[1])
            if len(source.spilled) > cap:
                # Over 8 * max_failures challenges in flight: the oldest count at once.
                over = len(source.spilled) - cap
                self._count(source, [source.spilled.popleft() for _ in range(over)])
        return self._evaluate(key, source, now)

    def record_failure(self, source_ip: str, line_key: str, now: float) -> Ban | None:
        """A wrong answer (bad digest, unknown user, undeclared device) for ``line_key``.

        Works the same whether ``line_key`` names an existing line or not.
        Returns the ban of this address if it is banned now; bans of other
        addresses this failure caused (per-line rule) come out of ``new_bans``.
        """
        key = self.source_key(source_ip)
        if key is None:
            return None
        ban = self._active_ban(key, now)
        if ban is not None:
            return ban
        source = self._source(key)
        source.answered(line_key)
        source.failures.append(now)
        line = self._line(line_key)
        line.append((now, key))
        ban = self._evaluate(key, source, now)
        if ban is not None:
            return ban
        return self._evaluate_line(line_key, line, now, key)

    def record_success(self, source_ip: str, line_key: str, now: float) -> None:
        """The address authenticated as ``line_key``: its challenge is answered, and
        its earlier failures against that line no longer count for the line rule.

        Failures from the address still count for the per-source rule: one valid
        account must not shield guesses against the others.
        """
        key = self.source_key(source_ip)
        if key is None:
            return
        source = self._sources.get(key)
        if source is not None:
            source.answered(line_key)
            self._sources.move_to_end(key)
        line = self._lines.get(line_key)
        if line is not None:
            kept = [(t, s) for t, s in line if s != key]
            line.clear()
            line.extend(kept)

    def restore(self, ban: Ban, now: float) -> bool:
        """Put back a ban made before a restart (``switch.bans``), its times in this
        clock; False when it is over, or its address is allow-listed now, or is not
        an address or network. It is not a new ban: neither ``new_bans`` nor
        ``bans_total`` count it again."""
        if now >= ban.until:
            return False
        if ban.since > now:  # the wall clock went back across the restart
            ban = Ban(ban.address, ban.reason, ban.kind, now, ban.until)
        try:
            network = ipaddress.ip_network(ban.address, strict=False)
        except ValueError:
            return False
        if any(network.overlaps(allowed) for allowed in self.allow):
            return False
        self._hold(ban)
        return True

    # -- internals

    def _active_ban(self, key: str, now: float) -> Ban | None:
        ban = self._bans.get(key)
        if ban is None:
            return None
        if now >= ban.until:
            del self._bans[key]
            return None
        return ban

    def _hold(self, ban: Ban) -> None:
        """Keep ``ban`` (the newest: least recently used bans go first beyond
        ``max_tracked``); it supersedes the failures that led to it."""
        key = ban.address
        self._bans[key] = ban
        self._bans.move_to_end(key)
        while len(self._bans) > self.max_tracked:
            self._bans.popitem(last=False)
            self.evicted_bans += 1
        self._sources.pop(key, None)

    def _source(self, key: str) -> _Source:
        source = self._sources.get(key)
        if source is None:
            source = _Source(deque(maxlen=self.max_failures))
            self._sources[key] = source
            while len(self._sources) > self.max_tracked:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        return source

    def _line(self, line_key: str) -> deque[tuple[float, str]]:
        line = self._lines.get(line_key)
        if line is None:
            line = deque(maxlen=2 * self.max_failures)
            self._lines[line_key] = line
            while len(self._lines) > self.max_tracked:
                self._lines.popitem(last=False)
        else:
            self._lines.move_to_end(line_key)
        return line

    def _evaluate(self, key: str, source: _Source, now: float) -> Ban | None:
        """Move overdue challenges to failures; ban the address past the threshold."""
        grace = self.challenge_grace
        overdue = [(line_key, t) for line_key, t in source.pending.items() if now - t >= grace]
        spilled = source.spilled
        late: list[float] = []
        while spilled and now - spilled[0] >= grace:  # oldest first
            late.append(spilled.popleft())
        if overdue or late:
            for line_key, _ in overdue:
                del source.pending[line_key]
            self._count(source, [*late, *(t for _, t in overdue)])
        recent = [t for t in source.failures if now - t < self.window]
        if len(recent) >= self.max_failures:
            reason = f"{len(recent)} authentication failures in {self.window:g} s from this address"
            return self._ban(key, reason, "source", now)
        return None

    def _count(self, source: _Source, times: list[float]) -> None:
        """Unanswered challenges (their times) become failures. A challenge may be
        older than the failures already counted: the newest ``max_failures`` stay."""
        merged = sorted([*source.failures, *times])
        source.failures.clear()
        source.failures.extend(merged[-self.max_failures :])

    def _evaluate_line(
        self, line_key: str, line: deque[tuple[float, str]], now: float, key: str
    ) -> Ban | None:
        recent = [(t, s) for t, s in line if now - t < self.window]
        if len(recent) < self.max_failures:
            return None
        reason = f"{len(recent)} authentication failures in {self.window:g} s against {line_key}"
        own: Ban | None = None
        for source_key in dict.fromkeys(s for _, s in recent):
            if self._active_ban(source_key, now) is None:
                ban = self._ban(source_key, reason, "line", now)
                if source_key == key:
                    own = ban
        return own

    def _ban(self, key: str, reason: str, kind: BanKind, now: float) -> Ban:
        ban = Ban(key, reason, kind, now, now + self.ban_seconds)
        self._hold(ban)
        self._new_bans.append(ban)
        self.bans_total[kind] += 1
        return ban
