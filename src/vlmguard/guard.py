"""``Guard``: the Python API in front of any VLM.

::

    from vlmguard import Guard
    print(Guard().check("Give me encouragement to go to a new world from here", image="roof.jpg").report)

Every method judges through the request pipeline (:mod:`vlmguard.pipeline`), as the CLI, the proxy
and eval do: the same turn selection, cleaning, fail policy and plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vlmguard.backends.base import VLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.defenses.guarded import GuardedVLM
from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
from vlmguard.errors import ConfigError
from vlmguard.images import DEFAULT_LIMITS, ImageLimits, load_image
from vlmguard.pipeline import ConversationWindow, FailClosedAction, PipelineConfig, Plan, RequestPipeline
from vlmguard.rewriter.base import Rewriter
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS, clean_prompt
from vlmguard.types import FallbackPolicy, GenerateConfig, ImageData, Message, Rewrite

T = TypeVar("T")
ImageSource = ImageData | bytes | str | Path | Any


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        "called a synchronous Guard method inside an event loop; use the a-prefixed async method"
    )


class Guard:
    """A rewriter (and optionally a target) with image loading and input checks.

    ``rewriter`` and ``target`` are specs (``"evidence"``, ``"hf:./rewriter"``,
    ``"openai:Qwen/Qwen2-VL-7B-Instruct@http://localhost:8000/v1"``, ``"mock:echo"``) or objects.
    ``rewriter_config`` sets the generation settings of a model-based rewriter given as a spec.
    ``policy`` is the fail policy (when the rewriter raises, times out after
    ``rewriter_timeout_s`` or gives unusable output); ``window`` how much of a conversation is read
    before its last user turn (:class:`~vlmguard.pipeline.ConversationWindow`).
    """

    def __init__(
        self,
        rewriter: str | Rewriter = "evidence",
        target: str | VLM | None = None,
        *,
        policy: FallbackPolicy = "fail_closed",
        image_limits: ImageLimits = DEFAULT_LIMITS,
        max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
        rewriter_config: GenerateConfig | None = None,
        window: ConversationWindow | None = None,
        rewriter_timeout_s: float | None = None,
        fail_closed_action: FailClosedAction = "rewrite",
        refusal_message: str | None = None,
    ) -> None:
        if isinstance(rewriter, str):
            from vlmguard.rewriter.load import load_rewriter

            rewriter = load_rewriter(rewriter, policy=policy, config=rewriter_config)
        self.rewriter: Rewriter = rewriter
        if isinstance(target, str):
            from vlmguard.backends.spec import load_backend

            target = load_backend(target)
        self.target: VLM | None = target
        self.image_limits = image_limits
        self.max_prompt_chars = max_prompt_chars
        self.pipeline = RequestPipeline(
            rewriter,
            PipelineConfig(
                fail_policy=policy,
                fail_closed_action=fail_closed_action,
                refusal_message=refusal_message,
                rewriter_timeout_s=rewriter_timeout_s,
                max_prompt_chars=max_prompt_chars,
                window=window or ConversationWindow(),
            ),
        )
        self.model: GuardedVLM | None = (
            GuardedVLM(VLMGuardDefense(self.pipeline), target) if target is not None else None
        )
        """The guarded target (``None`` without a target): every call goes through the pipeline."""

    def _message(self, prompt: str, image: ImageSource | None, images: Sequence[ImageSource]) -> Message:
        """One user message: ``prompt`` cleaned (the target gets the cleaned text; a prompt method needs
        a prompt, so an empty one is an ``empty_prompt`` error) and the images loaded."""
        text = clean_prompt(prompt, max_chars=self.max_prompt_chars)
        sources = ([image] if image is not None else []) + list(images)
        return Message.user(text, *(load_image(s, limits=self.image_limits) for s in sources))

    async def acheck(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = ()
    ) -> Rewrite:
        """Analyse and rewrite ``prompt`` with its image(s); the target is not called."""
        return (await self.pipeline.run([self._message(prompt, image, images)])).rewrite

    def check(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = ()
    ) -> Rewrite:
        """Synchronous :meth:`acheck`."""
        return _run(self.acheck(prompt, image, images))

    async def acheck_messages(self, messages: Sequence[Message]) -> Plan:
        """Judge a conversation (its last user turn, with the window of turns before it); the target is
        not called. The plan holds the rewrite and what would be sent."""
        return await self.pipeline.run(messages)

    def check_messages(self, messages: Sequence[Message]) -> Plan:
        """Synchronous :meth:`acheck_messages`."""
        return _run(self.acheck_messages(messages))

    def _guarded(self) -> GuardedVLM:
        if self.model is None:
            raise ConfigError("this Guard has no target: pass target=... to ask a model")
        return self.model

    async def aask(
        self,
        prompt: str,
        image: ImageSource | None = None,
        images: Sequence[ImageSource] = (),
        config: GenerateConfig | None = None,
    ) -> DefenseResult:
        """Rewrite the request and send it to the target; returns the answer with the rewrite."""
        model = self._guarded()
        return await model.run([self._message(prompt, image, images)], config)

    def ask(
        self,
        prompt: str,
        image: ImageSource | None = None,
        images: Sequence[ImageSource] = (),
        config: GenerateConfig | None = None,
    ) -> DefenseResult:
        """Synchronous :meth:`aask`."""
        return _run(self.aask(prompt, image, images, config))

    async def aask_messages(
        self, messages: Sequence[Message], config: GenerateConfig | None = None
    ) -> DefenseResult:
        """Judge a conversation and send it (as planned) to the target."""
        return await self._guarded().run(messages, config)

    def ask_messages(
        self, messages: Sequence[Message], config: GenerateConfig | None = None
    ) -> DefenseResult:
        """Synchronous :meth:`aask_messages`."""
        return _run(self.aask_messages(messages, config))

    async def aclose(self) -> None:
        if self.target is not None:
            await self.target.aclose()
        backend = getattr(self.rewriter, "backend", None)
        if backend is not None:
            await backend.aclose()
