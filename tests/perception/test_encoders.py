"""The encoders' shared base: lazy loading, and a lock that a long call releases between chunks."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vlmguard.perception.encoders import LOCK_CHUNK, _LazyEncoder


class CountingLock:
    """A lock that counts the threads waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0

    def __enter__(self) -> None:
        self.waiting += 1
        self._lock.acquire()
        self.waiting -= 1

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class GatedEncoder(_LazyEncoder):
    """Vectors of ones; a call holding the text "gate" waits until released."""

    name = "gated"
    dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.chunks: list[list[str]] = []
        self.counting = CountingLock()
        self._lock = self.counting  # type: ignore[assignment]

    def _load(self) -> Any:
        return object()

    def _vectors(self, texts: list[str]) -> Any:
        self.chunks.append(list(texts))
        if "gate" in texts:
            self.release.wait(10)
        return np.ones((len(texts), self.dim), dtype=np.float32)


def test_a_short_call_runs_between_the_chunks_of_a_long_one() -> None:
    encoder = GatedEncoder()
    long_texts = ["gate"] + [f"t{i}" for i in range(3 * LOCK_CHUNK)]
    out: dict[str, Any] = {}
    long_call = threading.Thread(target=lambda: out.setdefault("long", encoder.encode(long_texts)))
    long_call.start()
    while not encoder.chunks:  # the long call holds the lock on its first chunk
        threading.Event().wait(0.005)
    short_call = threading.Thread(target=lambda: out.setdefault("short", encoder.encode(["short"])))
    short_call.start()
    while encoder.counting.waiting < 1:  # the short call waits for the lock
        threading.Event().wait(0.005)
    encoder.release.set()
    short_call.join(10)
    long_call.join(10)
    assert out["short"].shape == (1, 4) and out["long"].shape == (len(long_texts), 4)
    position = encoder.chunks.index(["short"])
    assert 1 <= position < len(encoder.chunks) - 1  # after the first chunk, before the last
    assert sum(len(c) for c in encoder.chunks) == len(long_texts) + 1
    assert encoder.encode([]).shape == (0, 4)
