"""Let a text-only model see images: each image part becomes a text description of its evidence.

``EvidenceAdapterVLM(inner, perceiver)`` is a ``VLM`` wrapper. Before calling ``inner`` it
replaces every image in the messages by a text part such as::

    [Image 1: a picture, 640x480; visible objects: revolver (0.62); notable: weapon (0.72);
     text in the image reads: "..."]

so any text-only LLM can act as rewriter, target or judge. Spec: ``evidence:<inner spec>``, e.g.
``evidence:openai:llama3@http://localhost:8080/v1``. Options prefixed ``evidence_`` are the
adapter's own (``evidence_ocr``, ``evidence_labels``, ``evidence_nudity``: ``0``/``1``); every
other option belongs to the inner spec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from vlmguard.backends.base import VLM, PrefillVLM, WrapperVLM
from vlmguard.errors import ConfigError
from vlmguard.types import Completion, GenerateConfig, ImageData, ImagePart, Message, TextPart

_OPTION_PREFIX = "evidence_"


def image_placeholder(index: int, description: str) -> str:
    """The text that stands for image number ``index`` (1-based)."""
    return f"[Image {index}: {description}]"


class EvidenceAdapterVLM(WrapperVLM):
    """A text-only view of ``inner``: images are replaced by descriptions of their evidence.

    ``perceiver`` is an :class:`~vlmguard.perception.image_evidence.ImagePerceiver` (a default one,
    with all components, is built when omitted). Images are numbered across the whole conversation.
    When ``inner`` can continue an assistant prefix (:class:`~vlmguard.backends.base.PrefillVLM`),
    the adapter can too.
    """

    def __new__(cls, inner: VLM, perceiver: Any = None, *, name: str | None = None) -> EvidenceAdapterVLM:
        if cls is EvidenceAdapterVLM and isinstance(inner, PrefillVLM):
            cls = PrefillEvidenceAdapterVLM
        return super().__new__(cls)

    def __init__(self, inner: VLM, perceiver: Any = None, *, name: str | None = None) -> None:
        super().__init__(inner, name or f"evidence:{inner.name}")
        if perceiver is None:
            from vlmguard.perception.image_evidence import ImagePerceiver

            perceiver = ImagePerceiver()
        self.perceiver = perceiver

    def describe(self, image: ImageData) -> str:
        """The description of one image (synchronous; runs the perceiver)."""
        from vlmguard.perception.describe import describe_image

        return describe_image(self.perceiver.perceive(image))

    async def to_text(self, messages: Sequence[Message]) -> list[Message]:
        """``messages`` with every image part replaced by a text part describing it."""
        images = [part.image for m in messages for part in m.content if isinstance(part, ImagePart)]
        if not images:
            return list(messages)
        descriptions: dict[str, str] = {}
        for image in images:
            if image.sha256 not in descriptions:
                descriptions[image.sha256] = await asyncio.to_thread(self.describe, image)
        out: list[Message] = []
        counter = 0
        for message in messages:
            parts: list[TextPart | ImagePart] = []
            for part in message.content:
                if isinstance(part, ImagePart):
                    counter += 1
                    parts.append(TextPart(text=image_placeholder(counter, descriptions[part.image.sha256])))
                else:
                    parts.append(part)
            out.append(Message(role=message.role, content=parts))
        return out

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        return await self.inner.generate(await self.to_text(messages), config)


class PrefillEvidenceAdapterVLM(EvidenceAdapterVLM):
    """:class:`EvidenceAdapterVLM` around a model that can continue an assistant prefix."""

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        inner = self.inner
        assert isinstance(inner, PrefillVLM)
        return await inner.generate_with_prefix(await self.to_text(messages), prefix, config)


def _flag(value: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"option {key}={value!r} must be 0 or 1")


def perceiver_options(options: dict[str, str]) -> dict[str, Any]:
    """Pop the ``evidence_*`` options from ``options`` and return ImagePerceiver keyword arguments."""
    kwargs: dict[str, Any] = {}
    known = {"ocr", "labels", "nudity"}
    for key in [k for k in options if k.startswith(_OPTION_PREFIX)]:
        name = key[len(_OPTION_PREFIX) :]
        value = options.pop(key)
        if name not in known:
            names = ", ".join(_OPTION_PREFIX + k for k in sorted(known))
            raise ConfigError(f"unknown evidence option {key!r} (known: {names})")
        kwargs[name] = _flag(value, key)
    return kwargs


def evidence_from_spec(target: str, options: dict[str, str]) -> EvidenceAdapterVLM:
    """Build from a spec ``evidence:<inner spec>``; the inner spec gets every non-``evidence_`` option."""
    from vlmguard.backends.spec import load_backend
    from vlmguard.perception.image_evidence import ImagePerceiver

    if not target.strip():
        raise ConfigError("evidence spec needs an inner model, e.g. 'evidence:mock:echo'")
    kwargs = perceiver_options(options)
    inner_spec = target + ("?" + urlencode(options) if options else "")
    inner = load_backend(inner_spec)
    return EvidenceAdapterVLM(inner, ImagePerceiver(**kwargs))
