"""Chunking texts for the sentence encoder."""

from __future__ import annotations

from vlmguard.perception.text_chunks import chunk_text


def test_chunking_bounds_long_and_huge_texts() -> None:
    assert chunk_text("") == []
    assert chunk_text("short  text\nhere") == ["short text here"]
    long = " ".join(f"Sentence number {i} is here." for i in range(200))
    chunks = chunk_text(long, words=20, max_chunks=5)
    assert len(chunks) == 5 and all(len(c.split()) <= 20 for c in chunks)
    one_line = "word " * 10_000
    assert all(len(c.split()) <= 48 for c in chunk_text(one_line))
