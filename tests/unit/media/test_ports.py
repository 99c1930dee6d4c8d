"""Relay port allocation: even ports, no double hand-out, exhaustion, leaks."""

from __future__ import annotations

import random

import pytest

from media.ports import PortAllocator, PortError, PortsExhausted


def test_sequential_even_ports_and_fifo_reuse() -> None:
    ports = PortAllocator(10001, 10008)  # pairs 10002/3, 10004/5, 10006/7
    assert ports.capacity == 3
    assert [ports.allocate() for _ in range(3)] == [10002, 10004, 10006]
    assert ports.in_use == 3
    ports.release(10004)
    ports.release(10002)
    assert [ports.allocate(), ports.allocate()] == [10004, 10002]


def test_exhaustion() -> None:
    ports = PortAllocator(20000, 20003)
    ports.allocate()
    ports.allocate()
    with pytest.raises(PortsExhausted) as info:
        ports.allocate()
    assert str(info.value) == "no free RTP port in 20000-20003"


@pytest.mark.parametrize(
    ("port", "message"),
    [
        pytest.param(20002, "port 20002 is not allocated", id="double-release"),
        pytest.param(20001, "port 20001 is not an RTP port of 20000-20009", id="odd"),
        pytest.param(30000, "port 30000 is not an RTP port of 20000-20009", id="outside"),
    ],
)
def test_release_errors(port: int, message: str) -> None:
    ports = PortAllocator(20000, 20009)
    ports.release(ports.allocate())
    ports.allocate()
    ports.allocate()
    ports.release(20002)
    with pytest.raises(PortError) as info:
        ports.release(port)
    assert str(info.value) == message


def test_random_allocation_is_seeded_and_never_repeats() -> None:
    def run(seed: int) -> list[int]:
        ports = PortAllocator(40000, 40999, rng=random.Random(seed))
        out = []
        for i in range(900):
            port = ports.allocate()
            assert port % 2 == 0
            assert 40000 <= port < 40999
            out.append(port)
            if i % 3:
                ports.release(port)
        return out

    assert run(7) == run(7)
    ports = PortAllocator(40000, 40099, rng=random.Random(1))
    taken = [ports.allocate() for _ in range(ports.capacity)]
    assert len(set(taken)) == ports.capacity == 50
    assert ports.available == 0


def test_leak_report_after_many_calls() -> None:
    ports = PortAllocator(30000, 30999)
    for _ in range(1000):
        a, b = ports.allocate(), ports.allocate()
        ports.release(b)
        ports.release(a)
    leaked = ports.allocate()
    assert ports.in_use == 1
    assert ports.allocated() == {leaked}


def test_retire_takes_a_port_out_of_circulation() -> None:
    ports = PortAllocator(30000, 30003)
    port = ports.allocate()
    ports.retire(port)
    assert ports.retired == {port}
    assert ports.in_use == 0
    assert ports.allocate() != port
    with pytest.raises(PortsExhausted):
        ports.allocate()
    with pytest.raises(PortError, match="is not allocated"):
        ports.retire(port)


@pytest.mark.parametrize(
    ("low", "high"), [(10001, 10002), (10000, 10000), (0, 100), (65534, 65536)]
)
def test_bad_ranges(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="holds no RTP/RTCP pair"):
        PortAllocator(low, high)


def test_parked_ports_are_neither_in_use_nor_free() -> None:
    ports = PortAllocator(30000, 30003)
    a, b = ports.allocate(), ports.allocate()
    ports.park(a)
    assert (ports.in_use, ports.parked, ports.available) == (1, 1, 0)
    with pytest.raises(PortError):
        ports.release(a)  # parked: only release_parked frees it
    ports.unpark(a)
    assert (ports.in_use, ports.parked) == (2, 0)
    ports.park(a)
    ports.release_parked(a)
    ports.release(b)
    assert (ports.in_use, ports.parked, ports.available) == (0, 0, 2)
    with pytest.raises(PortError):
        ports.unpark(a)


def test_start_rotates_the_sequential_queue_and_keeps_every_pair() -> None:
    """Two processes given one range start at different places, not in step."""
    ports = PortAllocator(20000, 20009, start=20005)  # pairs 20000 .. 20008
    order = [ports.allocate() for _ in range(ports.capacity)]
    assert order == [20006, 20008, 20000, 20002, 20004]
    with pytest.raises(PortsExhausted):
        ports.allocate()


def test_start_outside_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the port range"):
        PortAllocator(20000, 20009, start=30000)
