"""The micro-batcher: concurrent submissions run as one call, each caller gets its own results, one bad
input fails only its caller, the queue is bounded; the batching encoder is a drop-in text encoder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vlmguard.perception.batching import BatchingEncoder, MicroBatcher
from vlmguard.perception.risk_model import HeadMeta, RiskHead, RiskModel


class GatedDouble:
    """Doubles numbers; the first call waits for ``gate``, so later submissions queue up meanwhile."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        if not self.calls:
            self.calls.append(list(items))
            self.gate.wait(10)
        else:
            self.calls.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [2 * i for i in items]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def run_threads(fn: Callable[[int], Any], n: int) -> tuple[list[threading.Thread], dict[int, Any]]:
    out: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            out[i] = fn(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out


def test_waiting_submissions_run_as_one_batch_and_each_caller_gets_its_own_results() -> None:
    fn = GatedDouble()
    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_items=64, max_wait_s=0.0)
    first, first_out = run_threads(lambda i: batcher.submit([100, 101]), 1)
    wait_until(lambda: len(fn.calls) == 1)  # the first batch is running
    threads, out = run_threads(lambda i: batcher.submit([i, i + 10]), 8)
    wait_until(lambda: batcher._queue.qsize() == 8)
    fn.gate.set()
    for t in [*first, *threads]:
        t.join(10)
    batcher.close()
    assert first_out[0] == [200, 202]
    assert out == {i: [2 * i, 2 * (i + 10)] for i in range(8)}
    assert len(fn.calls) == 2 and len(fn.calls[1]) == 16  # eight callers, one call
    assert batcher.stats.batches == 2 and batcher.stats.submissions == 9 and batcher.stats.largest == 16


def test_batches_are_bounded_by_max_items_and_a_large_submission_runs_in_chunks() -> None:
    fn = GatedDouble()
    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_items=4, max_wait_s=0.0)
    first, _ = run_threads(lambda i: batcher.submit([0]), 1)
    wait_until(lambda: len(fn.calls) == 1)
    threads, out = run_threads(lambda i: batcher.submit([i]), 6)
    wait_until(lambda: batcher._queue.qsize() == 6)
    fn.gate.set()
    for t in [*first, *threads]:
        t.join(10)
    assert out == {i: [2 * i] for i in range(6)}
    assert [len(c) for c in fn.calls[1:]] == [4, 2]
    assert batcher.submit(list(range(9))) == [2 * i for i in range(9)]  # alone and over max_items
    assert [len(c) for c in fn.calls[-3:]] == [4, 4, 1]
    batcher.close()


def test_a_small_submission_runs_between_the_chunks_of_a_large_one() -> None:
    fn = GatedDouble()
    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_items=4, max_wait_s=0.0)
    large, large_out = run_threads(lambda i: batcher.submit(list(range(100, 112))), 1)
    wait_until(lambda: len(fn.calls) == 1)  # the large one's first chunk is running
    small, small_out = run_threads(lambda i: batcher.submit([7]), 1)
    wait_until(lambda: batcher._queue.qsize() == 1)
    fn.gate.set()
    for t in [*large, *small]:
        t.join(10)
    batcher.close()
    assert small_out[0] == [14] and large_out[0] == [2 * i for i in range(100, 112)]
    # the small submission ran right after the large one's first chunk, before its last
    assert fn.calls[0] == [100, 101, 102, 103] and 7 in fn.calls[1]
    assert any(111 in call for call in fn.calls[2:])


def test_a_failing_input_fails_only_its_own_caller() -> None:
    fn = GatedDouble()
    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_wait_s=0.0)
    first, _ = run_threads(lambda i: batcher.submit([1]), 1)
    wait_until(lambda: len(fn.calls) == 1)
    threads, out = run_threads(lambda i: batcher.submit([-1 if i == 2 else i]), 5)
    wait_until(lambda: batcher._queue.qsize() == 5)
    fn.gate.set()
    for t in [*first, *threads]:
        t.join(10)
    batcher.close()
    assert isinstance(out[2], ValueError)
    assert {i: out[i] for i in (0, 1, 3, 4)} == {i: [2 * i] for i in (0, 1, 3, 4)}


def test_the_queue_is_bounded_and_callers_wait_for_room() -> None:
    fn = GatedDouble()
    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_items=1, max_wait_s=0.0, max_queue=2)
    first, _ = run_threads(lambda i: batcher.submit([0]), 1)
    wait_until(lambda: len(fn.calls) == 1)
    threads, out = run_threads(lambda i: batcher.submit([i]), 4)
    wait_until(lambda: batcher._queue.full())
    assert batcher._queue.qsize() == 2 and len(out) == 0  # two queued, two callers wait for room
    fn.gate.set()
    for t in [*first, *threads]:
        t.join(10)
    assert out == {i: [2 * i] for i in range(4)}
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit([1])


class HashEncoder:
    """A deterministic fake text encoder that records the size of each call."""

    name = "minilm"
    dim = 8

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.gate = gate

    def encode(self, texts: Any) -> Any:
        self.calls.append(len(texts))
        if self.gate is not None and len(self.calls) == 1:
            self.gate.wait(10)
        rows = np.array([[(hash(t) >> s) % 97 + 1 for s in range(8)] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def tiny_head(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "language_basis": np.zeros((0, 8), np.float32),
        "mean": np.zeros(8, np.float32),
        "scale": np.ones(8, np.float32),
        "harm_w": rng.normal(size=8).astype(np.float32),
        "harm_b": np.zeros(1, np.float32),
        "cat_w": rng.normal(size=(8, 2)).astype(np.float32),
        "cat_b": np.zeros(2, np.float32),
    }
    RiskHead(HeadMeta(encoders=["minilm"], categories=["a", "b"], threshold=0.5), arrays).save(folder)
    return folder


def test_batching_encoder_is_a_drop_in_encoder_for_the_risk_model(tmp_path: Path) -> None:
    head = tiny_head(tmp_path / "head")
    plain = RiskModel(head, encoders={"minilm": HashEncoder()})
    gate = threading.Event()
    inner = HashEncoder(gate)
    batching = BatchingEncoder(inner, max_wait_s=0.0)
    batched = RiskModel(head, encoders={"minilm": batching})
    texts = [f"request number {i}" for i in range(12)]
    threads, out = run_threads(lambda i: batched.score(texts[i]), 12)
    wait_until(lambda: len(inner.calls) == 1 and inner.calls[0] + batching.batcher._queue.qsize() == 12)
    gate.set()
    for t in threads:
        t.join(10)
    batching.close()
    assert [out[i] for i in range(12)] == plain.score_many(texts)
    assert sum(inner.calls) == 12 and len(inner.calls) == 2  # twelve callers, two encoder calls
    assert batching.encode([]).shape == (0, 8)
