"""Prometheus metrics: the switch's counters, in one registry per switch.

This is the only module that imports ``prometheus_client`` (ARCHITECTURE.md). The
admin HTTP server (``switch.admin``) serves :meth:`Metrics.render` at
``GET /metrics``; ``docs/operations.md`` lists every series.

Two kinds of counting, for two rates:

- Calls (tens per second at most): ``prometheus_client`` counters, gauges and
  histograms labelled by service number (``number="0800100100"``, national form:
  the form the operator reads in routing files and on invoices).
- SIP messages (thousands per second, on the stack's hot path): one ``dict``
  increment per message, no ``prometheus_client`` object touched. A custom
  collector turns the dicts into counter families when Prometheus scrapes.
  Counts are wire counts: retransmissions count, in both directions.
- The components' own tallies are read the same way at scrape time: each counts
  once, in its ``stats`` dict, and nothing here counts again. A ``StatsTable``
  maps each key to its series: ``B2bua.stats`` (calls started and ended,
  refusals, load shedding, trunks, transfers, pickups), ``RegistrarService.stats``
  (REGISTER results, digest challenges and failures, bans, keep-alives, expiries),
  ``Blf.stats`` (subscriptions, changes notified), ``Stack.stats`` (messages
  received and refused, stateless answers, transport and internal errors); and
  the silent-ban gate's ``BanGate.dropped``.

Labels stay bounded whatever peers send: a request method that is not a
registered SIP method counts as ``method="other"``; status codes are three
digits by the parser's rules. Service numbers come from the routing library
(a bounded set), never from what a caller dialled.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from routing.numbering import to_national
from switch.sip.message import Request, Response
from switch.sip.parser import METHODS as SIP_METHODS

# ``<name>_created`` series double every counter's cardinality for a timestamp
# Prometheus itself never reads; leave them out (process-wide, and this module
# is the only user of prometheus_client).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`Metrics.render` (text exposition format 0.0.4)."""

# Method labels: the IANA registry's methods as the parser lists them (SIP_METHODS,
# the switch's one list), and OTHER for anything else.
OTHER = "other"
_WIRE_METHODS = {m.encode(): m for m in SIP_METHODS}
_STATUS_LINE = b"SIP/2.0 "
# Status-Code = 3DIGIT (RFC 3261 §25.1): the three bytes after the SIP-Version.
_WIRE_STATUSES = {b"%03d" % code: code for code in range(1000)}

# Seconds. Ring: a GNR rings 15-30 s per attempt, 60 s at most (calls.ring_timeout).
RING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
# Talk: seconds to hours (calls.max_duration defaults to 4 h).
TALK_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)


