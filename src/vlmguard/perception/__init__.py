"""Offline evidence from images and text with small packaged models.

Image side: :class:`ImagePerceiver` (OCR, ImageNet labels mapped to risk concepts, nudity) returns
an :class:`ImageEvidence`; :func:`describe_image` turns it into words for text-only models;
:class:`InjectionDetector` scores prompts and image text for prompt injection.

Everything here is imported lazily: ``import vlmguard.perception`` loads no model and no heavy
library; each component loads its model on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "ImagePerceiver": "vlmguard.perception.image_evidence",
    "ImageEvidence": "vlmguard.perception.image_evidence",
    "OcrLine": "vlmguard.perception.image_evidence",
    "ImageLabel": "vlmguard.perception.image_evidence",
    "VisualConcept": "vlmguard.perception.image_evidence",
    "InjectionDetector": "vlmguard.perception.injection",
    "InjectionResult": "vlmguard.perception.injection",
    "describe_image": "vlmguard.perception.describe",
    "TextRiskTagger": "vlmguard.perception.text_risk",
    "TextRisk": "vlmguard.perception.text_risk_types",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
