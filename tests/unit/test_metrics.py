"""switch.metrics: what each call and SIP event counts, under the exact exposed names."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from switch.metrics import (
    B2BUA_STATS,
    BLF_STATS,
    REGISTRAR_STATS,
    STACK_STATS,
    Metrics,
    StatsTable,
)
from switch.sip.parser import parse_message
from tests.sip_support import ROOT, options

SAMPLE = re.compile(r"^(?P<name>[a-z_:][a-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition: (name, labels) -> value."""
    out = {}
    for line in metrics.render().decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        out[match["name"], labels] = float(match["value"])
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[name, frozenset(labels.items())]


def test_call_counters_carry_the_national_number() -> None:
    m = Metrics()
    m.offered("+33800100100")  # the library's key form
    m.offered("0800100100")  # already national
    m.answered("+33800100100", ring_seconds=4.0)
    m.abandoned("0800100100")
    m.overflowed("0800100100", "busy")
    m.overflowed("0800100100", "busy")
    m.overflowed("0800100100", "no_answer")
    m.limiter_rejected("0891100100")
    m.message_played("0891100100", "atp-0891")
    assert value(m, "aiguilleur_calls_offered_total", number="0800100100") == 2
    assert value(m, "aiguilleur_calls_answered_total", number="0800100100") == 1
    assert value(m, "aiguilleur_calls_abandoned_total", number="0800100100") == 1
    assert value(m, "aiguilleur_calls_overflowed_total", number="0800100100", cause="busy") == 2
    assert (
        value(m, "aiguilleur_calls_overflowed_total", number="0800100100", cause="no_answer") == 1
    )
    assert value(m, "aiguilleur_limiter_rejections_total", number="0891100100") == 1
    assert (
        value(m, "aiguilleur_messages_played_total", number="0891100100", message="atp-0891") == 1
    )


def test_active_calls_go_up_and_down() -> None:
    m = Metrics()
    m.active("0800100100", 1)
    m.active("0800100100", 1)
    m.active("0800100100", -1)
    assert value(m, "aiguilleur_calls_active", number="0800100100") == 1


def test_ring_and_talk_histograms_in_seconds() -> None:
    m = Metrics()
    m.answered("0800100100", ring_seconds=4.0)
    m.answered("0800100100", ring_seconds=25.0)
    m.ended("0800100100", talk_seconds=90.0)
    ring = "aiguilleur_ring_time_seconds"
    assert value(m, f"{ring}_count", number="0800100100") == 2
    assert value(m, f"{ring}_sum", number="0800100100") == 29.0
    assert value(m, f"{ring}_bucket", number="0800100100", le="5.0") == 1
    assert value(m, f"{ring}_bucket", number="0800100100", le="30.0") == 2
    talk = "aiguilleur_talk_time_seconds"
    assert value(m, f"{talk}_count", number="0800100100") == 1
    assert value(m, f"{talk}_bucket", number="0800100100", le="60.0") == 0
    assert value(m, f"{talk}_bucket", number="0800100100", le="120.0") == 1


def test_sip_requests_by_method_and_responses_by_status() -> None:
    m = Metrics()
    m.sip_received("INVITE", None)
    m.sip_received("INVITE", None)
    m.sip_received(None, 486)
    m.sip_sent("BYE", None)
    m.sip_sent(None, 200)
    assert value(m, "aiguilleur_sip_requests_received_total", method="INVITE") == 2
    assert value(m, "aiguilleur_sip_requests_received_total", method="REGISTER") == 0
    assert value(m, "aiguilleur_sip_responses_received_total", status="486") == 1
    assert value(m, "aiguilleur_sip_requests_sent_total", method="BYE") == 1
    assert value(m, "aiguilleur_sip_responses_sent_total", status="200") == 1


