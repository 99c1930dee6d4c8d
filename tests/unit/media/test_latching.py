"""The latching policy over simulated time: NAT, probation, injection, re-latch, hold."""

from __future__ import annotations

import pytest

from media.latching import MAX_CANDIDATES, Latch, LatchConfig, rtcp_accept

SDP = ("192.168.1.10", 4000)
NAT = ("203.0.113.5", 61000)
EVIL = ("198.51.100.66", 5004)


def _stream(latch: Latch, source: tuple[str, int], n: int, *, ssrc: int = 1, seq: int = 100,
            now: float = 0.0, step: float = 0.02) -> list[bool]:  # fmt: skip
    return [latch.accept(source, ssrc, seq + i, now + i * step) for i in range(n)]


def test_before_any_packet_media_goes_to_the_sdp_address() -> None:
    latch = Latch()
    assert latch.target is None
    latch.signal(SDP)
    assert latch.target == SDP
    assert latch.latched is None


def test_the_sdp_address_latches_on_its_first_packet() -> None:
    latch = Latch()
    latch.signal(SDP)
    assert latch.accept(SDP, 1, 10, 0.0)
    assert latch.latched == SDP
    assert latch.latches == 1


def test_a_nated_source_latches_after_probation_and_its_first_packets_are_dropped() -> None:
    latch = Latch(LatchConfig(packets=3))
    latch.signal(SDP)
    assert _stream(latch, NAT, 4) == [False, False, True, True]
    assert latch.target == NAT


def test_probation_needs_consecutive_sequence_numbers_and_one_ssrc() -> None:
    latch = Latch(LatchConfig(packets=3))
    latch.signal(SDP)
    assert not latch.accept(NAT, 1, 10, 0.0)
    assert not latch.accept(NAT, 1, 12, 0.02)  # gap: probation restarts at 12
    assert not latch.accept(NAT, 2, 13, 0.04)  # other SSRC: restarts
    assert not latch.accept(NAT, 2, 14, 0.06)
    assert latch.accept(NAT, 2, 15, 0.08)


def test_sequence_wrap_counts_as_consecutive() -> None:
    latch = Latch(LatchConfig(packets=2))
    latch.signal(SDP)
    assert not latch.accept(NAT, 1, 0xFFFF, 0.0)
    assert latch.accept(NAT, 1, 0, 0.02)


def test_injection_after_latching_is_ignored_while_the_phone_talks() -> None:
    latch = Latch(LatchConfig(packets=3, quiet=2.0))
    latch.signal(SDP)
    assert latch.accept(SDP, 1, 1, 0.0)
    # A perfect-looking stream from elsewhere, as long as it likes, while the phone talks.
    for i in range(200):
        latch.last_seen = i * 0.02  # the shell's fast path for the phone's packets
        assert not latch.accept(EVIL, 99, 1000 + i, i * 0.02 + 0.01)
    assert latch.latched == SDP


def test_relatch_after_quiet_time_needs_probation_again() -> None:
    latch = Latch(LatchConfig(packets=3, quiet=2.0))
    latch.signal(SDP)
    assert latch.accept(SDP, 1, 1, 0.0)
    assert not latch.accept(NAT, 5, 1, 1.99)  # not quiet yet
    assert _stream(latch, NAT, 3, ssrc=5, seq=10, now=2.0) == [False, False, True]
    assert latch.latched == NAT
    assert latch.latches == 2


def test_a_spray_from_many_addresses_cannot_block_the_phone() -> None:
    latch = Latch(LatchConfig(packets=3))
    latch.signal(SDP)
    now = 0.0
    for i in range(3):
        # The phone's packet, then a burst from more spoofed sources than the table holds.
        assert latch.accept(NAT, 1, 100 + i, now) == (i == 2)
        for k in range(MAX_CANDIDATES * 3):
            if latch.latched is None:
                latch.accept((f"198.51.100.{k}", 9), 7, k, now)
        now += 0.02
    assert latch.latched == NAT


def test_new_sdp_address_forgets_the_latch_same_address_keeps_it() -> None:
    latch = Latch(LatchConfig(packets=2))
    latch.signal(SDP)
    _stream(latch, NAT, 2)
    assert latch.latched == NAT
    latch.signal(SDP)  # re-INVITE, same address: keep
    assert latch.latched == NAT
    moved = ("192.168.1.20", 4002)
    latch.signal(moved)  # transfer: the media comes from somewhere else now
    assert latch.latched is None
    assert latch.target == moved


@pytest.mark.parametrize("hold", [None, ("0.0.0.0", 4000)])
def test_hold_sends_nothing_and_resume_keeps_the_latch(hold: tuple[str, int] | None) -> None:
    latch = Latch(LatchConfig(packets=2))
    latch.signal(SDP)
    _stream(latch, NAT, 2)
    latch.signal(hold)
    assert latch.target is None
    latch.signal(SDP)
    assert latch.target == NAT


def test_a_source_that_latches_on_hold_gets_nothing_until_resume() -> None:
    latch = Latch(LatchConfig(packets=2))
    latch.signal(SDP)
    latch.signal(None)
    assert _stream(latch, NAT, 2) == [False, True]
    assert latch.latched == NAT
    assert latch.target is None
    latch.signal(SDP)
    assert latch.target == NAT


def test_config_bounds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LatchConfig(packets=0)
    with pytest.raises(ValueError, match="negative"):
        LatchConfig(quiet=-1)


def test_rtcp_follows_the_rtp_host() -> None:
    latch = Latch(LatchConfig(packets=2))
    latch.signal(SDP)
    rtcp_sdp = (SDP[0], SDP[1] + 1)
    assert rtcp_accept(("192.168.1.10", 7777), latch, rtcp_sdp)
    assert not rtcp_accept((NAT[0], 61001), latch, rtcp_sdp)
    _stream(latch, NAT, 2)
    assert rtcp_accept((NAT[0], 61001), latch, rtcp_sdp)
    assert not rtcp_accept(rtcp_sdp, latch, rtcp_sdp)
    assert not rtcp_accept(EVIL, latch, rtcp_sdp)
