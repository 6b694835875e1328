"""The scorer protocols and helpers shared by every kind of scorer."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vlmguard.types import ImageData

UNPARSEABLE_SCORE = 1.0
"""What a model-based scorer returns when the judge's answer cannot be read (fail closed)."""


@runtime_checkable
class TextScorer(Protocol):
    """Harm probability of a text (an answer), in [0, 1]."""

    @property
    def name(self) -> str: ...

    @property
    def calls_per_score(self) -> int:
        """Model calls one :meth:`score` makes (0 for offline perception and fixed scorers)."""
        ...

    async def score(self, text: str, *, query: str = "") -> float: ...


@runtime_checkable
class ImageScorer(Protocol):
    """Probability that an image is unsafe or carries harmful content, in [0, 1]."""

    @property
    def name(self) -> str: ...

    @property
    def calls_per_score(self) -> int: ...

    async def score(self, image: ImageData, *, query: str = "") -> float: ...


@runtime_checkable
class RelevanceScorer(Protocol):
    """Relevance of a text to a request, in [0, 1]."""

    @property
    def name(self) -> str: ...

    async def score(self, query: str, text: str) -> float: ...


def clamp_probability(value: float) -> float:
    """``value`` clipped to [0, 1]; NaN counts as harmful (1.0)."""
    if math.isnan(value):
        return 1.0
    return min(1.0, max(0.0, float(value)))


async def max_image_score(scorer: ImageScorer, images: Sequence[ImageData], *, query: str = "") -> float:
    """The highest score over ``images`` (0 when there are none)."""
    if not images:
        return 0.0
    values = await asyncio.gather(*(scorer.score(image, query=query) for image in images))
    return clamp_probability(max(values))
