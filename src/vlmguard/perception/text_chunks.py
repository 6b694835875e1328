"""How the text tagger reads a text: normalised, cut, and split into sentence-aligned windows that
the sentence encoder can embed whole."""

from __future__ import annotations

import re
import unicodedata

from vlmguard.perception.risk_compose import strip_list_markers
from vlmguard.perception.text_request import phrased_as_request, request_structure

MAX_TEXT_CHARS = 20_000
"""Texts are cut to this many characters before tagging (cues and embeddings)."""
MAX_CHUNKS = 12
"""At most this many chunks of a long text are embedded (the first ones, in reading order)."""
CHUNK_WORDS = 48
"""Long texts are embedded in windows of about this many words (MiniLM reads 256 tokens at most)."""


def prepare_text(text: str) -> str:
    """NFKC, collapsed whitespace, cut to :data:`MAX_TEXT_CHARS`."""
    text = unicodedata.normalize("NFKC", text)[:MAX_TEXT_CHARS]
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def chunk_text(text: str, *, words: int = CHUNK_WORDS, max_chunks: int = MAX_CHUNKS) -> list[str]:
    """Split ``text`` into sentence-aligned windows of about ``words`` words (at most ``max_chunks``)."""
    text = strip_list_markers(prepare_text(text))
    if not text:
        return []
    if len(text.split()) <= words:
        return [re.sub(r"\s+", " ", text)]
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for piece in pieces:
        n = len(piece.split())
        if current and count + n > words:
            chunks.append(" ".join(current))
            current, count = [], 0
        if n > words:  # one very long sentence: hard-wrap it
            tokens = piece.split()
            for i in range(0, len(tokens), words):
                chunks.append(" ".join(tokens[i : i + words]))
            continue
        current.append(piece)
        count += n
    if current:
        chunks.append(" ".join(current))
    return chunks[:max_chunks]


def text_chunks(text: str) -> list[tuple[str, bool]]:
    """The pieces of ``text`` that are embedded, each with whether it is phrased as a request.

    The chunks of :func:`chunk_text`; for a short procedural request ("Steps to X.") also its act
    alone ("X"), so the heading words do not dilute what is asked for.
    """
    chunks = chunk_text(text)
    out = [(c, phrased_as_request(request_structure(c))) for c in chunks]
    if len(chunks) == 1:
        structure = request_structure(chunks[0])
        if structure.procedural and structure.act and len(structure.act.split()) >= 2:
            out.append((structure.act, True))
    return out
