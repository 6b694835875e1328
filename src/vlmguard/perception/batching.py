"""Micro-batching: concurrent calls into one model become one batched call.

A :class:`MicroBatcher` wraps a function over a list of items (``fn(items) -> results``, one result
per item). Callers in any thread submit their items and block; one worker thread takes the first
waiting submission, gathers those that arrive within ``max_wait_s`` (or until ``max_items``
items), runs ``fn`` once over all of them and hands each caller its own results. Under load the
model sees batches (one forward pass instead of many); a lone caller waits at most ``max_wait_s``
more than it would without batching. The queue of waiting submissions is bounded (``max_queue``):
a caller that finds it full waits for room, so memory stays bounded under any load.

If a batched call fails, each submission of the batch is run alone, so one bad input fails only
its own caller.

:class:`BatchingEncoder` applies this to a text encoder (:class:`~vlmguard.perception.encoders.TextEncoder`):
``RiskModel(folder, encoders={name: BatchingEncoder(build_encoder(name))})``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vlmguard.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Submission(Generic[T, R]):
    items: list[T]
    future: Future[list[R]] = field(default_factory=Future)


@dataclass
class BatchStats:
    """What a batcher has done: calls of the wrapped function, items and submissions through it."""

    batches: int = 0
    items: int = 0
    submissions: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        """Items per batched call."""
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` over the items of concurrent submissions at once, in one worker thread.

    ``fn`` gets a list of items and returns a sequence with one result per item, in order.
    ``max_items`` bounds a batch: a larger submission is sent in chunks of ``max_items``, one after
    the other, so the items of callers that arrive meanwhile run between its chunks (a request with
    one text never waits behind all the texts of a large one);
    ``max_wait_s`` is how long the worker waits for more submissions after the first one;
    ``max_queue`` bounds the waiting submissions. The worker thread starts on the first submission;
    :meth:`close` stops it.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_items: int = 32,
        max_wait_s: float = 0.002,
        max_queue: int = 1024,
        name: str = "batcher",
    ) -> None:
        if max_items < 1 or max_queue < 1 or max_wait_s < 0:
            raise ConfigError("a batcher needs max_items >= 1, max_queue >= 1 and max_wait_s >= 0")
        self.fn = fn
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.name = name
        self.stats = BatchStats()
        self._queue: queue.Queue[_Submission[T, R] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, items: Sequence[T]) -> list[R]:
        """``fn``'s results for ``items`` (blocks until the batch holding them has run)."""
        items = list(items)
        if not items:
            return []
        if threading.current_thread() is self._thread:  # fn calling its own batcher: run inline
            return list(self.fn(items))
        results: list[R] = []
        for start in range(0, len(items), self.max_items):
            submission: _Submission[T, R] = _Submission(items[start : start + self.max_items])
            self._start()
            self._queue.put(submission)
            results += submission.future.result()
        return results

    def submit_one(self, item: T) -> R:
        """``fn``'s result for one item."""
        return self.submit([item])[0]

    def close(self) -> None:
        """Stop the worker thread after the submissions already queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    # ------------------------------------------------------------------------------ worker

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError(f"batcher {self.name} is closed")
        if self._thread is not None:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError(f"batcher {self.name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"vlmguard-{self.name}", daemon=True)
                self._thread.start()

    def _gather(self, first: _Submission[T, R]) -> tuple[list[_Submission[T, R]], bool]:
        """``first`` and the submissions that join it; and whether the batcher was asked to stop."""
        batch = [first]
        size = len(first.items)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_items:
            try:
                remaining = deadline - time.monotonic()
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
            size += len(nxt.items)
        return batch, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._execute(batch)
            if stop:
                return

    def _execute(self, batch: list[_Submission[T, R]]) -> None:
        items = [item for sub in batch for item in sub.items]
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.submissions += len(batch)
        self.stats.largest = max(self.stats.largest, len(items))
        try:
            results = list(self.fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batcher {self.name}: {len(results)} results for {len(items)} items")
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            for sub in batch:  # one bad input must fail only its own caller
                try:
                    sub.future.set_result(list(self.fn(sub.items)))
                except BaseException as own:
                    sub.future.set_exception(own)
            return
        start = 0
        for sub in batch:
            sub.future.set_result(results[start : start + len(sub.items)])
            start += len(sub.items)


class BatchingEncoder:
    """A :class:`~vlmguard.perception.encoders.TextEncoder` whose concurrent ``encode`` calls are run
    as one batch by the wrapped encoder (same ``name``, ``dim`` and vectors)."""

    def __init__(
        self, inner: Any, *, max_items: int = 64, max_wait_s: float = 0.002, max_queue: int = 1024
    ) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.dim: int = inner.dim
        self.batcher: MicroBatcher[str, Any] = MicroBatcher(
            self._encode_rows,
            max_items=max_items,
            max_wait_s=max_wait_s,
            max_queue=max_queue,
            name=f"encoder-{inner.name}",
        )

    def _encode_rows(self, texts: list[str]) -> list[Any]:
        return list(self.inner.encode(texts))

    def encode(self, texts: Sequence[str]) -> Any:
        """An array of shape ``(len(texts), dim)``, as the wrapped encoder returns it."""
        import numpy as np

        rows = self.batcher.submit(list(texts))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([np.asarray(r, dtype=np.float32) for r in rows])

    def close(self) -> None:
        """Stop the batching thread."""
        self.batcher.close()


__all__ = ["BatchStats", "BatchingEncoder", "MicroBatcher"]
