"""Player pacing over simulated time: no drift, wrap-around, skip."""

from __future__ import annotations

import pytest

from media.player import Player
from media.rtp import RtpPacket


def _frames(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * 40 for i in range(n)]


def test_first_call_starts_and_sends_the_first_frame_with_marker() -> None:
    player = Player(_frames(3), pt=8, ssrc=0x1234, seq0=100, ts0=1000)
    assert player.next_deadline() is None
    (data,) = player.due(10.0)
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.ssrc, packet.sequence_number, packet.timestamp) == (
        8,
        0x1234,
        100,
        1000,
    )
    assert packet.marker
    assert packet.payload == _frames(1)[0]
    assert player.next_deadline() == pytest.approx(10.02)
    assert player.due(10.019) == []


def test_thousand_frames_without_drift_and_with_wrap() -> None:
    frames = _frames(1000)
    player = Player(frames, pt=0, ssrc=1, seq0=65500, ts0=2**32 - 800, start=5.0)
    now, jitter = 5.0, [0.0, 0.013, 0.004, 0.019, 0.001]
    packets: list[RtpPacket] = []
    i = 0
    while not player.done:
        deadline = player.next_deadline()
        assert deadline is not None
        assert deadline == pytest.approx(5.0 + len(packets) * 0.02, abs=1e-9)
        # The driver wakes up late by a varying amount; what it sends never drifts.
        now = deadline + jitter[i % len(jitter)]
        i += 1
        packets += [RtpPacket.parse(p) for p in player.due(now)]
    assert len(packets) == 1000
    assert player.next_deadline() is None
    assert [p.payload for p in packets] == frames
    assert [p.sequence_number for p in packets] == [(65500 + k) % 65536 for k in range(1000)]
    assert [p.timestamp for p in packets] == [(2**32 - 800 + 160 * k) % 2**32 for k in range(1000)]
    assert [p.marker for p in packets] == [True] + [False] * 999
    # The last frame went out on its own slot: 999 * 20 ms after the start.
    assert now - 5.0 < 999 * 0.02 + 0.02


def test_a_frame_is_due_at_its_deadline_not_before() -> None:
    """A driver may pass the deadline its timer was armed for (``RelayLeg._play_tick``).

    The deadline ``next_deadline`` gives and the one ``due`` compares are the same
    float, whatever rounding the start and the slot count bring.
    """
    player = Player(_frames(1000), pt=0, ssrc=1, seq0=0, ts0=0, start=12.3456789)
    for slot in range(1000):
        deadline = player.next_deadline()
        assert deadline is not None
        assert deadline == pytest.approx(12.3456789 + slot * 0.02, abs=1e-9)
        assert player.due(deadline - 1e-6) == []
        (data,) = player.due(deadline)
        assert RtpPacket.parse(data).sequence_number == slot
    assert player.done


def test_late_wake_up_catches_up_in_one_burst() -> None:
    player = Player(_frames(10), pt=0, ssrc=1, seq0=0, ts0=0, start=0.0)
    assert len(player.due(0.1)) == 6  # slots 0, 20, 40, 60, 80, 100 ms
    assert player.next_deadline() == pytest.approx(0.12)


def test_skip_to_end_and_to_a_frame() -> None:
    player = Player(_frames(50), pt=0, ssrc=1, seq0=0, ts0=0, start=0.0)
    player.due(0.04)  # 3 frames
    player.skip(to=45)  # the closing beep
    (data,) = player.due(0.06)
    packet = RtpPacket.parse(data)
    assert packet.payload == _frames(46)[45]
    assert packet.marker  # the content jumped: a new talkspurt
    assert packet.sequence_number == 3
    assert packet.timestamp == 3 * 160  # the media clock kept running
    player.skip()
    assert player.done
    assert player.due(10.0) == []
    assert player.next_deadline() is None
    assert (player.sent, player.sequence, player.timestamp) == (4, 4, 4 * 160)


def test_other_clock_rates_and_ptime() -> None:
    player = Player(_frames(3), pt=96, ssrc=1, seq0=0, ts0=0, clock_rate=16000, ptime=30, start=0.0)
    packets = [RtpPacket.parse(p) for p in player.due(0.06)]
    assert [p.timestamp for p in packets] == [0, 480, 960]
    with pytest.raises(ValueError, match="whole number of clock ticks"):
        Player([], pt=0, ssrc=1, seq0=0, ts0=0, clock_rate=11025, ptime=20)


def test_skip_outside_the_frames() -> None:
    with pytest.raises(ValueError, match=r"frame 4 is outside 0\.\.3"):
        Player(_frames(3), pt=0, ssrc=1, seq0=0, ts0=0).skip(to=4)
