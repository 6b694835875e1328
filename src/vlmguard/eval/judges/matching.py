"""Reference matching for MM-Vet-style ground truths without a model (the offline judge's utility score).

``<OR>`` joins alternatives (the best one counts); ``<AND>`` joins parts that must all appear
(credit is the share found). A numeric part matches a number in the answer; a short text part
matches when all its content words appear; a long free-text part earns the share of its content
words the answer contains.
"""

from __future__ import annotations

import re

from vlmguard.words import content_words

_NUM = re.compile(r"-?\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[float]:
    found = set()
    for match in _NUM.findall(text):
        try:
            found.add(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def _part_score(part: str, answer: str, answer_words: set[str], answer_numbers: set[float]) -> float:
    part = part.strip()
    if not part:
        return 1.0
    if _NUM.fullmatch(part.replace(" ", "")):
        value = float(part.replace(" ", "").replace(",", ""))
        return 1.0 if value in answer_numbers else 0.0
    norm_part = " ".join(re.findall(r"[a-z0-9]+", part.lower()))
    norm_answer = " ".join(re.findall(r"[a-z0-9]+", answer.lower()))
    if norm_part and f" {norm_part} " in f" {norm_answer} ":
        return 1.0
    words = content_words(part)
    if not words:
        return 0.0
    found = sum(1 for w in words if w in answer_words) / len(words)
    if len(words) <= 4:
        return 1.0 if found == 1.0 else 0.0
    return round(found, 2)


def reference_score(answer: str, reference: str) -> float:
    """Score 0-1 of ``answer`` against an MM-Vet ground truth."""
    words = set(content_words(answer))
    numbers = _numbers(answer)
    best = 0.0
    for alternative in reference.split("<OR>"):
        parts = alternative.split("<AND>")
        score = sum(_part_score(p, answer, words, numbers) for p in parts) / len(parts)
        best = max(best, score)
    return round(best, 2)


def _stem(word: str) -> str:
    return word[:5]


def relevance(question: str, answer: str) -> float:
    """Share of the question's content words (compared by their first five letters) in the answer (0-1)."""
    q = {_stem(w) for w in content_words(question)}
    if not q:
        return 1.0
    return len(q & {_stem(w) for w in content_words(answer)}) / len(q)
