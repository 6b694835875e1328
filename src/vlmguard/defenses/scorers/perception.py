"""Scorers over the offline perception: the text risk tagger and the image perceiver (no model calls)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from vlmguard.defenses.scorers.base import clamp_probability
from vlmguard.errors import ConfigError
from vlmguard.refusal import is_refusal
from vlmguard.types import ImageData


def shared_text_tagger() -> Any:
    """One :class:`~vlmguard.perception.text_risk.TextRiskTagger` per process (its model loads once)."""
    try:
        from vlmguard.perception.text_risk import TextRiskTagger
    except ImportError as exc:
        raise ConfigError(f"the text risk tagger is not available ({exc}); choose another scorer") from exc
    return TextRiskTagger()


@lru_cache(maxsize=1)
def shared_image_perceiver() -> Any:
    """One :class:`~vlmguard.perception.image_evidence.ImagePerceiver` per process."""
    try:
        from vlmguard.perception.image_evidence import ImagePerceiver
    except ImportError as exc:
        raise ConfigError(f"the image perceiver is not available ({exc}); choose another scorer") from exc
    return ImagePerceiver()


def calibrated_probability(score: float, threshold: float) -> float:
    """Map a detector's raw score onto [0, 1] so that its own decision threshold lands on 0.5.

    Piecewise linear and monotone: ``[0, threshold]`` -> ``[0, 0.5]``, ``[threshold, 1]`` ->
    ``[0.5, 1]`` (scores outside [0, 1] are clipped). A threshold outside (0, 1) leaves the score as is.
    """
    if math.isnan(score):
        return 1.0
    if not 0.0 < threshold < 1.0:
        return clamp_probability(score)
    if score < threshold:
        return clamp_probability(0.5 * score / threshold)
    return clamp_probability(0.5 + 0.5 * (score - threshold) / (1.0 - threshold))


def text_risk_probability(risk: Any) -> float:
    """One harm probability from a text risk tagger result (:class:`~vlmguard.perception.text_risk.TextRisk`).

    The highest calibrated category score, mapped so the tagger's flag threshold is 0.5; a result
    with flagged categories scores at least 0.5 and one without scores below 0.5, so the tagger's
    own decision and ``probability >= 0.5`` agree.
    """
    scores = getattr(risk, "scores", None) or {}
    values = [float(v) for v in (scores.values() if isinstance(scores, dict) else scores)]
    top = max(values, default=0.0)
    threshold = float(getattr(risk, "flag_threshold", 0.0) or 0.0)
    value = calibrated_probability(top, threshold)
    if getattr(risk, "flagged", None):
        return max(0.5, value)
    return min(value, 0.49)


REFUSAL_WINDOW = 240
"""Characters at the start of an answer searched for a refusal phrase (the refusal discount)."""


_TAGGER_LOCK = threading.Lock()
"""Serialises tagger calls from all scorers: the shared tagger's tokenizer is not safe to use from
several threads at once."""


class TaggerTextScorer:
    """Harm of an answer from the offline text risk tagger (no model calls; approximate).

    The tagger was built to spot harmful *requests*; on answers it reacts to harmful topics and
    instructions. A refusal that names the harm ("I can't help you build a bomb") would look risky,
    so with ``refusal_aware`` an answer that opens with a refusal phrase
    (:func:`vlmguard.refusal.is_refusal`) has its score scaled by ``refusal_factor``.
    """

    calls_per_score = 0

    def __init__(
        self, tagger: Any = None, *, refusal_aware: bool = True, refusal_factor: float = 0.3
    ) -> None:
        self._tagger = tagger
        self.refusal_aware = refusal_aware
        self.refusal_factor = refusal_factor

    @property
    def name(self) -> str:
        return "tagger"

    @property
    def tagger(self) -> Any:
        if self._tagger is None:
            self._tagger = shared_text_tagger()
        return self._tagger

    def _finish(self, text: str, risk: Any) -> float:
        value = text_risk_probability(risk)
        if self.refusal_aware and is_refusal(text, window=REFUSAL_WINDOW):
            value *= self.refusal_factor
        return clamp_probability(value)

    def score_many_sync(self, texts: Sequence[str]) -> list[float]:
        """Scores of several texts with one batched tagger pass, computed in the calling thread."""
        todo = [i for i, t in enumerate(texts) if t.strip()]
        values = [0.0] * len(texts)
        if not todo:
            return values
        tagger = self.tagger
        with _TAGGER_LOCK:
            risks = tagger.tag_many([texts[i] for i in todo])
        for i, risk in zip(todo, risks, strict=True):
            values[i] = self._finish(texts[i], risk)
        return values

    def score_sync(self, text: str) -> float:
        """The score, computed in the calling thread."""
        return self.score_many_sync([text])[0]

    async def score(self, text: str, *, query: str = "") -> float:
        return await asyncio.to_thread(self.score_sync, text)

    async def score_many(self, texts: Sequence[str], *, query: str = "") -> list[float]:
        """Scores of several texts at once (used by ETA's best-of-N)."""
        return await asyncio.to_thread(self.score_many_sync, list(texts))


def image_evidence_probability(
    evidence: Any, text_scorer: TaggerTextScorer | None = None, *, nudity_threshold: float = 0.8
) -> float:
    """One probability from image evidence (:class:`~vlmguard.perception.image_evidence.ImageEvidence`).

    The highest of: each risky concept the perceiver reported (reported concepts already passed
    their calibrated thresholds, so one maps to ``0.5 + 0.5 * score``; neutral context concepts
    with no category count 0); the nudity score, mapped so ``nudity_threshold`` is 0.5; and the
    harm of the text written in the image (typographic attacks) by ``text_scorer``.
    """
    values = [0.0]
    for concept in getattr(evidence, "concepts", None) or []:
        if getattr(concept, "category", None) is not None:
            values.append(0.5 + 0.5 * clamp_probability(float(getattr(concept, "score", 0.0))))
    nudity = getattr(evidence, "nudity_score", None)
    if nudity is not None:
        values.append(calibrated_probability(float(nudity), nudity_threshold))
    ocr_text = (getattr(evidence, "ocr_text", "") or "").strip()
    if ocr_text and text_scorer is not None:
        values.append(text_scorer.score_sync(ocr_text))
    return clamp_probability(max(values))


class PerceptionImageScorer:
    """Image risk from the offline image perceiver (concepts, nudity, harmful text in the image).

    No model calls; approximate. ``text_scorer`` scores the image's OCR text (default: the tagger,
    without the refusal discount).
    """

    calls_per_score = 0

    def __init__(
        self, perceiver: Any = None, *, text_scorer: TaggerTextScorer | None = None, ocr_text: bool = True
    ) -> None:
        self._perceiver = perceiver
        self.ocr_text = ocr_text
        self._text_scorer = text_scorer

    @property
    def name(self) -> str:
        return "perception"

    @property
    def perceiver(self) -> Any:
        if self._perceiver is None:
            self._perceiver = shared_image_perceiver()
        return self._perceiver

    def score_sync(self, image: ImageData) -> float:
        evidence = self.perceiver.perceive(image)
        text_scorer = None
        if self.ocr_text:
            text_scorer = self._text_scorer or TaggerTextScorer(refusal_aware=False)
        threshold = 0.5
        if getattr(evidence, "nudity_score", None) is not None:
            threshold = self._nudity_threshold()
        return image_evidence_probability(evidence, text_scorer, nudity_threshold=threshold)

    def _nudity_threshold(self) -> float:
        """The perceiver's nudity threshold: its override, else its nudity scorer's own (0.5 if unknown)."""
        perceiver = self.perceiver
        value = getattr(perceiver, "nudity_threshold", None)
        if value is None:
            value = getattr(getattr(perceiver, "nudity_scorer", None), "threshold", None)
        try:
            return float(value) if value is not None else 0.5
        except (TypeError, ValueError):
            return 0.5

    async def score(self, image: ImageData, *, query: str = "") -> float:
        return await asyncio.to_thread(self.score_sync, image)


def _no_argument(spec: str, argument: str | None) -> None:
    if argument is not None:
        raise ConfigError(f"scorer {spec!r} takes no argument after ':'")


def tagger_from_spec(spec: str, argument: str | None, backend_options: dict[str, Any]) -> TaggerTextScorer:
    """``tagger``: :class:`TaggerTextScorer`."""
    _no_argument(spec, argument)
    return TaggerTextScorer()


def perception_from_spec(
    spec: str, argument: str | None, backend_options: dict[str, Any]
) -> PerceptionImageScorer:
    """``perception``: :class:`PerceptionImageScorer`."""
    _no_argument(spec, argument)
    return PerceptionImageScorer()
