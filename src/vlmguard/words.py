"""English stop words and content words: the one list the lexical scorers and judges share."""

from __future__ import annotations

import re

_STOP_WORDS_TEXT = (
    "a an the and or but if then of to in on at by for with from as is are was were be been being "
    "it its this that these those there here i you he she we they me my your our their his her "
    "them us do does did can could would should will shall may might must not no yes so than too "
    "very just also about into over under up down out what which who whom whose when where why "
    "how all any each some such more most other own same only please image picture photo shows show"
)
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""Function words, and the words every request about an image uses ("image", "picture", "show")."""

_WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")
"""A word: letters and digits, joined across an apostrophe or a dot ("don't", "3.5")."""


def content_words(text: str) -> list[str]:
    """The lower-case words of ``text`` in order, without stop words and punctuation."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
