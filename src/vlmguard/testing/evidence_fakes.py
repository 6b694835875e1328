"""Fakes of the evidence rewriter's components for tests: a keyword risk model, a scripted image perceiver
and the lexical half of the injection detector (no model loads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlmguard.perception.image_evidence import ImageEvidence, VisualConcept
from vlmguard.perception.injection import InjectionResult, lexical_cues
from vlmguard.perception.risk_model import RiskScore
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import ImageData


class FakeRiskModel:
    """Flags a text when it contains one of ``words`` (word -> category); records what it scored."""

    def __init__(self, words: dict[str, str] | None = None, *, threshold: float = 0.5) -> None:
        self.words = words or {
            "poison": "violence_weapons",
            "bomb": "violence_weapons",
            "anthrax": "violence_weapons",
            "steal": "illegal_activity",
            "meth": "drugs",
            "hide this from the police": "illegal_activity",
            "stalk": "privacy",
        }
        self.threshold = threshold
        self.calls: list[list[str]] = []
        self.warmed = False

    @property
    def categories(self) -> list[str]:
        return sorted(set(self.words.values()))

    def warmup(self) -> None:
        self.warmed = True

    def score_many(self, texts: Sequence[str]) -> list[RiskScore]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            hits = [c for w, c in self.words.items() if w in text.lower()]
            p = 0.9 if hits else 0.05
            cats = {c: 0.9 if c in hits else 0.05 for c in self.categories}
            ranked = dict(sorted(cats.items(), key=lambda kv: -kv[1]))
            out.append(RiskScore(p_harmful=p, flagged=p >= self.threshold, categories=ranked, window=text))
        return out

    def score(self, text: str) -> RiskScore:
        return self.score_many([text])[0]


class FakePerceiver:
    """Returns scripted evidence per image (by SHA-256): OCR text, concepts, nudity, or an error."""

    def __init__(self, script: dict[str, dict[str, Any]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[str] = []
        self.budgets: list[int | None] = []
        self.warmed = False

    def add(
        self,
        image: ImageData,
        *,
        text: str = "",
        concepts: Sequence[tuple[str, RiskCategory | None, float]] = (),
        nudity: float | None = None,
        error: Exception | None = None,
        unread: int = 0,
    ) -> None:
        self.script[image.sha256] = {
            "text": text,
            "concepts": concepts,
            "nudity": nudity,
            "error": error,
            "unread": unread,
        }

    def warmup(self) -> None:
        self.warmed = True

    def perceive(self, image: ImageData, *, ocr_budget: int | None = None) -> ImageEvidence:
        self.calls.append(image.sha256)
        self.budgets.append(ocr_budget)
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
            ocr_unread=item.get("unread", 0),
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
