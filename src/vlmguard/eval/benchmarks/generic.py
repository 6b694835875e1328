"""Bring your own benchmark: one JSON object a line (``.jsonl``) or one CSV row per item.

Fields (only ``prompt`` is required; ``question`` or ``text`` are accepted for it):

- ``id``: unique id (default: the line or row number);
- ``prompt``: the text sent to the model;
- ``image`` (one path) or ``images`` (a JSON list, or paths separated by ``|`` in CSV): relative
  to the ``images`` folder when given, else to the data file's folder;
- ``expected``: ``harmful`` (default) or ``benign``;
- ``category``: a taxonomy name or your own label (kept as the label, mapped to the taxonomy);
- ``reference``, ``safety_warning``: given to the judge.

Items with a missing image are left out and reported.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError, InputError
from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions
from vlmguard.eval.benchmarks.reading import SampleCollector, iter_jsonl
from vlmguard.eval.sample import Expected, Sample, SkippedSample
from vlmguard.taxonomy import category_from_label

_EXPECTED = {
    "harmful": Expected.HARMFUL,
    "unsafe": Expected.HARMFUL,
    "benign": Expected.BENIGN,
    "safe": Expected.BENIGN,
}


def _image_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [part.strip() for part in text.split("|") if part.strip()]


_category = functools.lru_cache(maxsize=1024)(category_from_label)


def build_sample(
    record: dict[str, Any], index: int, *, benchmark: str, base: Path, where: str, keep_missing: bool = False
) -> Sample | SkippedSample:
    """Turn one record of a generic file into a sample (or a skipped item when an image is missing,
    unless ``keep_missing``)."""
    prompt = record.get("prompt") or record.get("question") or record.get("text")
    if not prompt or not str(prompt).strip():
        raise InputError(f"{where}: item {index} has no 'prompt'")
    sample_id = str(record.get("id") or index)
    expected_raw = str(record.get("expected") or "harmful").strip().lower()
    if expected_raw not in _EXPECTED:
        raise InputError(f"{where}: item {sample_id} has expected={expected_raw!r} (use harmful or benign)")
    paths: list[Path] = []
    for name in _image_list(record.get("images")) + _image_list(record.get("image")):
        path = Path(name) if Path(name).is_absolute() else base / name
        if not keep_missing and not path.is_file():
            return SkippedSample(id=sample_id, reason=f"image missing: {name}")
        paths.append(path)
    label = str(record.get("category") or record.get("label") or "").strip()
    return Sample(
        id=sample_id,
        benchmark=benchmark,
        category=_category(label) if label else None,
        label=label,
        prompt=str(prompt).strip(),
        image_paths=paths,
        expected=_EXPECTED[expected_raw],
        reference=record.get("reference") or None,
        safety_warning=record.get("safety_warning") or None,
        meta={k: v for k, v in record.items() if k not in {"prompt", "question", "text", "image", "images"}},
    )


class _Generic:
    name = "generic"
    kind = "mixed"
    description = ""
    variants: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def _records(self, path: Path) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        path = options.data
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in self.suffixes)
            if len(files) != 1:
                raise ConfigError(f"{path} is a folder: pass the {'/'.join(self.suffixes)} file itself")
            path = files[0]
        if not path.is_file():
            raise ConfigError(f"benchmark file not found: {path}")
        base = options.images or path.parent
        found = SampleCollector(options)
        seen: set[str] = set()
        total = 0
        for index, record in enumerate(self._records(path), start=1):
            total += 1
            built = build_sample(
                record,
                index,
                benchmark=path.stem,
                base=base,
                where=str(path),
                keep_missing=options.missing_images == "keep",
            )
            if built.id in seen:
                raise InputError(f"{path}: id {built.id!r} appears twice")
            seen.add(built.id)
            if isinstance(built, SkippedSample):
                found.skip(built.id, built.reason)
            else:
                found.add(built)
        return found.result(
            path.stem,
            "mixed",
            total=total,
            source={"file": str(path), "images": str(base)},
        )


class GenericJSONL(_Generic):
    """Items from a ``.jsonl`` file (the benchmark is named after the file)."""

    name = "jsonl"
    description = "your own items: one JSON object a line"
    suffixes = (".jsonl",)

    def _records(self, path: Path) -> Iterator[dict[str, Any]]:
        for _, record in iter_jsonl(path):
            yield record


class GenericCSV(_Generic):
    """Items from a ``.csv`` file with a header row (the benchmark is named after the file)."""

    name = "csv"
    description = "your own items: one CSV row each"
    suffixes = (".csv",)

    def _records(self, path: Path) -> Iterator[dict[str, Any]]:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"prompt", "question", "text"} & set(reader.fieldnames):
                raise InputError(f"{path} needs a header row with a 'prompt' column")
            yield from reader
