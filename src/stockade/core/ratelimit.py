"""A token bucket, sans-I/O (the caller passes the clock)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level = burst
        self._stamp = now

    def take(self, now: float, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if the bucket has them; False (nothing spent) if not."""
        elapsed = now - self._stamp
        if elapsed > 0:
            self._level = min(self.burst, self._level + elapsed * self.rate)
            self._stamp = now
        if self._level < tokens:
            return False
        self._level -= tokens
        return True
