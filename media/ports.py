"""Relay port allocation: even RTP ports, RTCP on the odd port above.

RFC 3550 §11: "For UDP and similar protocols, RTP SHOULD use an even destination
port number and the corresponding RTCP stream SHOULD use the next higher (odd)
destination port number." An allocation therefore reserves the pair
``(port, port + 1)``; only the even port is handed out and given back.

Pure: no sockets. Whether the OS lets the relay bind a port is the relay's
business; ``retire`` takes a port out of circulation when it cannot.

Parked ports: the relay keeps the sockets of a finished call's port pairs open
for the next calls (binding and closing four sockets per call is most of a
relay session's cost). ``park`` takes an allocated port out of ``in_use``
without freeing it (its sockets are still bound); ``unpark`` hands it out
again, ``release_parked`` frees it for good.

Reuse order: with the default sequential cursor a released port goes to the
back of the queue (first in, first out), so a port is reused as late as
possible and stray packets of a finished call rarely reach the next one. With an
injected ``random.Random`` a free port is drawn at random (swap-remove, O(1)).
``start`` rotates the sequential queue so that it begins at the first pair at or
above that port: ``aiguilleur run`` starts each process at a random place in its
range, so two switches (or a switch and a test's) given the same range on one host
do not walk it in step and collide on every port.
"""

from __future__ import annotations

import random
from collections import deque

__all__ = ["PortAllocator", "PortError", "PortsExhausted"]


class PortError(ValueError):
    """A port was released that is not allocated, or is not one of ours."""


class PortsExhausted(PortError):
    """Every RTP/RTCP pair of the range is in use."""


class PortAllocator:
    """Even RTP ports from ``low..high`` (inclusive; both RTP and RTCP fit)."""

    def __init__(
        self,
        low: int,
        high: int,
        *,
        rng: random.Random | None = None,
        start: int | None = None,
    ) -> None:
        first = low + (low % 2)
        if not 1 <= low <= high <= 65535 or first + 1 > high:
            raise ValueError(f"port range {low}-{high} holds no RTP/RTCP pair")
        self.low = low
        self.high = high
        self._rng = rng
        ports = range(first, high, 2)  # port + 1 <= high
        self._free: deque[int] | list[int] = list(ports) if rng is not None else deque(ports)
        if start is not None and isinstance(self._free, deque):
            if not low <= start <= high:
                raise ValueError(f"start {start} is outside the port range {low}-{high}")
            # Pairs below ``start`` go to the back of the queue.
            self._free.rotate(-len(range(first, start, 2)))
        self._used: set[int] = set()
        self._parked: set[int] = set()
        self._retired: set[int] = set()
        self.capacity = len(ports)

    @property
    def in_use(self) -> int:
        """How many pairs are allocated now (a leak shows as a count that never returns to 0)."""
        return len(self._used)

    @property
    def parked(self) -> int:
        """How many pairs are parked (bound by the relay, in no session)."""
        return len(self._parked)

    @property
    def available(self) -> int:
        return len(self._free)

    def allocated(self) -> frozenset[int]:
        """The RTP ports currently handed out (a snapshot, for leak reports)."""
        return frozenset(self._used)

    def allocate(self) -> int:
        """An even RTP port; its RTCP port is ``port + 1``."""
        free = self._free
        if not free:
            raise PortsExhausted(f"no free RTP port in {self.low}-{self.high}")
        if isinstance(free, deque):
            port = free.popleft()
        else:
            assert self._rng is not None
            index = self._rng.randrange(len(free))
            free[index], free[-1] = free[-1], free[index]
            port = free.pop()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back. Releasing a port twice is an error (a bookkeeping bug)."""
        if port not in self._used:
            self._check_ours(port)
            raise PortError(f"port {port} is not allocated")
        self._used.remove(port)
        self._free.append(port)

    def park(self, port: int) -> None:
        """An allocated port whose sockets the relay keeps for a later session."""
        if port not in self._used:
            self._check_ours(port)
            raise PortError(f"port {port} is not allocated")
        self._used.remove(port)
        self._parked.add(port)

    def unpark(self, port: int) -> None:
        """A parked port handed out again (allocated, as ``allocate`` would)."""
        if port not in self._parked:
            raise PortError(f"port {port} is not parked")
        self._parked.remove(port)
        self._used.add(port)

    def release_parked(self, port: int) -> None:
        """A parked port whose sockets are closed: free again."""
        if port not in self._parked:
            raise PortError(f"port {port} is not parked")
        self._parked.remove(port)
        self._free.append(port)

    def retire(self, port: int) -> None:
        """Take an allocated port out of circulation for good (the OS would not bind it)."""
        if port not in self._used:
            self._check_ours(port)
            raise PortError(f"port {port} is not allocated")
        self._used.remove(port)
        self._retired.add(port)

    @property
    def retired(self) -> frozenset[int]:
        return frozenset(self._retired)

    def _check_ours(self, port: int) -> None:
        if port % 2 or not self.low <= port < self.high:
            raise PortError(f"port {port} is not an RTP port of {self.low}-{self.high}")
