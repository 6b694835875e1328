"""Labelled text for the risk model: reading, validation, category mapping and language tags.

A labelled row is a :class:`LabelledText`: the text, ``harmful`` or ``benign``, an optional category
(a taxonomy name or any source's own label, mapped through ``data/source_categories.yaml``), the
source it came from and its language. Files are JSONL (one object a line) or CSV with a header;
both need the fields ``text`` and ``label`` and may carry ``category``, ``source``, ``lang`` and
``id``. A bad row stops the read with an :class:`~vlmguard.errors.InputError` that names the file
and the row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError, InputError
from vlmguard.taxonomy import RiskCategory

LABELS = ("harmful", "benign")
MAX_ROW_CHARS = 200_000
"""Longer texts are rejected in training files (the model reads only their first few hundred tokens)."""

_LABEL_WORDS = {
    "harmful": "harmful",
    "unsafe": "harmful",
    "1": "harmful",
    "true": "harmful",
    "unsafe_instruction": "harmful",
    "benign": "benign",
    "safe": "benign",
    "0": "benign",
    "false": "benign",
    "safe_instruction": "benign",
}


class LabelledText(BaseModel):
    """One labelled text for training or evaluating the risk model."""

    model_config = ConfigDict(frozen=True)
    text: str
    label: str = Field(pattern="^(harmful|benign)$")
    categories: tuple[str, ...] = ()
    """Category names: taxonomy values for the built-in data, or a user's own names."""
    source: str = "user"
    lang: str = "en"
    id: str = ""
    group: str = ""
    """Rows with the same group are the same request in different languages (parallel data)."""

    @property
    def harmful(self) -> bool:
        return self.label == "harmful"


class CategoryRule(BaseModel):
    """One rule of ``data/source_categories.yaml``."""

    model_config = ConfigDict(extra="forbid")
    category: RiskCategory
    contains: list[str] = Field(default_factory=list)
    exact: str | None = None


@cache
def load_category_rules() -> tuple[CategoryRule, ...]:
    """The packaged rules that map public sources' category labels onto the taxonomy."""
    from vlmguard.perception.package_data import data_yaml

    return tuple(CategoryRule(**rule) for rule in data_yaml("source_categories.yaml")["rules"])


def map_category_label(label: str | None, rules: Sequence[CategoryRule] | None = None) -> tuple[str, ...]:
    """The taxonomy categories a source's own label names ("H,V,H2" -> hate, violence), in order."""
    if not label:
        return ()
    taxonomy = {c.value for c in RiskCategory}
    if label.strip().lower() in taxonomy:
        return (label.strip().lower(),)
    rules = rules if rules is not None else load_category_rules()
    found: list[str] = []
    for part in re.split(r"[;,]", label.lower()):
        part = part.strip()
        for rule in rules:
            if (rule.exact is not None and part == rule.exact) or (
                rule.contains and all(word in part for word in rule.contains)
            ):
                if rule.category.value not in found:
                    found.append(rule.category.value)
                break
    return tuple(c for c in found if c != RiskCategory.OTHER.value)


# ------------------------------------------------------------------------------------------ language

_SCRIPTS = (
    ("zh", 0x4E00, 0x9FFF),
    ("ja", 0x3040, 0x30FF),
    ("ko", 0xAC00, 0xD7AF),
    ("ar", 0x0600, 0x06FF),
    ("th", 0x0E00, 0x0E7F),
    ("bn", 0x0980, 0x09FF),
    ("hi", 0x0900, 0x097F),
    ("ru", 0x0400, 0x04FF),
)
_LANG_NAMES = {
    "portuguese": "pt",
    "spanish": "es",
    "italian": "it",
    "german": "de",
    "french": "fr",
    "hindi": "hi",
    "thai": "th",
    "chinese": "zh",
    "vietnamese": "vi",
}


