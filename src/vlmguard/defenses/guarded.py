"""``GuardedVLM``: a defence bound to a target, itself a ``VLM``."""

from __future__ import annotations

from collections.abc import Sequence

from vlmguard.backends.base import VLM, BaseVLM
from vlmguard.defenses.base import Defense, DefenseResult
from vlmguard.types import Completion, GenerateConfig, Message


class GuardedVLM(BaseVLM):
    """A model whose every call goes through ``defense`` to ``target``.

    ``generate`` returns the defended answer; where the defence rewrote the prompt, the
    completion's ``rewrite`` holds the rewrite and its risk report. ``run`` returns the full
    :class:`DefenseResult`. With :class:`~vlmguard.defenses.vlmguard_defense.VLMGuardDefense` this
    is the guarded model that :class:`~vlmguard.guard.Guard` holds: every call goes through the
    request pipeline (:mod:`vlmguard.pipeline`).
    """

    def __init__(self, defense: Defense, target: VLM) -> None:
        super().__init__(f"{defense.name}->{target.name}")
        self.defense = defense
        self.target = target

    async def run(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> DefenseResult:
        """The defended answer with everything the defence did (rewrite, messages sent, calls, timings)."""
        return await self.defense(messages, self.target, config)

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        return (await self.run(messages, config)).completion

    async def aclose(self) -> None:
        await self.target.aclose()
