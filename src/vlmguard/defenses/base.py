"""The defence protocol: a defence gets the request and the target, and may call the target 0..n times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from vlmguard.backends.base import VLM
from vlmguard.registry import Entry, Registry
from vlmguard.types import Completion, GenerateConfig, Message, Rewrite


class DefenseResult(BaseModel):
    """What a defence did with one request."""

    completion: Completion
    """The answer returned to the user."""
    sent: list[Message] | None = None
    """The messages the target received last (``None`` when the target was not called)."""
    rewrite: Rewrite | None = None
    target_calls: int = 0
    extra_calls: int = 0
    """Model calls besides the target's (rewriter, detectors, judges)."""
    latency_s: float = 0.0
    overhead_s: float = 0.0
    """Time spent in the defence itself, outside target calls."""
    refused: bool = False
    """True when the defence answered by itself without (or instead of) the target's answer."""
    notes: list[str] = Field(default_factory=list)


@runtime_checkable
class Defense(Protocol):
    """A defence around a target model."""

    @property
    def name(self) -> str: ...

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult: ...


DEFENSES: Registry[Defense] = Registry(
    "defense",
    (
        Entry(
            "none",
            "vlmguard.defenses.catalog:make_none",
            "no defence: the request goes to the target unchanged",
        ),
        Entry(
            "vlmguard",
            "vlmguard.defenses.catalog:make_vlmguard",
            "VLMGuard: rewrite the prompt with a rewriter (evidence or a model)",
        ),
        Entry(
            "figstep",
            "vlmguard.defenses.catalog:make_figstep",
            "FigStep paper's defence prompt (system prompt)",
        ),
        Entry(
            "adashield",
            "vlmguard.defenses.catalog:make_adashield",
            "AdaShield-S static defence prompt (after the user's text)",
        ),
        Entry(
            "self-reminder",
            "vlmguard.defenses.catalog:make_self_reminder",
            "Self-Reminder system prompt + reminder suffix",
        ),
        Entry(
            "ecso",
            "vlmguard.defenses.catalog:make_ecso",
            "ECSO: self-check the answer; if unsafe answer from a query-aware caption",
        ),
        Entry(
            "mllm-protector",
            "vlmguard.defenses.catalog:make_mllm_protector",
            "MLLM-Protector: harm detector + detoxifier on the answer",
        ),
        Entry(
            "eta",
            "vlmguard.defenses.catalog:make_eta",
            "ETA: evaluate image and answer, then safety prefix + sentence best-of-N (needs an hf / "
            "prefill-capable target)",
        ),
    ),
)
"""The defences by name; the built-ins are built in :mod:`vlmguard.defenses.catalog`."""
