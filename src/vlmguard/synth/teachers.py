"""Models used by synthesis: loading by spec, a per-call timeout, a call log, and a pool of endpoints.

``load_synth_model(spec)`` accepts every backend spec (``openai:MODEL@URL1,URL2``, ``hf:...``,
``smollm2:``, ``mock:...``) plus ``evidence`` (alias ``standin:evidence``), the offline stand-in
teacher of :mod:`vlmguard.synth.standin`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from vlmguard.backends.base import VLM, BaseVLM, WrapperVLM
from vlmguard.errors import BackendTimeout, ConfigError
from vlmguard.synth.call_context import CALL_CONTEXT
from vlmguard.types import Completion, GenerateConfig, Message

STANDIN_SPECS = ("evidence", "standin:evidence")


def load_synth_model(spec: str) -> VLM:
    """Build a model from a backend spec, or the offline stand-in teacher for ``evidence``."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty model spec")
    if spec in STANDIN_SPECS:
        from vlmguard.synth.standin import EvidenceTeacher

        return EvidenceTeacher()
    from vlmguard.backends.spec import load_backend

    return load_backend(spec)


class TimeoutVLM(WrapperVLM):
    """Raises :class:`BackendTimeout` (retryable) when ``inner`` takes longer than ``timeout_s``."""

    def __init__(self, inner: VLM, timeout_s: float) -> None:
        super().__init__(inner)
        if timeout_s <= 0:
            raise ConfigError("timeout must be > 0 seconds")
        self.timeout_s = timeout_s

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        try:
            return await asyncio.wait_for(self.inner.generate(messages, config), self.timeout_s)
        except asyncio.TimeoutError:
            raise BackendTimeout(f"{self.name} did not answer within {self.timeout_s:g}s") from None


class CallLogVLM(WrapperVLM):
    """Counts every call to ``inner`` and, with ``path``, appends one JSON line per call *before* it is made.

    Each line names the record, stage, attempt and role (from
    :data:`vlmguard.synth.call_context.CALL_CONTEXT`) and the process id, so a run's calls can be audited
    after a crash: which (record, stage) pairs were asked more than once, and by which process.
    """

    def __init__(self, inner: VLM, path: str | Path | None = None, *, role: str = "teacher") -> None:
        super().__init__(inner)
        self.path = Path(path) if path else None
        self.role = role
        self.calls = 0
        self._lock = threading.Lock()

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        self.calls += 1
        if self.path is not None:
            ctx = CALL_CONTEXT.get()
            line = (
                json.dumps(
                    {
                        "role": self.role,
                        "model": self.inner.name,
                        "pid": os.getpid(),
                        "at": round(time.time(), 4),
                        "record": ctx.record_id if ctx else None,
                        "stage": ctx.stage if ctx else None,
                        "attempt": ctx.attempt if ctx else None,
                    }
                )
                + "\n"
            )
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        return await self.inner.generate(messages, config)


class TeacherPool(BaseVLM):
    """Several teacher endpoints behind one ``VLM``: each call goes to the member with the fewest calls
    in flight (ties in turn), so replicas share the load and a slow one gets less of it.
    """

    def __init__(self, members: Sequence[VLM]) -> None:
        if not members:
            raise ConfigError("a teacher pool needs at least one model")
        super().__init__(
            "pool(" + ",".join(m.name for m in members) + ")" if len(members) > 1 else members[0].name
        )
        self.members = list(members)
        self.in_flight = [0] * len(self.members)
        self.served = [0] * len(self.members)
        self._turn = 0

    def _pick(self) -> int:
        n = len(self.members)
        order = [(self._turn + k) % n for k in range(n)]
        best = min(order, key=lambda i: self.in_flight[i])
        self._turn = (best + 1) % n
        return best

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        index = self._pick()
        self.in_flight[index] += 1
        self.served[index] += 1
        try:
            return await self.members[index].generate(messages, config)
        finally:
            self.in_flight[index] -= 1

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()


def build_model(
    specs: Sequence[str], *, timeout_s: float | None, retries: int, call_log: str | Path | None, role: str
) -> tuple[VLM, CallLogVLM]:
    """A model ready for synthesis: pool(call log(timeout(backend))) wrapped in retries.

    Returns the model and its call counter (which sees every attempt, retries included).
    """
    from vlmguard.backends.retry import RetryingVLM

    members: list[VLM] = []
    for spec in specs:
        backend = load_synth_model(spec)
        members.append(TimeoutVLM(backend, timeout_s) if timeout_s else backend)
    counter = CallLogVLM(TeacherPool(members), call_log, role=role)
    if retries:
        return RetryingVLM(counter, attempts=retries + 1, base_delay=0.5, max_delay=8.0), counter
    return counter, counter
