"""A small language guess for the text tagger: is a text English (where the embeddings apply)?

Script ranges for Chinese, Japanese, Korean, Russian and Arabic; function-word counts for English,
Spanish, French, German, Portuguese and Italian. No dependency.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN_WORDS = _words(
    "a an and are as at be by can could do does for from here how i image in is it me my not "
    "of on or photo picture please should that the there this to was what which who why with "
    "would you your"
)
_LANG_WORDS: dict[str, frozenset[str]] = {
    "es": _words("como con cómo de el en es está hacer la las los para por puedo que quiero qué un una y"),
    "fr": _words("avec comment dans de des du en est et faire je la le les pour que qui sur un une veux"),
    "de": _words("auf das dem den der die ein eine für ich ist kann machen mit nicht und wie zu"),
    "pt": _words("a as com como da de do e em fazer não o os para posso que quero um uma é"),
    "it": _words("che come con della di e fare gli il la lo non per un una voglio è"),
}


def detect_language(text: str) -> str:
    """A small language guess: ``en``, ``es``, ``fr``, ``de``, ``pt``, ``it``, ``zh``, ``ja``, ``ko``, ``ru``,
    ``ar`` or ``unknown`` (no dependency; enough to say whether the English embeddings apply)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    scripts = {"zh": 0, "ja": 0, "ko": 0, "ru": 0, "ar": 0, "latin": 0}
    for ch in letters:
        code = ord(ch)
        if 0x3040 <= code <= 0x30FF:
            scripts["ja"] += 1
        elif 0x4E00 <= code <= 0x9FFF:
            scripts["zh"] += 1
        elif 0xAC00 <= code <= 0xD7AF:
            scripts["ko"] += 1
        elif 0x0400 <= code <= 0x04FF:
            scripts["ru"] += 1
        elif 0x0600 <= code <= 0x06FF:
            scripts["ar"] += 1
        elif code < 0x250:
            scripts["latin"] += 1
    if scripts["ja"] and scripts["ja"] + scripts["zh"] > 0.3 * len(letters):
        return "ja"
    best = max(scripts, key=lambda k: scripts[k])
    if best != "latin" and scripts[best] > 0.3 * len(letters):
        return best
    words = re.findall(r"[a-zà-ÿß]+", text.lower())
    if not words:
        return "unknown"
    counts = {"en": sum(w in _EN_WORDS for w in words)}
    counts.update({lang: sum(w in vocab for w in words) for lang, vocab in _LANG_WORDS.items()})
    lang = max(counts, key=lambda k: counts[k])
    if counts[lang] == 0:
        return "en" if len(words) <= 3 else "unknown"
    if lang != "en" and counts[lang] <= counts["en"]:
        return "en"
    return lang
