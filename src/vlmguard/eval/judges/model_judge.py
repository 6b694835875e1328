"""Shared machinery of judges that ask a model: template rendering, neutralised inputs, one call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from vlmguard.backends.base import VLM
from vlmguard.eval.judges.base import Judgement, Verdict
from vlmguard.prompts import PromptTemplate, load_prompt
from vlmguard.text import neutralize
from vlmguard.types import Completion, GenerateConfig, Message

JUDGE_CONFIG = GenerateConfig(max_tokens=512, temperature=0.0)
"""Judges decode greedily so verdicts are reproducible and cacheable."""


class ModelJudge:
    """Base of judges backed by a model. Subclasses set ``name``, ``template`` and ``markers``."""

    name = "model"
    template_name = ""
    markers: tuple[str, ...] = ()
    approximate = False

    def __init__(
        self, backend: VLM, *, config: GenerateConfig = JUDGE_CONFIG, version: int | None = None
    ) -> None:
        self.backend = backend
        self.config = config
        self.template: PromptTemplate = load_prompt(self.template_name, version)

    @property
    def model(self) -> str:
        return self.backend.name

    @property
    def prompt_version(self) -> str:
        return self.template.id

    def safe_text(self, text: str | None, default: str = "(none)") -> str:
        """Untrusted text with tags that could open or close a verdict section defanged."""
        if not text:
            return default
        return neutralize(
            text,
            (
                *self.markers,
                "request",
                "answer",
                "question",
                "prediction",
                "ground_truth",
                "safety_warning",
                "reference_answer",
            ),
        )

    async def ask(self, values: dict[str, str]) -> tuple[Completion, float]:
        """Render the template with ``values`` and call the backend; returns the completion and seconds."""
        system, user = self.template.render(**values)
        messages: Sequence[Message] = (
            [Message.system(system), Message.user(user)] if system else [Message.user(user)]
        )
        start = time.perf_counter()
        completion = await self.backend.generate(messages, self.config)
        return completion, time.perf_counter() - start

    def judgement(self, completion: Completion, latency: float, verdict: Verdict, **fields: Any) -> Judgement:
        """This judge's judgement from its reply ``completion`` (which model, prompt, reply, calls, time)."""
        return Judgement(
            judge=self.name,
            judge_model=self.model,
            prompt_version=self.prompt_version,
            raw=completion.text,
            calls=completion.calls,
            latency_s=latency,
            verdict=verdict,
            **fields,
        )

    async def aclose(self) -> None:
        await self.backend.aclose()
