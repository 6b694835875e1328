"""Per-key token buckets in the process (one set per worker), and the protocol every limiter follows."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from vlmguard.server.config import RateLimitConfig


class Limiter(Protocol):
    """Takes a token for a key: 0.0 when allowed, else the seconds until one is available.

    ``acquire`` may be synchronous (:class:`RateLimiter`) or return an awaitable
    (:class:`~vlmguard.server.redis_ratelimit.RedisRateLimiter`).
    """

    def acquire(self, key: str) -> float | Awaitable[float]: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One token bucket per key: ``burst`` tokens, refilled at ``requests_per_minute / 60`` per second.

    ``limits`` maps a key to its own limit; others use ``default`` (``None``: unlimited). At most
    ``max_keys`` buckets are kept (least recently used dropped), so per-address limiting cannot
    grow memory without bound.
    """

    def __init__(
        self,
        default: RateLimitConfig | None,
        limits: dict[str, RateLimitConfig] | None = None,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.limits = dict(limits or {})
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is available."""
        limit = self.limits.get(key, self.default)
        if limit is None:
            return 0.0
        now = self.clock()
        rate = limit.requests_per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(limit.burst), updated=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate
