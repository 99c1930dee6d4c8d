"""The node's limiter: counts derived from holders, never negative, never leaked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from switch.limiter import Drift, Limiter


def test_the_fourth_call_is_refused_until_one_ends() -> None:
    limiter = Limiter()
    assert [limiter.acquire("n:0800100100", 3, f"c{i}") for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert limiter.count("n:0800100100") == 3
    assert limiter.release("c1") == ["n:0800100100"]
    assert limiter.acquire("n:0800100100", 3, "c3")
    assert limiter.count("n:0800100100") == 3


def test_one_owner_holds_one_slot_per_key() -> None:
    limiter = Limiter()
    assert limiter.acquire("k", 1, "c1")
    assert limiter.acquire("k", 1, "c1")  # the program's step after the number's own
    assert limiter.count("k") == 1
    assert limiter.acquire("pool", 2, "c1")
    assert limiter.release("c1") == ["k", "pool"]
    assert limiter.counts() == {}


def test_releasing_twice_or_unknown_owners_changes_nothing() -> None:
    limiter = Limiter()
    limiter.acquire("k", 2, "c1")
    limiter.release("c1")
    assert limiter.release("c1") == []
    assert limiter.release("never") == []
    assert limiter.count("k") == 0


def test_reconcile_frees_slots_of_calls_that_are_gone_and_reports_them() -> None:
    limiter = Limiter()
    limiter.acquire("k", 5, "live")
    limiter.acquire("k", 5, "lost")
    limiter.acquire("pool", 5, "lost")
    assert limiter.reconcile({"live"}) == [Drift("k", "lost"), Drift("pool", "lost")]
    assert limiter.counts() == {"k": 1}
    assert limiter.drift_total == 2
    assert limiter.reconcile({"live"}) == []


@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.sampled_from(["a", "b"])), max_size=60)
)
def test_counts_stay_within_zero_and_the_limit(ops: list[tuple[bool, int, str]]) -> None:
    limiter = Limiter()
    for take, owner, key in ops:
        if take:
            limiter.acquire(key, 3, f"c{owner}")
        else:
            limiter.release(f"c{owner}")
        for count in limiter.counts().values():
            assert 0 < count <= 3
    for owner in range(6):
        limiter.release(f"c{owner}")
    assert limiter.counts() == {}
