"""The learned text risk model: the probability that a text asks for harm, and its categories.

A :class:`RiskModel` is one or more frozen packaged sentence encoders
(:mod:`vlmguard.perception.encoders`) with a small trained head on their concatenated embeddings:

1. the embedding is projected away from *language directions* (mean differences between the same
   requests in different languages, learned from parallel data), so the head cannot use "not
   English" as evidence of harm;
2. a logistic regression gives ``p_harmful``;
3. one logistic regression per category gives the category probabilities of a harmful text.

The head is a folder: ``head.npz`` (arrays), ``head.json`` (:class:`HeadMeta`: encoders, categories,
the operating threshold, training counts and metrics) and ``MODEL_CARD.md``. The default head ships
inside the package (``perception/data/risk_model``); ``vlmguard risk-model train`` writes new ones.
Long texts are scored in windows and the most harmful window counts; a text in disguise (look-alike
letters, leetspeak, spaced letters) is also read undisguised (:mod:`vlmguard.perception.deobfuscate`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError
from vlmguard.perception.deobfuscate import plain_reading
from vlmguard.perception.encoders import TextEncoder, build_encoder

HEAD_FILES = ("head.npz", "head.json")
WINDOW_WORDS = 48
"""Long texts are scored in windows of about this many words, each overlapping the next by half."""
MAX_WINDOWS = 256
"""At most this many windows of a long text are scored (about 6,000 words; beyond that, windows are
spread evenly over the whole text, the first and the last included)."""


class HeadMeta(BaseModel):
    """What a trained head needs to be used, and what it was trained on (``head.json``)."""

    model_config = ConfigDict(extra="forbid")
    format: int = 1
    encoders: list[str]
    categories: list[str]
    threshold: float = Field(ge=0.0, le=1.0)
    """The operating point: a text is flagged when ``p_harmful >= threshold``."""
    trained_on: dict[str, int] = Field(default_factory=dict)
    """Rows per source used for training."""
    data_sha256: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)


class RiskScore(BaseModel):
    """The risk model's reading of one text."""

    model_config = ConfigDict(frozen=True)
    p_harmful: float
    flagged: bool
    categories: dict[str, float] = Field(default_factory=dict)
    """Probability of each category given that the text is harmful, highest first."""
    window: str = ""
    """The window of the text that scored highest (the whole text when it is short)."""

    def top_categories(self, threshold: float = 0.5, limit: int = 3) -> list[str]:
        """Categories at or over ``threshold`` (at least the most likely one), most likely first."""
        ranked = list(self.categories)
        chosen = [c for c in ranked if self.categories[c] >= threshold][:limit]
        return chosen or ranked[:1]


class RiskHead:
    """The trained arrays of a risk model's head (numpy; no training library needed to use them)."""

    def __init__(self, meta: HeadMeta, arrays: dict[str, Any]) -> None:
        self.meta = meta
        self.arrays = arrays
        missing = {"language_basis", "mean", "scale", "harm_w", "harm_b", "cat_w", "cat_b"} - set(arrays)
        if missing:
            raise ConfigError(f"risk model head lacks arrays: {', '.join(sorted(missing))}")
        if arrays["cat_w"].shape[1] != len(meta.categories):
            raise ConfigError("risk model head: category weights do not match the category names")

    # -- files

    @classmethod
    def load(cls, folder: str | Path) -> RiskHead:
        """Read a head folder written by :meth:`save`."""
        import numpy as np

        root = Path(folder)
        for name in HEAD_FILES:
            if not (root / name).is_file():
                raise ConfigError(
                    f"risk model folder {root} lacks {name} (train one with 'vlmguard risk-model train')"
                )
        try:
            meta = HeadMeta(**json.loads((root / "head.json").read_text(encoding="utf-8")))
            with np.load(root / "head.npz") as data:
                arrays = {k: np.asarray(data[k], dtype=np.float32) for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"risk model folder {root} is not readable: {exc}") from None
        return cls(meta, arrays)

    def save(self, folder: str | Path, card: str | None = None) -> None:
        """Write the head into ``folder`` atomically (a half-written head is never left behind)."""
        import io

        import numpy as np

        from vlmguard.durable import atomic_write_bytes

        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in self.arrays.items()}
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(root / "head.npz", buffer.getvalue())
        atomic_write_bytes(root / "head.json", (self.meta.model_dump_json(indent=2) + "\n").encode("utf-8"))
        if card is not None:
            atomic_write_bytes(root / "MODEL_CARD.md", card.encode("utf-8"))

    # -- scoring

    def features(self, embeddings: Any) -> Any:
        """Language-neutral, standardised features of the concatenated embeddings."""
        basis = self.arrays["language_basis"]
        x = embeddings - (embeddings @ basis.T) @ basis if basis.size else embeddings
        return (x - self.arrays["mean"]) / self.arrays["scale"]

    def predict(self, embeddings: Any) -> tuple[Any, Any]:
        """``p_harmful`` of shape (n,) and category probabilities of shape (n, k)."""
        import numpy as np

        x = self.features(embeddings)
        harm = 1.0 / (1.0 + np.exp(-(x @ self.arrays["harm_w"] + self.arrays["harm_b"])))
        cats = 1.0 / (1.0 + np.exp(-(x @ self.arrays["cat_w"] + self.arrays["cat_b"])))
        return harm.reshape(-1), cats


