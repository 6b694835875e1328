"""Evidence from one image: OCR text, ImageNet labels, risk concepts and a nudity score.

:class:`ImagePerceiver` runs the components (each loaded lazily, on first use) and returns an
:class:`ImageEvidence`. Results are cached by the image's SHA-256 (LRU), so the same image seen
by the guard and by an evidence-adapted target is perceived once. ``perceive`` is synchronous
and thread-safe; call it through ``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError, ImageError
from vlmguard.perception.ocr import OCR_BUDGET
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import ImageData

Box = tuple[float, float, float, float]
WORK_MAX_SIDE = 1600
"""Larger images are downscaled to this longer side once, before any component sees them."""


class OcrLine(BaseModel):
    """One line of text read in an image."""

    model_config = ConfigDict(frozen=True)
    text: str
    score: float
    """Mean recognition confidence of the line's words (0..1)."""
    box: Box
    """``x0, y0, x1, y1`` normalised to 0..1 of the image's width and height."""


class OcrReading(BaseModel):
    """What OCR read in one image: its lines in reading order, and how many text boxes it found but
    left unread because the image's recognition budget was spent (see
    :class:`~vlmguard.perception.ocr.OcrEngine`)."""

    model_config = ConfigDict(frozen=True)
    lines: list[OcrLine] = Field(default_factory=list)
    unread: int = 0


class ImageLabel(BaseModel):
    """An ImageNet-1k class and its probability."""

    model_config = ConfigDict(frozen=True)
    name: str
    score: float


class VisualConcept(BaseModel):
    """A risk-relevant concept seen in the image (``weapon``, ``syringe``, ``height``, ``nudity``...)."""

    model_config = ConfigDict(frozen=True)
    concept: str
    category: RiskCategory | None
    """The taxonomy category it points to; ``None`` for neutral context (``child``, ``vehicle``)."""
    score: float
    source: str
    """Which component saw it: ``labels``, ``nudity`` or ``ocr``."""
    evidence: str
    """In words, e.g. ``ImageNet label 'revolver' (0.62)``."""


class ImageEvidence(BaseModel):
    """Everything the perceiver found in one image."""

    sha256: str
    width: int
    height: int
    frames: int = 1
    ocr_text: str = ""
    """The text read in the image, lines in reading order joined by newlines."""
    ocr_lines: list[OcrLine] = Field(default_factory=list)
    ocr_unread: int = 0
    """Text boxes found but not read: the image holds more text than its OCR budget (see
    :class:`~vlmguard.perception.ocr.OcrEngine`); the guard treats such an image with caution."""
    labels: list[ImageLabel] = Field(default_factory=list)
    """Top-k ImageNet classes (empty when labels are off)."""
    concepts: list[VisualConcept] = Field(default_factory=list)
    nudity_score: float | None = None
    """0..1, ``None`` when the nudity scorer is off."""
    timings_ms: dict[str, float] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)
    """Components that failed on this image (name -> message); the others still ran."""

    @property
    def has_text(self) -> bool:
        return bool(self.ocr_text.strip())

    def concept(self, name: str) -> VisualConcept | None:
        """The concept called ``name``, if it was seen."""
        return next((c for c in self.concepts if c.concept == name), None)

    @property
    def risk_concepts(self) -> list[VisualConcept]:
        """Concepts that map to a taxonomy category (not neutral context)."""
        return [c for c in self.concepts if c.category is not None]