class _SipCollector(Collector):
    """SIP message counts, read from plain dicts at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for name, doc, methods in (
            ("aiguilleur_sip_requests_received", "SIP requests received", m.requests_in),
            ("aiguilleur_sip_requests_sent", "SIP requests sent", m.requests_out),
        ):
            family = CounterMetricFamily(
                name, doc + " (retransmissions included)", labels=["method"]
            )
            for method, count in sorted(methods.items()):
                family.add_metric([method], count)
            yield family
        for name, doc, statuses in (
            ("aiguilleur_sip_responses_received", "SIP responses received", m.responses_in),
            ("aiguilleur_sip_responses_sent", "SIP responses sent", m.responses_out),
        ):
            family = CounterMetricFamily(
                name, doc + " (retransmissions included)", labels=["status"]
            )
            for status, count in sorted(statuses.items()):
                family.add_metric([str(status)], count)
            yield family
        source = m.registrations_source
        if source is not None:
            yield GaugeMetricFamily(
                "aiguilleur_registrations",
                "Current registrations (bindings: one per registered phone contact)",
                value=source(),
            )
        dropped = m.ban_gate_source
        if dropped is not None:
            yield CounterMetricFamily(
                "aiguilleur_ban_gate_dropped",
                "Datagrams and stream messages from banned addresses dropped unread (silent bans)",
                value=dropped(),
            )

    def describe(self) -> Iterable[Metric]:
        # Names only (values are not read at registration): duplicates are refused early.
        return [
            CounterMetricFamily(name, "", labels=[label])
            for name, label in (
                ("aiguilleur_sip_requests_received", "method"),
                ("aiguilleur_sip_requests_sent", "method"),
                ("aiguilleur_sip_responses_received", "status"),
                ("aiguilleur_sip_responses_sent", "status"),
            )
        ] + [
            GaugeMetricFamily("aiguilleur_registrations", ""),
            CounterMetricFamily("aiguilleur_ban_gate_dropped", ""),
        ]


@dataclass(frozen=True, slots=True)
class StatsTable:
    """How one component's ``stats`` (a dict of counts it keeps itself) is exposed.

    A key names a series exactly (``keys``) or by its prefix (``prefixes``: the rest
    of the key is the one label's value, from a bounded set such as a status code).
    The component counts once, in its dict; the scrape only reads it."""

    families: Mapping[str, tuple[str, tuple[str, ...]]]
    """Counter family name (``_total`` added on exposition) -> (HELP, label names)."""
    keys: Mapping[str, tuple[str, tuple[str, ...]]]
    """Key -> (family, label values)."""
    prefixes: Mapping[str, str] = field(default_factory=dict)
    """Key prefix (the key up to its first ``_``, included) -> family."""

    def series(self, key: str) -> tuple[str, tuple[str, ...]] | None:
        """The family and label values ``key`` counts in; None if unknown."""
        found = self.keys.get(key)
        if found is not None:
            return found
        prefix, sep, rest = key.partition("_")
        family = self.prefixes.get(prefix + sep)
        return None if family is None or not rest else (family, (rest,))

    def collect(self, stats: Mapping[str, int]) -> Iterator[Metric]:
        families = {
            name: CounterMetricFamily(name, doc, labels=list(labels))
            for name, (doc, labels) in self.families.items()
        }
        values: Tally[tuple[str, tuple[str, ...]]] = Tally()
        for key, count in stats.items():
            series = self.series(key)
            if series is not None:  # a key without a series is a bug test_metrics catches
                values[series] += count
        for name, (_, labels) in self.families.items():
            if not labels:  # always present, 0 included: rate() needs a first sample
                values[name, ()] += 0
        for (name, label_values), count in sorted(values.items()):
            families[name].add_metric(list(label_values), count)
        yield from families.values()

    def describe(self) -> list[Metric]:
        return [
            CounterMetricFamily(name, "", labels=list(labels))
            for name, (_, labels) in self.families.items()
        ]


B2BUA_STATS = StatsTable(
    # ``B2bua.stats``, counted by ``switch.b2bua`` and ``switch.transfer``.
    families={
        "aiguilleur_b2bua_calls_started": (
            "Calls the B2BUA started: an A leg accepted (line, trunk or service call)",
            (),
        ),
        "aiguilleur_b2bua_calls_ended": ("Calls ended, by outcome", ("outcome",)),
        "aiguilleur_b2bua_requests_refused": (
            "Requests the B2BUA answered with an error before any call started "
            "(ban, unknown caller, digest challenge, line limit, no such dialog), by status",
            ("status",),
        ),
        "aiguilleur_b2bua_calls_shed": (
            "New calls answered 503 with Retry-After because the stack was overloaded",
            (),
        ),
        "aiguilleur_b2bua_trunk_calls": (
            "Calls through a trunk, by direction (in, out)",
            ("direction",),
        ),
        "aiguilleur_b2bua_transfers": (
            "Call transfers (REFER), by result (started, refused, failed, completed)",
            ("result",),
        ),
        "aiguilleur_b2bua_pickups": (
            "Ringing calls picked up (INVITE with Replaces, star code)",
            (),
        ),
        "aiguilleur_b2bua_replaces": (
            "Calls in progress taken over by an INVITE with Replaces (confirmed dialog)",
            (),
        ),
    },
    keys={
        "calls": ("aiguilleur_b2bua_calls_started", ()),
        "overload_503": ("aiguilleur_b2bua_calls_shed", ()),
        "trunk_in": ("aiguilleur_b2bua_trunk_calls", ("in",)),
        "trunk_out": ("aiguilleur_b2bua_trunk_calls", ("out",)),
        "transfers": ("aiguilleur_b2bua_transfers", ("started",)),  # blind: the attempt dialled
        "transfer_refused": ("aiguilleur_b2bua_transfers", ("refused",)),
        "transfer_failed": ("aiguilleur_b2bua_transfers", ("failed",)),
        "transferred": ("aiguilleur_b2bua_transfers", ("completed",)),
        "pickups": ("aiguilleur_b2bua_pickups", ()),
        "replaced": ("aiguilleur_b2bua_replaces", ()),
    },
    prefixes={
        "outcome_": "aiguilleur_b2bua_calls_ended",  # outcome_<Outcome>
        "refused_": "aiguilleur_b2bua_requests_refused",  # refused_<status>
    },
)

REGISTRAR_STATS = StatsTable(
    # ``RegistrarService.stats``: REGISTER, and the digest of INVITE and SUBSCRIBE too
    # (``authenticate``), admission bans, keep-alives, expiries.
    families={
        "aiguilleur_registrar_registers_accepted": (
            "REGISTER requests accepted (200: bindings added, refreshed, removed or listed)",
            (),
        ),
        "aiguilleur_registrar_registers_refused": (
            "REGISTER requests refused by the registrar's rules after the digest "
            "(RFC 3261 section 10.3: Contact, Expires, interval too brief...), by status",
            ("status",),
        ),
        "aiguilleur_registrar_registers_banned": (
            "REGISTER requests answered 403 because their source is banned "
            "(bans not silent, or a request already past the gate)",
            (),
        ),
        "aiguilleur_registrar_devices_refused": (
            "REGISTER requests refused because the phone is not the line's declared device",
            (),
        ),
        "aiguilleur_registrar_challenges": (
            "Digest challenges sent: 401 to REGISTER, 407 to INVITE and SUBSCRIBE "
            "(stale nonces included)",
            (),
        ),
        "aiguilleur_registrar_stale_nonces": (
            "Digest answers with an expired nonce, challenged again with stale=true",
            (),
        ),
        "aiguilleur_registrar_nonce_replays": (
            "Digest answers that reused a nonce count, refused with 403",
            (),
        ),
        "aiguilleur_registrar_auth_failures": (
            "Authentication failures counted towards bans: wrong credentials, nonce "
            "reused, device not declared (REGISTER, INVITE, SUBSCRIBE)",
            (),
        ),
        "aiguilleur_registrar_bans": (
            "Bans made by admission control, by kind (source: one address; "
            "line: one line attacked from many addresses)",
            ("kind",),
        ),
        "aiguilleur_registrar_ban_store_errors": (
            "Bans the ban store could not keep (they hold in memory until a restart)",
            (),
        ),
        "aiguilleur_registrar_store_errors": (
            "REGISTER requests answered 500 because the location store failed",
            (),
        ),
        "aiguilleur_registrar_bindings_expired": ("Bindings removed at their expiry", ()),
        "aiguilleur_registrar_bindings_unreachable": (
            "Bindings marked unreachable (keep-alive unanswered, connection closed)",
            (),
        ),
        "aiguilleur_registrar_keepalives_sent": (
            "Keep-alives sent to registered phones (OPTIONS, CRLF)",
            (),
        ),
        "aiguilleur_registrar_keepalives_lost": (
            "Keep-alive OPTIONS left unanswered (timed out, or failed in the transport)",
            (),
        ),
    },
    keys={
        "registered": ("aiguilleur_registrar_registers_accepted", ()),
        "refused_banned": ("aiguilleur_registrar_registers_banned", ()),
        "device_refused": ("aiguilleur_registrar_devices_refused", ()),
        "challenges": ("aiguilleur_registrar_challenges", ()),
        "stale": ("aiguilleur_registrar_stale_nonces", ()),
        "replays": ("aiguilleur_registrar_nonce_replays", ()),
        "auth_failures": ("aiguilleur_registrar_auth_failures", ()),
        "ban_store_errors": ("aiguilleur_registrar_ban_store_errors", ()),
        "store_errors": ("aiguilleur_registrar_store_errors", ()),
        "expired": ("aiguilleur_registrar_bindings_expired", ()),
        "unreachable": ("aiguilleur_registrar_bindings_unreachable", ()),
        "keepalives_sent": ("aiguilleur_registrar_keepalives_sent", ()),
        "keepalives_lost": ("aiguilleur_registrar_keepalives_lost", ()),
    },
    prefixes={
        "refused_": "aiguilleur_registrar_registers_refused",  # refused_<status>
        "bans_": "aiguilleur_registrar_bans",  # bans_<BanKind>
    },
)

BLF_STATS = StatsTable(
    # ``Blf.stats``: dialog-event (BLF) subscriptions to the lines.
    families={
        "aiguilleur_blf_subscribes_received": (
            "SUBSCRIBE requests the BLF service received (new, refresh, unsubscribe; "
            "refused ones included)",
            (),
        ),
        "aiguilleur_blf_changes_notified": (
            "Changes of a line's call state notified to its watchers (one per change "
            "and line, however many watchers)",
            (),
        ),
    },
    keys={
        "subscribe": ("aiguilleur_blf_subscribes_received", ()),
        "notify": ("aiguilleur_blf_changes_notified", ()),
    },
)

STACK_STATS = StatsTable(
    # ``Stack.stats``: what the SIP stack met below the transaction users.
    families={
        "aiguilleur_stack_messages_received": (
            "SIP messages read from the transports (datagrams, framed stream messages) "
            "before parsing: unparseable ones included, those a silent ban dropped not",
            (),
        ),
        "aiguilleur_stack_messages_refused": (
            "Messages the parser refused, by the status of the error (answered when "
            "they are requests it can answer, else dropped)",
            ("status",),
        ),
        "aiguilleur_stack_stateless_responses": (
            "Responses sent without a transaction (the stateless core's answers: "
            "OPTIONS, 481, 405...; refusals of unparseable requests), by status",
            ("status",),
        ),
        "aiguilleur_stack_transport_errors": (
            "Sends the transport could not deliver (ICMP error, connection refused or lost)",
            (),
        ),
        "aiguilleur_stack_internal_errors": (
            "Unexpected errors (bugs) met on a message or a timer, logged as internal.error",
            (),
        ),
    },
    keys={
        "received": ("aiguilleur_stack_messages_received", ()),
        "transport_errors": ("aiguilleur_stack_transport_errors", ()),
        "internal_errors": ("aiguilleur_stack_internal_errors", ()),
    },
    prefixes={
        "refused_": "aiguilleur_stack_messages_refused",  # refused_<status>
        "answered_": "aiguilleur_stack_stateless_responses",  # answered_<status>
    },
)


class _StatsCollector(Collector):
    """One component's ``stats`` (``table``) as counter families, read at scrape time."""

    def __init__(self, table: StatsTable) -> None:
        self.table = table
        self.source: Callable[[], Mapping[str, int]] | None = None

    def collect(self) -> Iterator[Metric]:
        source = self.source
        if source is None:  # not built yet (the switch is starting)
            return
        yield from self.table.collect(source())

    def describe(self) -> Iterable[Metric]:
        return self.table.describe()


class Metrics:
    """Every counter of one switch. Tests create several: each has its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._offered = Counter(
            "aiguilleur_calls_offered",
            "Calls that reached a service number",
            ["number"],
            registry=r,
        )
        self._answered = Counter(
            "aiguilleur_calls_answered", "Calls answered by a target", ["number"], registry=r
        )
        self._abandoned = Counter(
            "aiguilleur_calls_abandoned",
            "Calls the caller hung up before they were answered (appels perdus)",
            ["number"],
            registry=r,
        )
        self._overflowed = Counter(
            "aiguilleur_calls_overflowed",
            "Débordements: calls that left a step by an overflow cause",
            ["number", "cause"],
            registry=r,
        )
        self._limited = Counter(
            "aiguilleur_limiter_rejections",
            "Calls refused by a limiteur (simultaneous calls at their maximum)",
            ["number"],
            registry=r,
        )
        self._played = Counter(
            "aiguilleur_messages_played",
            "Announcements played, by message",
            ["number", "message"],
            registry=r,
        )
        self._active = Gauge("aiguilleur_calls_active", "Calls in progress", ["number"], registry=r)
        self._ring = Histogram(
            "aiguilleur_ring_time_seconds",
            "Time from the call's arrival to its answer, answered calls",
            ["number"],
            buckets=RING_BUCKETS,
            registry=r,
        )
        self._talk = Histogram(
            "aiguilleur_talk_time_seconds",
            "Time from answer to hang-up, answered calls",
            ["number"],
            buckets=TALK_BUCKETS,
            registry=r,
        )
        self._reloads = Counter(
            "aiguilleur_routing_reloads",
            "Routing reloads (SIGHUP, admin API), by result (ok, refused)",
            ["result"],
            registry=r,
        )
        self._reloaded_at = Gauge(
            "aiguilleur_routing_loaded_timestamp_seconds",
            "When the running routing library was installed (Unix time)",
            registry=r,
        )
        # Hot path: plain tallies, read by _SipCollector at scrape time.
        self.requests_in: dict[str, int] = dict.fromkeys(SIP_METHODS, 0)
        self.requests_out: dict[str, int] = dict.fromkeys(SIP_METHODS, 0)
        self.requests_in[OTHER] = self.requests_out[OTHER] = 0
        self.responses_in: Tally[int] = Tally()
        self.responses_out: Tally[int] = Tally()
        self.registrations_source: Callable[[], int] | None = None
        self.ban_gate_source: Callable[[], int] | None = None
        r.register(_SipCollector(self))
        self._b2bua = _StatsCollector(B2BUA_STATS)
        self._registrar = _StatsCollector(REGISTRAR_STATS)
        self._blf = _StatsCollector(BLF_STATS)
        self._stack = _StatsCollector(STACK_STATS)
        for collector in (self._b2bua, self._registrar, self._blf, self._stack):
            r.register(collector)

    # -- calls (per service number) ---------------------------------------------------
    def offered(self, number: str) -> None:
        self._offered.labels(to_national(number)).inc()

    def answered(self, number: str, ring_seconds: float) -> None:
        label = to_national(number)
        self._answered.labels(label).inc()
        self._ring.labels(label).observe(ring_seconds)

    def abandoned(self, number: str) -> None:
        """The caller hung up before any answer."""
        self._abandoned.labels(to_national(number)).inc()

    def overflowed(self, number: str, cause: str) -> None:
        """``cause``: busy, no_answer, unreachable, limit, closed, rejected…"""
        self._overflowed.labels(to_national(number), cause).inc()

    def limiter_rejected(self, number: str) -> None:
        self._limited.labels(to_national(number)).inc()

    def message_played(self, number: str, message: str) -> None:
        self._played.labels(to_national(number), message).inc()

    def active(self, number: str, delta: int) -> None:
        self._active.labels(to_national(number)).inc(delta)

    def ended(self, number: str, talk_seconds: float) -> None:
        """An answered call ended after ``talk_seconds`` of conversation."""
        self._talk.labels(to_national(number)).observe(talk_seconds)

    # -- routing ---------------------------------------------------------------------------
    def reloaded(self, ok: bool, at: float | None = None) -> None:
        """A reload was tried: ``ok`` when the new library is running (installed ``at``)."""
        self._reloads.labels("ok" if ok else "refused").inc()
        if ok:
            self.library_installed(time.time() if at is None else at)

    def library_installed(self, at: float) -> None:
        self._reloaded_at.set(at)

    # -- SIP (hot path: a dict increment, nothing else) --------------------------------------
    def sip_received(self, method: str | None, status: int | None) -> None:
        """A request (``method``) or a response (``status``) arrived."""
        if status is None:
            tally = self.requests_in
            tally[method if method is not None and method in tally else OTHER] += 1
        else:
            self.responses_in[status] += 1

    def sip_sent(self, method: str | None, status: int | None) -> None:
        """A request (``method``) or a response (``status``) left."""
        if status is None:
            tally = self.requests_out
            tally[method if method is not None and method in tally else OTHER] += 1
        else:
            self.responses_out[status] += 1

    def sip_received_message(self, message: Request | Response) -> None:
        """:meth:`sip_received` for a parsed message (the stack's receive hook)."""
        if isinstance(message, Response):
            self.responses_in[message.status] += 1
        else:
            tally = self.requests_in
            method = message.method
            tally[method if method in tally else OTHER] += 1

    def sip_sent_wire(self, data: bytes) -> None:
        """:meth:`sip_sent` for serialized bytes: the start line is all it reads.

        The stack sends bytes the transaction layer produced (retransmissions
        included), so there is no message object to ask.
        """
        if data.startswith(_STATUS_LINE):
            status = _WIRE_STATUSES.get(data[8:11])
            if status is not None:  # always, for bytes the switch serialized
                self.responses_out[status] += 1
            return
        method = _WIRE_METHODS.get(data[: data.find(b" ")], OTHER)
        self.requests_out[method] += 1

    # -- registrations -------------------------------------------------------------------------
    def set_registrations(self, source: Callable[[], int]) -> None:
        """Read ``source()`` at each scrape for ``aiguilleur_registrations``."""
        self.registrations_source = source

    def set_ban_gate(self, source: Callable[[], int]) -> None:
        """Read ``source()`` (``BanGate.dropped``) at each scrape for
        ``aiguilleur_ban_gate_dropped_total``."""
        self.ban_gate_source = source

    # -- components' own tallies (``stats``, read at each scrape) -------------------------------
    def set_b2bua(self, source: Callable[[], Mapping[str, int]]) -> None:
        """``B2bua.stats``: the ``aiguilleur_b2bua_*`` counters."""
        self._b2bua.source = source

    def set_registrar(self, source: Callable[[], Mapping[str, int]]) -> None:
        """``RegistrarService.stats``: the ``aiguilleur_registrar_*`` counters."""
        self._registrar.source = source

    def set_blf(self, source: Callable[[], Mapping[str, int]]) -> None:
        """``Blf.stats``: the ``aiguilleur_blf_*`` counters."""
        self._blf.source = source

    def set_stack(self, source: Callable[[], Mapping[str, int]]) -> None:
        """``Stack.stats``: the ``aiguilleur_stack_*`` counters."""
        self._stack.source = source

    # -- exposition ------------------------------------------------------------------------------
    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return prometheus_client.generate_latest(self.registry)
