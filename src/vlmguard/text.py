"""Text hygiene: the one normalisation of text entering the guard, prompt checks, neutralisation.

Every text that enters the guard (a prompt from the API, the CLI or the proxy; OCR text read from an
image; strings in a configuration) goes through :func:`normalize_text` once, at the boundary, so
nothing behind it (tokenizers, encoders, JSON writers, templates) meets text it cannot handle.
"""

from __future__ import annotations

import re
import unicodedata

from vlmguard.errors import InputError

DEFAULT_MAX_PROMPT_CHARS = 32_000

REPLACEMENT = "\ufffd"
"""What an unpaired UTF-16 surrogate becomes (the Unicode replacement character)."""

# Zero-width characters, bidirectional marks, embeddings, overrides and isolates, the soft hyphen and
# the invisible tag characters: they hide or reorder text without showing.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The 66 noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)


def normalize_text(text: str) -> str:
    """``text`` made safe for everything behind the guard's boundary; total on every ``str``.

    - UTF-16 surrogates: a high and low surrogate in order are joined into their character; an
      unpaired one becomes U+FFFD (tokenizers and UTF-8 encoders raise on it);
    - NFKC normalisation (full-width and compatibility forms fold to plain letters);
    - zero-width characters, bidirectional marks, embeddings, overrides and isolates, the soft
      hyphen and tag characters are removed;
    - noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF) are removed;
    - NUL and other control characters (not tab, newline, carriage return) become a space.

    Idempotent: ``normalize_text(normalize_text(t)) == normalize_text(t)``. Raises
    :class:`InputError` only when ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a string, not {type(text).__name__}", code="invalid_text")
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _CONTROL.sub(" ", _NONCHARACTER.sub("", _INVISIBLE.sub("", text)))
    normalized = unicodedata.normalize("NFKC", text)
    if normalized != text:  # compatibility forms can fold into characters removed above
        normalized = _CONTROL.sub(" ", _NONCHARACTER.sub("", _INVISIBLE.sub("", normalized)))
    return normalized


def clean_prompt(text: str, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS, allow_empty: bool = False) -> str:
    """A user prompt through :func:`normalize_text`, stripped, with its length checked.

    Raises :class:`InputError` with ``code`` ``empty_prompt`` when the prompt is empty after
    cleaning (unless ``allow_empty``), ``prompt_too_long`` when it is longer than ``max_chars``,
    ``invalid_prompt`` when it is not a string.
    """
    if not isinstance(text, str):
        raise InputError(f"prompt must be a string, not {type(text).__name__}", code="invalid_prompt")
    if len(text) > max_chars * 4:
        raise InputError(
            f"prompt is {len(text):,} characters, over the limit of {max_chars:,}", code="prompt_too_long"
        )
    cleaned = normalize_text(text).strip()
    if not cleaned and not allow_empty:
        raise InputError("prompt is empty", code="empty_prompt")
    if len(cleaned) > max_chars:
        raise InputError(
            f"prompt is {len(cleaned):,} characters, over the limit of {max_chars:,}", code="prompt_too_long"
        )
    return cleaned


_TAG_LIKE = re.compile(r"</?\s*([A-Za-z_][\w-]*)\s*>")


def neutralize(untrusted: str, markers: tuple[str, ...]) -> str:
    """Defang ``untrusted`` text before putting it in a template whose output uses ``markers``.

    Tag-like strings that match a marker name (``<rewritten_prompt>``, ``</analysis>``...) are
    replaced by a visible placeholder, so text from a user or from an image cannot open or close
    a section of the format the parser reads.
    """
    names = {m.lower() for m in markers}

    def _sub(match: re.Match[str]) -> str:
        return "[tag removed]" if match.group(1).lower() in names else match.group(0)

    return _TAG_LIKE.sub(_sub, untrusted)
