"""Random tokens for SIP (tags, branches, Call-IDs, call ids, SRTP key material).

``secrets.token_hex`` and ``os.urandom`` make one ``getrandom(2)`` system call
each, and one call through the switch takes about a dozen of them (tags and
Call-ID of the B leg, branches, the call's id, two sets of SRTP key material).
``RandomPool`` reads the kernel's CSPRNG 4 KiB at a time and hands each byte
out once, so the tokens are exactly as unpredictable (the same source, never
reused), for one system call every few hundred calls.

Long-lived secrets (the nonce and tag HMAC keys, the registrar's secret) keep
reading ``os.urandom`` directly: they are made once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["RandomPool", "token_bytes", "token_hex"]

POOL_SIZE = 4096


class RandomPool:
    """Bytes of ``source`` (``os.urandom``) read ``size`` at a time, each given once."""

    __slots__ = ("_buffer", "_position", "_size", "_source")

    def __init__(self, size: int = POOL_SIZE, source: Callable[[int], bytes] = os.urandom) -> None:
        if size < 64:
            raise ValueError("a pool of fewer than 64 bytes saves nothing")
        self._size = size
        self._source = source
        self._buffer = b""
        self._position = 0

    def bytes(self, n: int) -> bytes:
        """``n`` bytes never handed out before (a request above the pool's size reads
        the source directly)."""
        if n > self._size:
            return self._source(n)
        end = self._position + n
        if end > len(self._buffer):
            self._buffer = self._source(self._size)
            self._position, end = 0, n
        out = self._buffer[self._position : end]
        self._position = end
        return out

    def hex(self, n: int) -> str:
        """``2 * n`` hexadecimal digits from ``n`` fresh bytes (``secrets.token_hex``)."""
        return self.bytes(n).hex()

    def forget(self) -> None:
        """Drop what is buffered (a forked child must not repeat its parent's bytes)."""
        self._buffer = b""
        self._position = 0


_POOL = RandomPool()
os.register_at_fork(after_in_child=_POOL.forget)

token_bytes = _POOL.bytes
token_hex = _POOL.hex
