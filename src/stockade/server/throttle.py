"""Failed-login throttling: a fixed-size sliding window per key (client IP, account).

Pure: the caller passes the time, so tests need no clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class FailureWindow:
    """Counts failures per key over the last ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys  # bounds memory under a spray of distinct keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def record(self, key: str, now: float) -> None:
        """Note one failure for ``key``."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._hits.popitem(last=False)
            hits = self._hits[key] = deque(maxlen=self.limit)
        self._hits.move_to_end(key)
        hits.append(now)

    def is_blocked(self, key: str, now: float) -> bool:
        """Whether ``key`` reached the limit within the window."""
        hits = self._hits.get(key)
        if hits is None:
            return False
        while hits and now - hits[0] > self.window_s:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return False
        return len(hits) >= self.limit