def script_language(text: str) -> str | None:
    """The language a non-Latin script points to (``zh``, ``th``, ``ar``...), or ``None`` for Latin text."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        code = ord(ch)
        for lang, lo, hi in _SCRIPTS:
            if lo <= code <= hi:
                counts[lang] = counts.get(lang, 0) + 1
                break
    if not counts or letters == 0:
        return None
    lang = max(counts, key=lambda k: counts[k])
    return lang if counts[lang] >= 0.3 * letters else None


def parallel_group(source: str, row_id: str) -> str:
    """The parallel group public sources imply (MultiJail rows, CatQA ids, PurpleLlama FRR ids), or ``""``."""
    if source == "multijail" and ":" in row_id:
        return "multijail:" + row_id.rsplit(":", 1)[0]
    if source.startswith("catqa_") and row_id:
        return "catqa:" + row_id
    if source.startswith("purplellama_frr") and row_id:
        return "frr:" + row_id.split(":", 1)[0]
    return ""


def source_language(source: str, row_id: str, category: str | None) -> str | None:
    """The language a public source states for a row (MultiJail ids, CatQA files, FRR categories)."""
    if source == "multijail" and ":" in row_id:
        return row_id.rsplit(":", 1)[1]
    if source.startswith("catqa_"):
        return source.split("_", 1)[1]
    if category and ";" in category:
        return _LANG_NAMES.get(category.rsplit(";", 1)[1].strip().lower())
    return None


# ------------------------------------------------------------------------------------------- reading


def _label(value: object, where: str) -> str:
    key = str(value).strip().lower()
    if key not in _LABEL_WORDS:
        raise InputError(f"{where}: label must be one of harmful/benign (or safe/unsafe, 1/0), not {value!r}")
    return _LABEL_WORDS[key]


def _row(raw: object, where: str, default_source: str) -> LabelledText:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object with 'text' and 'label'")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: 'text' must be a non-empty string")
    if len(text) > MAX_ROW_CHARS:
        raise InputError(f"{where}: 'text' is {len(text):,} characters, over the limit of {MAX_ROW_CHARS:,}")
    if "label" not in raw:
        raise InputError(f"{where}: missing 'label'")
    label = _label(raw["label"], where)
    category = raw.get("category")
    if category is not None and not isinstance(category, str):
        raise InputError(f"{where}: 'category' must be a string")
    source = str(raw.get("source") or default_source)
    row_id = str(raw.get("id") or "")
    lang = raw.get("lang") or source_language(source, row_id, category) or script_language(text) or "en"
    return LabelledText(
        text=text,
        label=label,
        categories=map_category_label(category) if label == "harmful" else (),
        source=source,
        lang=str(lang),
        id=row_id,
        group=str(raw.get("group") or parallel_group(source, row_id)),
    )


def _user_row(raw: object, where: str, default_source: str) -> LabelledText:
    """A row of a user's own file: categories are kept as written (the user's own policy)."""
    row = _row(raw, where, default_source)
    category = raw.get("category") if isinstance(raw, dict) else None
    if row.harmful and category:
        names = tuple(dict.fromkeys(p.strip() for p in re.split(r"[;,]", str(category)) if p.strip()))
        return row.model_copy(update={"categories": names})
    return row


def read_labelled(path: str | Path, *, map_categories: bool = True) -> list[LabelledText]:
    """Read a JSONL or CSV file of labelled texts; raise :class:`InputError` naming the file and row.

    ``map_categories`` maps category labels onto the shared taxonomy (public sources); without it,
    a user's own category names are kept as they are.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    build = _row if map_categories else _user_row
    source = p.stem
    rows: list[LabelledText] = []
    try:
        if p.suffix.lower() == ".csv":
            with p.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
                    raise InputError(f"{p}: the CSV header must name the columns 'text' and 'label'")
                for n, record in enumerate(reader, start=2):
                    rows.append(build(dict(record), f"{p}:{n}", source))
        else:
            with p.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        raw = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{p}:{n}: not valid JSON ({exc.msg})") from None
                    rows.append(build(raw, f"{p}:{n}", source))
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text ({exc.reason})") from None
    if not rows:
        raise InputError(f"{p}: no labelled rows")
    return rows


def data_hash(rows: Sequence[LabelledText]) -> str:
    """SHA-256 over the rows (text, label, categories, source) in order: names one training set."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.text, row.label, list(row.categories), row.source]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def iter_batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``."""
    if size < 1:
        raise ConfigError("batch size must be >= 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


__all__ = [
    "LABELS",
    "CategoryRule",
    "LabelledText",
    "data_hash",
    "iter_batches",
    "load_category_rules",
    "map_category_label",
    "parallel_group",
    "read_labelled",
    "script_language",
    "source_language",
]
