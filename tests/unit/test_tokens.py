"""switch.tokens: one read of the CSPRNG for many tokens, each byte given once."""

from __future__ import annotations

import os

import pytest

from switch.tokens import RandomPool, token_bytes, token_hex


class Counting:
    """A source of distinct bytes (a counter), recording each read."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self._next = 0

    def __call__(self, n: int) -> bytes:
        self.reads.append(n)
        out = bytes((self._next + i) % 256 for i in range(n))
        self._next += n
        return out


def test_each_byte_of_the_source_is_handed_out_once_in_order() -> None:
    source = Counting()
    pool = RandomPool(64, source)
    got = b"".join(pool.bytes(10) for _ in range(6))  # 60 of the first 64 bytes
    assert got == bytes(range(60))
    assert source.reads == [64]


def test_a_request_that_does_not_fit_reads_a_fresh_block_and_skips_the_tail() -> None:
    source = Counting()
    pool = RandomPool(64, source)
    pool.bytes(60)
    assert pool.bytes(10) == bytes(range(64, 74))  # never the 4 bytes left over
    assert source.reads == [64, 64]


def test_a_request_larger_than_the_pool_reads_the_source_directly() -> None:
    source = Counting()
    pool = RandomPool(64, source)
    assert len(pool.bytes(100)) == 100
    assert source.reads == [100]


def test_forget_drops_what_is_buffered() -> None:
    source = Counting()
    pool = RandomPool(64, source)
    pool.bytes(8)
    pool.forget()
    assert pool.bytes(8) == bytes(range(64, 72))
    assert source.reads == [64, 64]


def test_hex_has_two_digits_per_byte() -> None:
    pool = RandomPool(64, Counting())
    assert pool.hex(3) == "000102"


def test_a_tiny_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        RandomPool(8)


def test_the_module_tokens_are_distinct_and_sized() -> None:
    tags = {token_hex(6) for _ in range(2000)}
    assert len(tags) == 2000
    assert all(len(t) == 12 for t in tags)
    assert len(token_bytes(30)) == 30


def test_a_forked_child_does_not_repeat_its_parents_tokens() -> None:
    token_hex(1)  # the parent has a buffer
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, token_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != token_hex(16)
