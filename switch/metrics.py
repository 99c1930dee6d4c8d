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

Labels stay bounded whatever peers send: a request method that is not a
registered SIP method counts as ``method="other"``; status codes are three
digits by the parser's rules. Service numbers come from the routing library
(a bounded set), never from what a caller dialled.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

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
        ] + [GaugeMetricFamily("aiguilleur_registrations", "")]


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
        r.register(_SipCollector(self))

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

    # -- exposition ------------------------------------------------------------------------------
    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return prometheus_client.generate_latest(self.registry)
