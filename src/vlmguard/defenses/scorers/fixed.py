"""Scorers with fixed values or plain functions (tests, ablations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vlmguard.defenses.scorers.base import clamp_probability
from vlmguard.errors import ConfigError
from vlmguard.types import ImageData


class _Fixed:
    """Scores everything ``value``; no model calls."""

    calls_per_score = 0

    def __init__(self, value: float) -> None:
        self.value = clamp_probability(value)

    @property
    def name(self) -> str:
        return f"fixed:{self.value:g}"


class FixedTextScorer(_Fixed):
    """Scores every text ``value`` (tests, ablations: ``fixed:0.9``)."""

    async def score(self, text: str, *, query: str = "") -> float:
        return self.value


class FixedImageScorer(_Fixed):
    """Scores every image ``value``."""

    async def score(self, image: ImageData, *, query: str = "") -> float:
        return self.value


class FunctionTextScorer:
    """A text scorer from a plain function ``fn(text) -> float`` (tests, custom rules)."""

    def __init__(
        self, fn: Callable[[str], float], *, name: str = "function", calls_per_score: int = 0
    ) -> None:
        self.fn = fn
        self._name = name
        self.calls_per_score = calls_per_score

    @property
    def name(self) -> str:
        return self._name

    async def score(self, text: str, *, query: str = "") -> float:
        return clamp_probability(self.fn(text))


def fixed_value(spec: str, value: str | None) -> float:
    """The probability written after ``fixed:``; :class:`ConfigError` unless it is in [0, 1]."""
    if value is None:
        raise ConfigError(f"scorer {spec!r}: give the value, e.g. 'fixed:0.5'")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"scorer {spec!r}: {value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"scorer {spec!r}: the value must be between 0 and 1")
    return number


def fixed_text_from_spec(spec: str, argument: str | None, backend_options: dict[str, Any]) -> FixedTextScorer:
    """``fixed:<p>``: :class:`FixedTextScorer`."""
    return FixedTextScorer(fixed_value(spec, argument))


def fixed_image_from_spec(
    spec: str, argument: str | None, backend_options: dict[str, Any]
) -> FixedImageScorer:
    """``fixed:<p>``: :class:`FixedImageScorer`."""
    return FixedImageScorer(fixed_value(spec, argument))