class ImagePerceiver:
    """Runs OCR, labels and nudity on images; each component is optional and loads on first use.

    Components can be passed in (``ocr_engine``, ``labeler``, ``nudity_scorer``, ``concept_map``)
    to replace the packaged ones, e.g. with fakes in tests. A component that fails on one image
    is recorded in :attr:`ImageEvidence.errors` and the others still run; a component that is not
    installed raises :class:`~vlmguard.errors.ConfigError` on first use.

    ``ocr_budget`` bounds the recognition work of one image (see :class:`~vlmguard.perception.ocr.OcrEngine`);
    :meth:`perceive` can give a smaller one.
    ``nudity_model`` picks the nudity scorer (``nudenet``, the default, or ``open_nsfw``);
    ``nudity_threshold`` overrides the scorer's own threshold for reporting a ``nudity`` concept.
    """

    def __init__(
        self,
        *,
        ocr: bool = True,
        labels: bool = True,
        nudity: bool = True,
        cache_size: int = 256,
        threads: int = 2,
        ocr_budget: int = OCR_BUDGET,
        nudity_model: str = "nudenet",
        nudity_threshold: float | None = None,
        ocr_engine: Any = None,
        labeler: Any = None,
        nudity_scorer: Any = None,
        concept_map: Any = None,
    ) -> None:
        self.use_ocr = ocr
        self.use_labels = labels
        self.use_nudity = nudity
        self.cache_size = cache_size
        self.threads = threads
        self.ocr_budget = ocr_budget
        self.nudity_model = nudity_model
        self.nudity_threshold = nudity_threshold
        self._ocr = ocr_engine
        self._labeler = labeler
        self._nudity = nudity_scorer
        self._concept_map = concept_map
        self._cache: OrderedDict[tuple[str, int], ImageEvidence] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    # --- components -------------------------------------------------------------------------
    @property
    def ocr_engine(self) -> Any:
        if self._ocr is None:
            with self._build_lock:
                if self._ocr is None:
                    from vlmguard.perception.ocr import OcrEngine

                    self._ocr = OcrEngine(threads=self.threads, budget=self.ocr_budget)
        return self._ocr

    @property
    def labeler(self) -> Any:
        if self._labeler is None:
            with self._build_lock:
                if self._labeler is None:
                    from vlmguard.perception.labels import ImageLabeler

                    self._labeler = ImageLabeler()  # torch's thread count: vlmguard.runtime
        return self._labeler

    @property
    def concept_map(self) -> Any:
        if self._concept_map is None:
            from vlmguard.perception.labels import ConceptMap

            self._concept_map = ConceptMap.default()
        return self._concept_map

    @property
    def nudity_scorer(self) -> Any:
        if self._nudity is None:
            with self._build_lock:
                if self._nudity is None:
                    from vlmguard.perception.nudity import make_scorer

                    self._nudity = make_scorer(self.nudity_model, threads=self.threads)
        return self._nudity

    def warmup(self) -> None:
        """Load every enabled model now (cold start happens here instead of on the first image)."""
        if self.use_ocr:
            self.ocr_engine.load()
        if self.use_labels:
            self.labeler.load()
            _ = self.concept_map
        if self.use_nudity:
            self.nudity_scorer.load()

    # --- perception -------------------------------------------------------------------------
    def perceive(self, image: ImageData, *, ocr_budget: int | None = None) -> ImageEvidence:
        """The evidence of ``image``, its text read within ``ocr_budget`` (default: the perceiver's);
        cached by its SHA-256 and the budget."""
        if not isinstance(image, ImageData):
            raise ImageError(
                f"perceive() needs an ImageData (see vlmguard.images.load_image), not {type(image).__name__}"
            )
        budget = self.ocr_budget if ocr_budget is None else ocr_budget
        key = (image.sha256, budget)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        evidence = self._perceive(image, budget)
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = evidence
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return evidence

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _perceive(self, image: ImageData, ocr_budget: int) -> ImageEvidence:
        timings: dict[str, float] = {}
        errors: dict[str, str] = {}
        start = time.perf_counter()
        try:
            pil = image.to_pil()  # first frame, transparency composited on white
            if max(pil.size) > WORK_MAX_SIDE:  # every component works far below this size
                from PIL import Image

                pil.thumbnail((WORK_MAX_SIDE, WORK_MAX_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        except Exception as exc:
            raise ImageError(f"image could not be decoded: {exc}") from None
        timings["decode"] = _ms(start)

        reading = OcrReading()
        if self.use_ocr:
            t = time.perf_counter()
            try:
                reading = self.ocr_engine.read(pil, ocr_budget)
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    raise
                errors["ocr"] = f"{type(exc).__name__}: {exc}"
            timings["ocr"] = _ms(t)

        labels: list[ImageLabel] = []
        concepts: list[VisualConcept] = []
        if self.use_labels:
            t = time.perf_counter()
            try:
                probs = self.labeler.probabilities(pil)
                labels = list(self.labeler.top(probs))
                concepts.extend(self.concept_map.concepts(probs))
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    raise
                errors["labels"] = f"{type(exc).__name__}: {exc}"
            timings["labels"] = _ms(t)

        nudity_score: float | None = None
        if self.use_nudity:
            t = time.perf_counter()
            try:
                result = self.nudity_scorer.score(pil)
                nudity_score = float(result.score)
                threshold = self.nudity_threshold
                if threshold is None:
                    threshold = float(getattr(self.nudity_scorer, "threshold", 0.5))
                if nudity_score >= threshold:
                    concepts.append(
                        VisualConcept(
                            concept="nudity",
                            category=RiskCategory.SEXUAL_CONTENT,
                            score=nudity_score,
                            source="nudity",
                            evidence=result.evidence,
                        )
                    )
            except Exception as exc:
                if isinstance(exc, ConfigError):
                    raise
                errors["nudity"] = f"{type(exc).__name__}: {exc}"
            timings["nudity"] = _ms(t)

        timings["total"] = _ms(start)
        return ImageEvidence(
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            frames=image.frames,
            ocr_text="\n".join(line.text for line in reading.lines),
            ocr_lines=reading.lines,
            ocr_unread=reading.unread,
            labels=labels,
            concepts=concepts,
            nudity_score=nudity_score,
            timings_ms=timings,
            errors=errors,
        )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)
