"""A bag-of-words sentence encoder for the exemplar tagger's tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmguard.words import content_words


class BagOfWordsEncoder:
    """A deterministic sentence encoder: hashed bag of content words (``vlmguard.words``), L2-normalised."""

    dim = 1024

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], **_: Any) -> Any:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in content_words(text):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out
