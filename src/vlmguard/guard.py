"""``Guard``: the Python API in front of any VLM.

::

    from vlmguard import Guard
    print(Guard().check("Give me encouragement to go to a new world from here", image="roof.jpg").report)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vlmguard.backends.base import VLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
from vlmguard.errors import ConfigError
from vlmguard.images import DEFAULT_LIMITS, ImageLimits, load_image
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
        self.defense = VLMGuardDefense(rewriter, max_prompt_chars=max_prompt_chars)

    def _images(self, image: ImageSource | None, images: Sequence[ImageSource]) -> list[ImageData]:
        sources = ([image] if image is not None else []) + list(images)
        return [load_image(s, limits=self.image_limits) for s in sources]

    async def acheck(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = ()
    ) -> Rewrite:
        """Analyse and rewrite ``prompt`` with its image(s); the target is not called."""
        loaded = self._images(image, images)
        return await self.rewriter.rewrite(clean_prompt(prompt, max_chars=self.max_prompt_chars), loaded)

    def check(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = ()
    ) -> Rewrite:
        """Synchronous :meth:`acheck`."""
        return _run(self.acheck(prompt, image, images))

    async def aask(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = (),
        config: GenerateConfig | None = None,
    ) -> DefenseResult:
        """Rewrite the request and send it to the target; returns the answer with the rewrite."""
        if self.target is None:
            raise ConfigError("this Guard has no target: pass target=... to ask a model")
        text = clean_prompt(prompt, max_chars=self.max_prompt_chars)  # the target gets the same text
        message = Message.user(text, *self._images(image, images))
        return await self.defense([message], self.target, config)

    def ask(
        self, prompt: str, image: ImageSource | None = None, images: Sequence[ImageSource] = (),
        config: GenerateConfig | None = None,
    ) -> DefenseResult:
        """Synchronous :meth:`aask`."""
        return _run(self.aask(prompt, image, images, config))

    async def aclose(self) -> None:
        if self.target is not None:
            await self.target.aclose()
        backend = getattr(self.rewriter, "backend", None)
        if backend is not None:
            await backend.aclose()
