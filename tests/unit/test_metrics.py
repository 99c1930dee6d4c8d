"""switch.metrics: what each call and SIP event counts, under the exact exposed names."""

from __future__ import annotations

import re

from switch.metrics import Metrics
from switch.sip.parser import parse_message
from tests.sip_support import options

SAMPLE = re.compile(r"^(?P<name>[a-z_:]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


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
