"""Fakes for the evidence tests: a bag-of-words encoder, a scripted image perceiver and injection detector."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmguard.perception.image_evidence import ImageEvidence, VisualConcept
from vlmguard.perception.injection import InjectionResult, lexical_cues
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import ImageData

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "for",
        "is",
        "are",
        "i",
        "you",
        "my",
        "me",
        "how",
        "do",
        "can",
        "what",
        "this",
        "that",
        "with",
        "it",
    ]
)


class BagOfWordsEncoder:
    """A deterministic sentence encoder: hashed bag of content words, L2-normalised."""

    dim = 1024

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], **_: Any) -> Any:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in _STOP:
                    continue
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


class FakePerceiver:
    """Returns scripted evidence per image (by SHA-256): OCR text, concepts, nudity, or an error."""

    def __init__(self, script: dict[str, dict[str, Any]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[str] = []
        self.warmed = False

    def add(
        self,
        image: ImageData,
        *,
        text: str = "",
        concepts: Sequence[tuple[str, RiskCategory | None, float]] = (),
        nudity: float | None = None,
        error: Exception | None = None,
    ) -> None:
        self.script[image.sha256] = {"text": text, "concepts": concepts, "nudity": nudity, "error": error}

    def warmup(self) -> None:
        self.warmed = True

    def perceive(self, image: ImageData) -> ImageEvidence:
        self.calls.append(image.sha256)
        item = self.script.get(image.sha256, {})
        if item.get("error") is not None:
            raise item["error"]
        concepts = [
            VisualConcept(
                concept=name,
                category=cat,
                score=score,
                source="labels",
                evidence=f"ImageNet label '{name}' ({score:.2f})",
            )
            for name, cat, score in item.get("concepts", ())
        ]
        nudity = item.get("nudity")
        if nudity is not None and nudity >= 0.8:
            concepts.append(
                VisualConcept(
                    concept="nudity",
                    category=RiskCategory.SEXUAL_CONTENT,
                    score=nudity,
                    source="nudity",
                    evidence=f"open_nsfw score {nudity:.2f}",
                )
            )
        return ImageEvidence(
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            frames=image.frames,
            ocr_text=item.get("text", ""),
            concepts=concepts,
            nudity_score=nudity,
            timings_ms={"ocr": 1.0},
        )


class FakeInjection:
    """The lexical half of the real detector (no model); with ``classifier_fires`` a classifier that
    scores every text 0.999, as NanoGuard does on many plain requests."""

    def __init__(self, *, classifier_fires: bool = False) -> None:
        self.texts: list[str] = []
        self.classifier_fires = classifier_fires

    def load(self) -> None:
        return None

    def score(self, text: str) -> InjectionResult:
        self.texts.append(text)
        cues = lexical_cues(text)
        if self.classifier_fires:
            source = "nanoguard+lexical" if cues else "nanoguard"
            return InjectionResult(score=0.999, is_injection=True, source=source, cues=cues)
        return InjectionResult(
            score=0.95 if cues else 0.0,
            is_injection=bool(cues),
            source="lexical" if cues else "none",
            cues=cues,
        )
