"""Undoing the cheap disguises of a text before the risk model reads it.

People (and attacks) hide words from filters with look-alike letters from other scripts ("bоmb" with
a Cyrillic o), digits for letters ("m4k3 4 b0mb"), or letters spaced out ("b o m b"). Sentence
encoders read such text poorly. :func:`plain_reading` returns the text with those disguises undone,
or ``None`` when there is nothing to undo; the risk model scores both readings and keeps the higher.

Only mixed tokens are touched: a Cyrillic or Greek letter inside a Latin word, a digit inside a word
that also has letters, a run of at least four single letters. Text wholly in another script, plain
numbers and ordinary words are left alone.
"""

from __future__ import annotations

import re
from functools import cache

_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
        "ԁ": "d", "ɡ": "g", "һ": "h", "к": "k", "м": "m", "т": "t", "в": "b", "н": "h", "ո": "n",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
        "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
        # Greek
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "ε": "e",
        "Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
        "Τ": "T", "Χ": "X", "Υ": "Y", "Ζ": "Z",
    }
)  # fmt: skip
_LEET = str.maketrans(
    {"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
)
_LATIN = re.compile(r"[A-Za-z]")
_FOREIGN = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f]")
_LEET_TOKEN = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9@$!])[A-Za-z0-9@$!]+$")
_SPACED = re.compile(r"(?<!\S)((?:[A-Za-z0-9]\s+){3,}[A-Za-z0-9])(?!\S)")


@cache
def _word_costs() -> dict[str, float]:
    """Whole words of the packaged MiniLM vocabulary with a cost that grows with their rank there
    (the vocabulary lists frequent words first); empty when the package is not installed."""
    import math

    try:
        from vlmguard.perception.encoders import minilm_model_dir

        lines = (minilm_model_dir() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except Exception:
        return {}
    words = [w for w in lines if w.isascii() and w.isalpha() and (len(w) > 1 or w in "ai")]
    return {w: math.log(rank + 10) for rank, w in enumerate(words)}


def segment(run: str) -> str:
    """Split a run of letters into likely words ("makeabomb" -> "make a bomb"); the run itself when no
    split covers it."""
    costs = _word_costs()
    lower = run.lower()
    if not costs or len(lower) > 200:
        return run
    best: list[tuple[float, list[str]] | None] = [(0.0, [])] + [None] * len(lower)
    for end in range(1, len(lower) + 1):
        for start in range(max(0, end - 20), end):
            prev, piece = best[start], lower[start:end]
            if prev is None or piece not in costs:
                continue
            cost = prev[0] + costs[piece]
            current = best[end]
            if current is None or cost < current[0]:
                best[end] = (cost, [*prev[1], piece])
    found = best[-1]
    return " ".join(found[1]) if found else run


def _fold_token(token: str) -> str:
    if _LATIN.search(token) and _FOREIGN.search(token):
        token = token.translate(_CONFUSABLES)
    core = token.strip(".,;:?!\"'()")
    if len(core) >= 3 and _LEET_TOKEN.match(core) and not core.isdigit():
        token = token.replace(core, core.translate(_LEET))
    return token


def plain_reading(text: str) -> str | None:
    """``text`` without look-alike letters, leetspeak and spaced-out letters; ``None`` if unchanged."""
    latin, foreign = len(_LATIN.findall(text)), len(_FOREIGN.findall(text))
    unfolded = text.translate(_CONFUSABLES) if latin and foreign and latin >= foreign else text
    joined = _SPACED.sub(lambda m: segment("".join(m.group(1).split())), unfolded)
    tokens = [_fold_token(t) for t in joined.split()]
    if any(t != o for t, o in zip(tokens, joined.split(), strict=True)):
        # digits standing alone between disguised words are letters too ("4 b0mb", "70 hurt")
        tokens = [t.translate(_LEET) if t.isdigit() and len(t) <= 2 else t for t in tokens]
    folded = " ".join(tokens)
    return folded if folded != " ".join(text.split()) else None


__all__ = ["plain_reading"]
