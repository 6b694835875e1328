"""Pluggable scorers used by output-side and decoding-time defences (MLLM-Protector, ETA).

Three small protocols:

- :class:`TextScorer` — ``await score(text, query=...) -> float``: the probability, in [0, 1], that
  ``text`` (an answer) is harmful. ``query`` is the request it answers, for scorers that use it.
- :class:`ImageScorer` — ``await score(image, query=...) -> float``: the probability that an image
  is unsafe or carries harmful content (including harmful text written in it).
- :class:`RelevanceScorer` — ``await score(query, text) -> float``: how relevant ``text`` is to the
  request, in [0, 1] (ETA's helpfulness term).

Implementations: over the offline perception (the text risk tagger, the image perceiver; no model
calls, labelled approximate), over an LLM judge behind any backend spec (one model call per score),
fixed values and plain functions (tests, ablations). Each scorer says how many model calls one score
costs (``calls_per_score``), so defences can report their extra calls.

Scorer specs (used in defence specs such as ``mllm-protector?detector=...``):

- text: ``tagger`` (default), ``judge:<backend spec>``, ``fixed:<p>``
- image: ``perception`` (default), ``judge:<backend spec>``, ``fixed:<p>``
- relevance: ``lexical`` (default), ``embedding``, ``none``

One module per kind (``base``, ``fixed``, ``perception``, ``judge``, ``relevance``); specs are built
through the registries :data:`TEXT_SCORERS`, :data:`IMAGE_SCORERS` and :data:`RELEVANCE_SCORERS`.

A model-based scorer whose verdict does not parse scores ``1.0`` (harmful): a defence never takes an
unreadable verdict as safe.
"""

from __future__ import annotations

from typing import Any

from vlmguard.defenses.scorers.base import (
    UNPARSEABLE_SCORE,
    ImageScorer,
    RelevanceScorer,
    TextScorer,
    clamp_probability,
    max_image_score,
)
from vlmguard.defenses.scorers.fixed import FixedImageScorer, FixedTextScorer, FunctionTextScorer
from vlmguard.defenses.scorers.judge import (
    JUDGE_IMAGE_PROMPT,
    JUDGE_TEXT_PROMPT,
    JudgeImageScorer,
    JudgeTextScorer,
    parse_harm_score,
)
from vlmguard.defenses.scorers.perception import (
    PerceptionImageScorer,
    TaggerTextScorer,
    calibrated_probability,
    image_evidence_probability,
    shared_image_perceiver,
    shared_text_tagger,
    text_risk_probability,
)
from vlmguard.defenses.scorers.relevance import (
    EmbeddingRelevance,
    LexicalRelevance,
    NoRelevance,
)
from vlmguard.registry import Entry, Registry

_MODULE = "vlmguard.defenses.scorers"

TEXT_SCORERS: Registry[TextScorer] = Registry(
    "text scorer",
    (
        Entry("tagger", f"{_MODULE}.perception:tagger_from_spec", "offline text risk tagger (default)"),
        Entry("judge", f"{_MODULE}.judge:judge_text_from_spec", "an LLM judge: judge:<backend spec>"),
        Entry("fixed", f"{_MODULE}.fixed:fixed_text_from_spec", "a fixed probability: fixed:<0..1>"),
    ),
)
"""Text scorers by spec kind; each factory takes ``(spec, argument, backend_options)``."""

IMAGE_SCORERS: Registry[ImageScorer] = Registry(
    "image scorer",
    (
        Entry(
            "perception", f"{_MODULE}.perception:perception_from_spec", "offline image perceiver (default)"
        ),
        Entry("judge", f"{_MODULE}.judge:judge_image_from_spec", "an LLM judge: judge:<backend spec>"),
        Entry("fixed", f"{_MODULE}.fixed:fixed_image_from_spec", "a fixed probability: fixed:<0..1>"),
    ),
)
"""Image scorers by spec kind; each factory takes ``(spec, argument, backend_options)``."""

RELEVANCE_SCORERS: Registry[RelevanceScorer] = Registry(
    "relevance scorer",
    (
        Entry("lexical", f"{_MODULE}.relevance:LexicalRelevance", "content-word overlap (default)"),
        Entry("embedding", f"{_MODULE}.relevance:EmbeddingRelevance", "MiniLM sentence embeddings"),
        Entry("none", f"{_MODULE}.relevance:NoRelevance", "relevance switched off"),
    ),
)
"""Relevance scorers by name (no options)."""


def _split(spec: str) -> tuple[str, str | None]:
    kind, sep, rest = spec.strip().partition(":")
    return kind, (rest if sep else None)


def load_text_scorer(spec: str = "tagger", **backend_options: Any) -> TextScorer:
    """A text scorer from a spec: ``tagger``, ``judge:<backend spec>``, ``fixed:<p>``.

    ``backend_options`` (retries, concurrency, cache) go to the judge's backend.
    """
    kind, argument = _split(spec)
    return TEXT_SCORERS.create(kind, spec, argument, backend_options)


def load_image_scorer(spec: str = "perception", **backend_options: Any) -> ImageScorer:
    """An image scorer from a spec: ``perception``, ``judge:<backend spec>``, ``fixed:<p>``."""
    kind, argument = _split(spec)
    return IMAGE_SCORERS.create(kind, spec, argument, backend_options)


def load_relevance(spec: str = "lexical") -> RelevanceScorer:
    """A relevance scorer: ``lexical`` (default), ``embedding``, ``none``."""
    return RELEVANCE_SCORERS.create(spec.strip())


__all__ = [
    "IMAGE_SCORERS",
    "JUDGE_IMAGE_PROMPT",
    "JUDGE_TEXT_PROMPT",
    "RELEVANCE_SCORERS",
    "TEXT_SCORERS",
    "UNPARSEABLE_SCORE",
    "EmbeddingRelevance",
    "FixedImageScorer",
    "FixedTextScorer",
    "FunctionTextScorer",
    "ImageScorer",
    "JudgeImageScorer",
    "JudgeTextScorer",
    "LexicalRelevance",
    "NoRelevance",
    "PerceptionImageScorer",
    "RelevanceScorer",
    "TaggerTextScorer",
    "TextScorer",
    "calibrated_probability",
    "clamp_probability",
    "image_evidence_probability",
    "load_image_scorer",
    "load_relevance",
    "load_text_scorer",
    "max_image_score",
    "parse_harm_score",
    "shared_image_perceiver",
    "shared_text_tagger",
    "text_risk_probability",
]
