"""The token bucket behind the per-connection stanza rate limit."""

from __future__ import annotations

from stockade.core.ratelimit import TokenBucket


def test_starts_full_then_refuses_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.5)  # 0.5 s * 2/s = one token
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_a_refused_take_spends_nothing_and_time_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(10.2, tokens=1)
    assert not bucket.take(9.0)
    assert bucket.take(11.0)
