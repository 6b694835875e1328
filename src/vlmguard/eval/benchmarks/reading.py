"""What the benchmark readers share: locating the data file and images folder, reading JSON and JSONL
with errors that name the file, looking up images, and collecting samples and skipped items.

These are the only routines in the project that read the benchmarks' official files; synthesis, the
demo and the benchmark scripts read them through the readers (``load_benchmark``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError, InputError
from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkKind, BenchmarkOptions
from vlmguard.eval.benchmarks.selection import select
from vlmguard.eval.sample import Sample, SkippedSample


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`ConfigError` naming it."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path} (is the data folder right?)")
    return path


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a :class:`ConfigError` naming it."""
    if not path.is_dir():
        raise ConfigError(f"{what} not found: {path}")
    return path


def data_file(options: BenchmarkOptions, name: str, what: str) -> Path:
    """The benchmark's data file: ``options.data`` when it is a file, else ``options.data / name``.

    Raises :class:`ConfigError` naming the file when it does not exist.
    """
    if options.data.is_file():
        return options.data
    return require_file(options.data / name, what)


def images_folder(path: Path, options: BenchmarkOptions, what: str, hint: str = "") -> Path:
    """``path``, checked to be a folder unless ``options.missing_images == "keep"``; a
    :class:`ConfigError` names it (and adds ``hint``, e.g. where to get the images) when it is not."""
    if options.missing_images != "keep" and not path.is_dir():
        raise ConfigError(f"{what} not found: {path}{hint}")
    return path


def image_for(path: Path, options: BenchmarkOptions, *, found: Path | None = None) -> Path | None:
    """The image file of an item, or ``None`` when the item must be skipped for a missing image.

    ``found`` is the file a reader located itself (default: ``path`` when it is a file). When there is
    none, ``missing_images="keep"`` gives ``path`` (the image as the layout names it).
    """
    if found is None and path.is_file():
        found = path
    if found is None and options.missing_images == "keep":
        return path
    return found


def item_fields(item: Any, names: Sequence[str], where: str) -> list[Any]:
    """The values of ``names`` in ``item``; an :class:`InputError` says ``where`` a field is missing."""
    try:
        return [item[name] for name in names]
    except (KeyError, TypeError) as exc:
        raise InputError(f"{where} lacks the field {exc}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object of id -> item (:class:`InputError` otherwise)."""
    items = read_json(path)
    if not isinstance(items, dict):
        raise InputError(f"{path} must hold a JSON object of id -> item")
    return items


def read_json_list(path: Path) -> list[Any]:
    """A JSON file holding a list of items (:class:`InputError` otherwise)."""
    items = read_json(path)
    if not isinstance(items, list):
        raise InputError(f"{path} must hold a JSON list of items")
    return items


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file; an :class:`InputError` names
    the line that is not valid JSON or not a JSON object."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number} is not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number} must be a JSON object")
            yield number, record


def read_json(path: Path) -> Any:
    """Parse a JSON file; a :class:`InputError` names the file when it is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc}") from None


def find_image(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it exists, else a file with the same stem and another image extension."""
    direct = folder / name
    if direct.is_file():
        return direct
    stem = Path(name).stem
    parent = (folder / name).parent
    for ext in (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".JPG", ".PNG"):
        candidate = parent / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


class SampleCollector:
    """Gathers one read's samples and the items skipped for a missing image, then applies the filters."""

    def __init__(self, options: BenchmarkOptions) -> None:
        self.options = options
        self.samples: list[Sample] = []
        self.skipped: list[SkippedSample] = []

    def image(self, sample_id: str, path: Path, named: str, *, found: Path | None = None) -> Path | None:
        """The item's image (see :func:`image_for`); ``None``, with the item recorded as skipped
        ("image missing: ``named``"), when it is missing and must be left out."""
        image = image_for(path, self.options, found=found)
        if image is None:
            self.skip(sample_id, f"image missing: {named}")
        return image

    def skip(self, sample_id: str, reason: str) -> None:
        """Record an item left out for incomplete data."""
        self.skipped.append(SkippedSample(id=sample_id, reason=reason))

    def add(self, sample: Sample) -> None:
        """Keep a sample."""
        self.samples.append(sample)

    def result(
        self,
        benchmark: str,
        kind: BenchmarkKind,
        *,
        total: int,
        source: dict[str, str],
        variant: str | None = None,
    ) -> BenchmarkData:
        """The read's :class:`BenchmarkData`, category filter and limit applied."""
        return BenchmarkData(
            benchmark=benchmark,
            variant=variant,
            kind=kind,
            samples=select(self.samples, self.options),
            skipped=self.skipped,
            total=total,
            source=source,
        )
