"""Counting and timing the model calls a defence makes for one request.

Every defence answers with a :class:`~vlmguard.defenses.base.DefenseResult` that says how many
times it called the target, how many other model calls it made (judges, detectors, detoxifiers)
and how much time it added. :class:`CallMeter` keeps those figures for one request so each
defence states them the same way.

Overhead is measured against an undefended system, which makes exactly one target call: the
duration of the *first* target call counts as the base; everything else the defence did (extra
target calls, scorers, other models, its own work) is overhead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from vlmguard.backends.base import VLM, PrefillVLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.types import Completion, GenerateConfig, Message, Rewrite


class CallMeter:
    """Makes and records the model calls of one defended request (not shared between requests)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.target_calls = 0
        self.extra_calls = 0
        self.model_calls = 0
        """Calls that really reached a model (cache hits count 0), summed over every call made."""
        self.base_s: float | None = None
        self.notes: list[str] = []

    def _record_target(self, completion: Completion, elapsed: float) -> None:
        self.target_calls += 1
        self.model_calls += completion.calls
        if self.base_s is None:
            self.base_s = elapsed

    async def target(
        self, target: VLM, messages: Sequence[Message], config: GenerateConfig | None
    ) -> Completion:
        """Call ``target.generate`` and record it as a target call."""
        t0 = time.perf_counter()
        completion = await target.generate(messages, config)
        self._record_target(completion, time.perf_counter() - t0)
        return completion

    async def target_prefix(
        self, target: PrefillVLM, messages: Sequence[Message], prefix: str, config: GenerateConfig | None
    ) -> Completion:
        """Call ``target.generate_with_prefix`` and record it as a target call."""
        t0 = time.perf_counter()
        completion = await target.generate_with_prefix(messages, prefix, config)
        self._record_target(completion, time.perf_counter() - t0)
        return completion

    async def extra(
        self, model: VLM, messages: Sequence[Message], config: GenerateConfig | None
    ) -> Completion:
        """Call a model other than the target (a detoxifier, a judge) and record it as an extra call."""
        completion = await model.generate(messages, config)
        self.extra_calls += 1
        self.model_calls += completion.calls
        return completion

    def add_extra(self, calls: int) -> None:
        """Record ``calls`` model calls made elsewhere (e.g. by a model-based scorer)."""
        self.extra_calls += calls
        self.model_calls += calls

    def note(self, text: str) -> None:
        """Add a line to the result's notes (what the defence decided and why)."""
        self.notes.append(text)

    def result(
        self,
        completion: Completion,
        *,
        text: str | None = None,
        sent: list[Message] | None = None,
        refused: bool = False,
        rewrite: Rewrite | None = None,
        finish_reason: str | None = None,
        calls: int | None = None,
    ) -> DefenseResult:
        """The defence's result; ``completion`` is the answer, optionally with its text replaced.

        The returned completion's ``latency_s`` is the whole defended request and ``calls`` the
        model calls made for it (or ``calls`` where given).
        """
        latency = time.perf_counter() - self.start
        calls = self.model_calls if calls is None else calls
        update: dict[str, object] = {"latency_s": latency, "calls": calls}
        if text is not None:
            update["text"] = text
        if finish_reason is not None:
            update["finish_reason"] = finish_reason
        if rewrite is not None:
            update["rewrite"] = rewrite
        overhead = latency - (self.base_s or 0.0)
        return DefenseResult(
            completion=completion.model_copy(update=update),
            sent=sent,
            rewrite=rewrite,
            target_calls=self.target_calls,
            extra_calls=self.extra_calls,
            latency_s=latency,
            overhead_s=max(0.0, overhead),
            refused=refused,
            notes=list(self.notes),
        )

    def refusal(self, text: str, *, model: str, rewrite: Rewrite | None = None) -> DefenseResult:
        """The defence answers itself with a refusal and the target is not called.

        The answer's ``calls`` is 0 (no model wrote it); the model calls made on the way (a
        rewriter's, a scorer's) stay in ``extra_calls``.
        """
        completion = Completion(text=text, model=model, finish_reason="refused")
        return self.result(completion, rewrite=rewrite, refused=True, calls=0)