def test_unknown_methods_share_one_label() -> None:
    """A peer inventing methods must not create one series per invention."""
    m = Metrics()
    for n in range(100):
        m.sip_received(f"FOO{n}", None)
    m.sip_sent_wire(b"BAR sip:x SIP/2.0\r\n\r\n")
    m.sip_received_message(parse_message(options(method="NOPE")))
    names = [k for k in samples(m) if k[0] == "aiguilleur_sip_requests_received_total"]
    assert len(names) == 15  # the 14 registered methods and "other"
    assert value(m, "aiguilleur_sip_requests_received_total", method="other") == 101
    assert value(m, "aiguilleur_sip_requests_sent_total", method="other") == 1


def test_wire_and_message_hooks_read_the_start_line() -> None:
    m = Metrics()
    m.sip_sent_wire(b"SIP/2.0 180 Ringing\r\nVia: x\r\n\r\n")
    m.sip_sent_wire(b"INVITE sip:401@pbx.test SIP/2.0\r\n\r\n")
    m.sip_received_message(parse_message(options()))
    m.sip_received_message(
        parse_message(
            b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"
            b"From: <sip:a@pbx.test>;tag=1\r\nTo: <sip:b@pbx.test>;tag=2\r\n"
            b"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    )
    assert value(m, "aiguilleur_sip_responses_sent_total", status="180") == 1
    assert value(m, "aiguilleur_sip_requests_sent_total", method="INVITE") == 1
    assert value(m, "aiguilleur_sip_requests_received_total", method="OPTIONS") == 1
    assert value(m, "aiguilleur_sip_responses_received_total", status="404") == 1


def test_wire_hook_counts_registered_methods_and_status_codes_only() -> None:
    m = Metrics()
    m.sip_sent_wire(b"SUBSCRIBE sip:401@pbx.test SIP/2.0\r\n\r\n")
    m.sip_sent_wire(b"SUBSCRIBES sip:401@pbx.test SIP/2.0\r\n\r\n")
    m.sip_sent_wire(b"\r\n\r\n")  # no start line at all
    m.sip_sent_wire(b"SIP/2.0 1x0 Bad\r\n\r\n")  # not a status code: not counted
    assert value(m, "aiguilleur_sip_requests_sent_total", method="SUBSCRIBE") == 1
    assert value(m, "aiguilleur_sip_requests_sent_total", method="other") == 2
    assert not any(k[0] == "aiguilleur_sip_responses_sent_total" for k in samples(m))


def test_registrations_are_read_at_scrape_time() -> None:
    m = Metrics()
    assert not any(k[0] == "aiguilleur_registrations" for k in samples(m))
    count = [3]
    m.set_registrations(lambda: count[0])
    assert value(m, "aiguilleur_registrations") == 3
    count[0] = 5
    assert value(m, "aiguilleur_registrations") == 5


def test_b2bua_stats_are_read_at_scrape_time_under_their_names() -> None:
    m = Metrics()
    assert not any(k[0].startswith("aiguilleur_b2bua_") for k in samples(m))
    stats: Counter[str] = Counter()
    m.set_b2bua(lambda: stats)
    # Before anything happened: the unlabelled counters are there at 0.
    assert value(m, "aiguilleur_b2bua_calls_started_total") == 0
    assert value(m, "aiguilleur_b2bua_calls_shed_total") == 0
    stats.update(
        {
            "calls": 3,
            "outcome_answered": 2,
            "outcome_no_answer": 1,
            "refused_407": 4,
            "refused_403": 1,
            "overload_503": 5,
            "trunk_in": 1,
            "trunk_out": 2,
            "transfers": 1,
            "transferred": 1,
            "transfer_refused": 2,
            "transfer_failed": 1,
            "pickups": 1,
            "replaced": 1,
        }
    )
    assert value(m, "aiguilleur_b2bua_calls_started_total") == 3
    assert value(m, "aiguilleur_b2bua_calls_ended_total", outcome="answered") == 2
    assert value(m, "aiguilleur_b2bua_calls_ended_total", outcome="no_answer") == 1
    assert value(m, "aiguilleur_b2bua_requests_refused_total", status="407") == 4
    assert value(m, "aiguilleur_b2bua_requests_refused_total", status="403") == 1
    assert value(m, "aiguilleur_b2bua_calls_shed_total") == 5
    assert value(m, "aiguilleur_b2bua_trunk_calls_total", direction="in") == 1
    assert value(m, "aiguilleur_b2bua_trunk_calls_total", direction="out") == 2
    assert value(m, "aiguilleur_b2bua_transfers_total", result="started") == 1
    assert value(m, "aiguilleur_b2bua_transfers_total", result="completed") == 1
    assert value(m, "aiguilleur_b2bua_transfers_total", result="refused") == 2
    assert value(m, "aiguilleur_b2bua_transfers_total", result="failed") == 1
    assert value(m, "aiguilleur_b2bua_pickups_total") == 1
    assert value(m, "aiguilleur_b2bua_replaces_total") == 1
    stats["calls"] += 1  # counted once, by the B2BUA; the scrape only reads
    assert value(m, "aiguilleur_b2bua_calls_started_total") == 4
    text = m.render().decode()
    assert "# TYPE aiguilleur_b2bua_requests_refused_total counter" in text
    assert "# HELP aiguilleur_b2bua_calls_shed_total New calls answered 503" in text


def test_registrar_blf_and_stack_stats_are_read_at_scrape_time() -> None:
    m = Metrics()
    assert not any(
        k[0].startswith(("aiguilleur_registrar_", "aiguilleur_blf_", "aiguilleur_stack_"))
        for k in samples(m)
    )
    registrar: Counter[str] = Counter()
    blf = {"notify": 0, "subscribe": 0}
    stack: Counter[str] = Counter()
    dropped = [0]
    m.set_registrar(lambda: registrar)
    m.set_blf(lambda: blf)
    m.set_stack(lambda: stack)
    m.set_ban_gate(lambda: dropped[0])
    # Before anything happened: the unlabelled counters are there at 0.
    for name in (
        "aiguilleur_registrar_registers_accepted_total",
        "aiguilleur_registrar_challenges_total",
        "aiguilleur_blf_subscribes_received_total",
        "aiguilleur_stack_messages_received_total",
        "aiguilleur_ban_gate_dropped_total",
    ):
        assert value(m, name) == 0, name
    registrar.update(
        {
            "registered": 5,
            "refused_423": 1,
            "refused_banned": 2,  # a key of its own, not status="banned"
            "challenges": 7,
            "auth_failures": 3,
            "bans_source": 1,
            "bans_line": 1,
            "keepalives_sent": 9,
        }
    )
    blf.update(subscribe=4, notify=6)
    stack.update({"received": 40, "refused_400": 2, "answered_400": 1, "answered_200": 3})
    dropped[0] = 11
    assert value(m, "aiguilleur_registrar_registers_accepted_total") == 5
    assert value(m, "aiguilleur_registrar_registers_refused_total", status="423") == 1
    assert value(m, "aiguilleur_registrar_registers_banned_total") == 2
    assert (
        "aiguilleur_registrar_registers_refused_total",
        frozenset({("status", "banned")}),
    ) not in (samples(m))
    assert value(m, "aiguilleur_registrar_challenges_total") == 7
    assert value(m, "aiguilleur_registrar_auth_failures_total") == 3
    assert value(m, "aiguilleur_registrar_bans_total", kind="source") == 1
    assert value(m, "aiguilleur_registrar_bans_total", kind="line") == 1
    assert value(m, "aiguilleur_registrar_keepalives_sent_total") == 9
    assert value(m, "aiguilleur_registrar_keepalives_lost_total") == 0
    assert value(m, "aiguilleur_blf_subscribes_received_total") == 4
    assert value(m, "aiguilleur_blf_changes_notified_total") == 6
    assert value(m, "aiguilleur_stack_messages_received_total") == 40
    assert value(m, "aiguilleur_stack_messages_refused_total", status="400") == 2
    assert value(m, "aiguilleur_stack_stateless_responses_total", status="400") == 1
    assert value(m, "aiguilleur_stack_stateless_responses_total", status="200") == 3
    assert value(m, "aiguilleur_ban_gate_dropped_total") == 11
    text = m.render().decode()
    assert "# TYPE aiguilleur_registrar_bans_total counter" in text
    assert "# HELP aiguilleur_stack_transport_errors_total Sends the transport" in text


# Each table and the files whose ``stats[...]`` it exposes.
STATS_SOURCES: dict[str, tuple[StatsTable, tuple[str, ...]]] = {
    "b2bua": (B2BUA_STATS, ("switch/b2bua.py", "switch/transfer.py")),
    "registrar": (REGISTRAR_STATS, ("switch/registrar_service.py",)),
    "blf": (BLF_STATS, ("switch/blf.py",)),
    "stack": (STACK_STATS, ("switch/stack.py",)),
}


@pytest.mark.parametrize("component", sorted(STATS_SOURCES))
def test_every_stats_key_has_a_series(component: str) -> None:
    """A key a component counts but no family names would silently never be exported."""
    table, paths = STATS_SOURCES[component]
    keys = {
        key
        for path in paths
        for key in re.findall(r'stats\[f?"([a-z0-9_]+)', (ROOT / path).read_text())
    }
    assert keys, f"no stats keys found in {paths}"
    for key in keys:
        # An f-string key ("refused_{status}") is a prefix: any value completes it.
        assert table.series(key + "486" if key.endswith("_") else key) is not None, key
    # And every family is fed by some key (no series exported that nothing counts).
    fed = {table.series(key + "486" if key.endswith("_") else key) for key in keys}
    assert {series[0] for series in fed if series is not None} == set(table.families)


def test_the_b2bua_keys_found_are_the_ones_counted() -> None:
    keys = {
        key
        for path in STATS_SOURCES["b2bua"][1]
        for key in re.findall(r'stats\[f?"([a-z0-9_]+)', (ROOT / path).read_text())
    }
    assert {"calls", "refused_", "outcome_", "overload_503", "trunk_out"} <= keys
    assert B2BUA_STATS.series("refused_") is None
    assert B2BUA_STATS.series("nonsense") is None


def test_the_stats_families_have_distinct_names() -> None:
    names = [name for table, _ in STATS_SOURCES.values() for name in table.families]
    assert len(names) == len(set(names))
    Metrics().render()  # the registry refuses a name registered twice


def test_reloads_by_result() -> None:
    m = Metrics()
    m.reloaded(True, at=1_700_000_000.0)
    m.reloaded(False)
    assert value(m, "aiguilleur_routing_reloads_total", result="ok") == 1
    assert value(m, "aiguilleur_routing_reloads_total", result="refused") == 1
    assert value(m, "aiguilleur_routing_loaded_timestamp_seconds") == 1_700_000_000.0


def test_each_switch_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.offered("0800100100")
    a.sip_received("OPTIONS", None)
    assert value(a, "aiguilleur_calls_offered_total", number="0800100100") == 1
    assert ("aiguilleur_calls_offered_total", frozenset({("number", "0800100100")})) not in (
        samples(b)
    )
    assert value(b, "aiguilleur_sip_requests_received_total", method="OPTIONS") == 0


def test_exposition_has_help_type_and_no_created_series() -> None:
    m = Metrics()
    m.offered("0800100100")
    text = m.render().decode()
    assert "# TYPE aiguilleur_calls_offered_total counter" in text
    assert "# HELP aiguilleur_calls_offered_total " in text
    assert "# TYPE aiguilleur_calls_active gauge" in text
    assert "# TYPE aiguilleur_ring_time_seconds histogram" in text
    assert "# TYPE aiguilleur_sip_requests_received_total counter" in text
    assert "_created" not in text
    assert all(name.startswith("aiguilleur_") for name, _ in samples(m)), (
        "every series is the switch's own"
    )