def packaged_head_dir() -> Path:
    """The folder of the head that ships with vlmguard."""
    return Path(str(resources.files("vlmguard.perception").joinpath("data", "risk_model")))


def windows(text: str, *, words: int = WINDOW_WORDS, limit: int = MAX_WINDOWS) -> list[str]:
    """``text`` whole when short, else windows of ``words`` words overlapping by half (at most ``limit``,
    spread over the whole text)."""
    tokens = text.split()
    if len(tokens) <= words:
        return [" ".join(tokens)] if tokens else []
    step = max(1, words // 2)
    starts = list(range(0, len(tokens) - words + step, step))
    if len(starts) > limit:
        starts = [starts[round(k * (len(starts) - 1) / (limit - 1))] for k in range(limit)]
    return [" ".join(tokens[i : i + words]) for i in starts]


def readings(text: str) -> list[str]:
    """The texts the model reads for ``text``: its windows, then those of its undisguised reading
    (look-alike letters, leetspeak and spaced-out letters undone) when that differs. The most harmful
    reading counts."""
    return windows(text) + windows(plain_reading(text) or "")


class RiskModel:
    """Scores texts for harm with frozen encoders and a trained head. Thread-safe.

    ``folder`` is a head folder (default: the packaged head). ``encoders`` maps encoder names to
    instances, to share one encoder between several parts of a process or to pass fakes in tests.
    """

    def __init__(
        self, folder: str | Path | None = None, *, encoders: dict[str, TextEncoder] | None = None
    ) -> None:
        self.folder = Path(folder) if folder is not None else packaged_head_dir()
        self._encoders = dict(encoders or {})
        self._head: RiskHead | None = None
        self._lock = threading.Lock()

    @property
    def head(self) -> RiskHead:
        if self._head is None:
            with self._lock:
                if self._head is None:
                    self._head = RiskHead.load(self.folder)
        return self._head

    @property
    def categories(self) -> list[str]:
        """The category names this model's head was trained on."""
        return list(self.head.meta.categories)

    @property
    def threshold(self) -> float:
        return self.head.meta.threshold

    def encoder(self, name: str) -> TextEncoder:
        with self._lock:
            if name not in self._encoders:
                self._encoders[name] = build_encoder(name)
            return self._encoders[name]

    def warmup(self) -> None:
        """Load the head and the encoders now (otherwise on first use)."""
        self.embed(["warm up"])

    def embed(self, texts: Sequence[str]) -> Any:
        """The concatenated embeddings of ``texts`` (the head's input)."""
        import numpy as np

        parts = [
            np.asarray(self.encoder(name).encode(list(texts)), dtype=np.float32)
            for name in self.head.meta.encoders
        ]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def score_many(self, texts: Sequence[str]) -> list[RiskScore]:
        """Score each text (long texts by their most harmful window), in one encoder pass."""
        per_text = [readings(t) for t in texts]
        flat = [w for ws in per_text for w in ws]
        if not flat:
            return [RiskScore(p_harmful=0.0, flagged=False) for _ in texts]
        harm, cats = self.head.predict(self.embed(flat))
        meta = self.head.meta
        out: list[RiskScore] = []
        row = 0
        for ws in per_text:
            if not ws:
                out.append(RiskScore(p_harmful=0.0, flagged=False))
                continue
            block = harm[row : row + len(ws)]
            best = row + int(block.argmax())
            row += len(ws)
            p = float(harm[best])
            ranked = sorted(zip(meta.categories, cats[best].tolist(), strict=True), key=lambda kv: -kv[1])
            out.append(
                RiskScore(
                    p_harmful=round(p, 4),
                    flagged=p >= meta.threshold,
                    categories={name: round(float(v), 4) for name, v in ranked},
                    window=flat[best],
                )
            )
        return out

    def score(self, text: str) -> RiskScore:
        """Score one text."""
        return self.score_many([text])[0]


__all__ = ["HeadMeta", "RiskHead", "RiskModel", "RiskScore", "packaged_head_dir", "readings", "windows"]
