"""The encoders' shared base: lazy loading, copies of the model taken per chunk of texts."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from vlmguard.errors import ConfigError
from vlmguard.perception.encoders import LOCK_CHUNK, _LazyEncoder


class GatedEncoder(_LazyEncoder):
    """Vectors of ones; a chunk holding the text "gate" waits until released. Counts model loads."""

    name = "gated"
    dim = 4

    def __init__(self, replicas: int) -> None:
        super().__init__(replicas)
        self.release = threading.Event()
        self.chunks: list[list[str]] = []
        self.loads = 0
        self.takes = 0

    def _take(self) -> Any:
        self.takes += 1
        return super()._take()

    def _load(self) -> Any:
        self.loads += 1
        return object()

    def _vectors(self, model: Any, texts: list[str]) -> Any:
        self.chunks.append(list(texts))
        if "gate" in texts:
            self.release.wait(10)
        return np.ones((len(texts), self.dim), dtype=np.float32)


def _long_call_holding(encoder: GatedEncoder) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    texts = ["gate"] + [f"t{i}" for i in range(3 * LOCK_CHUNK)]
    thread = threading.Thread(target=lambda: out.setdefault("long", encoder.encode(texts)))
    thread.start()
    while not encoder.chunks:  # the long call is inside its first chunk
        threading.Event().wait(0.005)
    return thread, out


def test_a_short_call_runs_on_a_second_copy_while_a_long_one_holds_the_first() -> None:
    encoder = GatedEncoder(replicas=2)
    long_call, out = _long_call_holding(encoder)
    assert encoder.encode(["short"]).shape == (1, 4)  # does not wait for the gate
    assert encoder.loads == 2
    encoder.release.set()
    long_call.join(10)
    assert out["long"].shape == (1 + 3 * LOCK_CHUNK, 4)
    assert sum(len(c) for c in encoder.chunks) == 2 + 3 * LOCK_CHUNK


def test_with_one_copy_a_short_call_runs_between_the_chunks_of_a_long_one() -> None:
    encoder = GatedEncoder(replicas=1)
    long_call, _ = _long_call_holding(encoder)
    short: dict[str, Any] = {}
    short_call = threading.Thread(target=lambda: short.setdefault("v", encoder.encode(["short"])))
    short_call.start()
    while encoder.takes < 2:  # the short call is asking for the only copy
        threading.Event().wait(0.005)
    encoder.release.set()
    short_call.join(10)
    long_call.join(10)
    assert short["v"].shape == (1, 4) and encoder.loads == 1
    position = encoder.chunks.index(["short"])
    assert 1 <= position < len(encoder.chunks) - 1  # after the first chunk, before the last


def test_no_texts_still_loads_and_bad_settings_are_refused() -> None:
    encoder = GatedEncoder(replicas=1)
    assert encoder.encode([]).shape == (0, 4) and encoder.loads == 1
    with pytest.raises(ConfigError):
        GatedEncoder(replicas=0)
