"""Admission to analysis: bounded concurrency and bounded queues, so load is refused, not hoarded.

Requests are analysed in one of two lanes: ``image`` (any image in the request: image decoding,
OCR and the image models) and ``text`` (text only). Each lane analyses at most ``concurrency``
requests at once and lets at most ``max_waiting`` more wait for a slot; one more is answered at once
with 503 and a ``Retry-After`` estimated from recent analysis times. One key may hold at most
``max_pending_per_key`` requests in a lane (running or waiting); one more is answered 429, so a
single client cannot fill the queue for everyone. A request that waits longer than
``max_wait_s`` is answered 503 as well. Image-heavy requests thus cannot delay text requests
beyond the CPU they share, and the memory held by analyses is bounded by the lanes' sizes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from vlmguard.server.config import AdmissionConfig, LaneConfig
from vlmguard.server.errors import ProxyError


class AnalysisLane:
    """One lane: a semaphore of ``concurrency`` slots, a bounded wait, a per-key bound."""

    def __init__(self, name: str, config: LaneConfig, *, max_wait_s: float) -> None:
        self.name = name
        self.config = config
        self.max_wait_s = max_wait_s
        self._slots = asyncio.Semaphore(config.concurrency)
        self._pending: Counter[str] = Counter()
        self.running = 0
        self.waiting = 0
        self._mean_s = 1.0

    def retry_after(self) -> int:
        """Seconds after which a slot is likely free: the queue ahead times the mean analysis time."""
        ahead = self.waiting + self.running
        return max(1, math.ceil(self._mean_s * ahead / self.config.concurrency))

    def _refuse(self, status: int, message: str, code: str) -> ProxyError:
        wait = self.retry_after()
        return ProxyError(
            status, f"{message}; retry in {wait} s", code=code, headers={"Retry-After": str(wait)}
        )

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one analysis slot for the body of the ``async with``; 429 / 503 when it cannot be had."""
        limit = self.config.max_pending_per_key
        if limit is not None and self._pending[key] >= limit:
            raise self._refuse(
                429,
                f"this key already has {self._pending[key]} {self.name} requests being analysed or waiting",
                "too_many_pending_requests",
            )
        if self._slots.locked() and self.waiting >= self.config.max_waiting:
            raise self._refuse(
                503, f"the guard is busy analysing {self.name} requests", "analysis_queue_full"
            )
        self._pending[key] += 1
        try:
            self.waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=self.max_wait_s)
            except asyncio.TimeoutError:
                raise self._refuse(
                    503,
                    f"no {self.name} analysis slot was free within {self.max_wait_s:g} s",
                    "analysis_queue_timeout",
                ) from None
            finally:
                self.waiting -= 1
            self.running += 1
            start = time.perf_counter()
            try:
                yield
            finally:
                self.running -= 1
                self._slots.release()
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - start)
        finally:
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]


class Admission:
    """The two lanes of one proxy."""

    def __init__(self, config: AdmissionConfig) -> None:
        self.text = AnalysisLane("text", config.text, max_wait_s=config.max_wait_s)
        self.image = AnalysisLane("image", config.image, max_wait_s=config.max_wait_s)

    def lane(self, has_images: bool) -> AnalysisLane:
        """The lane of a request with or without images."""
        return self.image if has_images else self.text
