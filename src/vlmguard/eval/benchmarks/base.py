"""The benchmark protocol, shared options, filtering and the ``BENCHMARKS`` registry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError, InputError
from vlmguard.eval.sample import Sample, SkippedSample
from vlmguard.registry import Entry, Registry

BenchmarkKind = Literal["safety", "utility", "over-refusal", "mixed"]


class BenchmarkOptions(BaseModel):
    """What the user asks of a benchmark: where its data is, how much of it, which part."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    data: Path
    """The benchmark's folder, or its data file itself (``safebench.csv``, ``mm-vet.json``, a VLGuard
    ``train.json``...; for the generic readers, a ``.jsonl``/``.csv`` file)."""
    images: Path | None = None
    """The images folder, where the benchmark keeps images outside its data folder (SIUO, VLGuard)."""
    limit: int | None = Field(None, ge=1)
    categories: tuple[str, ...] = ()
    """Keep only these categories: taxonomy names or the benchmark's own labels (case-insensitive)."""
    variant: str | None = None
    """A benchmark-specific variant (FigStep ``figstep``/``text``; MM-SafetyBench ``SD_TYPO``...)."""
    stratify: bool = True
    """With ``limit``: take items round-robin over categories (file order inside each), not the first N."""
    missing_images: Literal["skip", "keep"] = "skip"
    """``skip``: items whose image file is missing are left out and listed in ``skipped``. ``keep``: every
    item is kept with its image path as the layout names it, unchecked, and no images folder is needed
    (for callers that check images themselves or read only the text)."""


class BenchmarkData(BaseModel):
    """The samples of one benchmark after filters, and what could not be loaded."""

    benchmark: str
    variant: str | None = None
    kind: BenchmarkKind
    samples: list[Sample]
    skipped: list[SkippedSample] = Field(default_factory=list)
    """Items left out because their data is incomplete (e.g. a missing image), with the reason."""
    total: int
    """Items in the benchmark before filters."""
    source: dict[str, str] = Field(default_factory=dict)
    """The files read (name -> path), recorded in the run's manifest."""


@runtime_checkable
class Benchmark(Protocol):
    """A benchmark reader: official layout in, samples out."""

    name: str
    kind: BenchmarkKind
    description: str
    variants: tuple[str, ...]

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        """Read the data named by ``options``. Raises :class:`ConfigError` naming a missing file or folder."""
        ...


BENCHMARKS: Registry[Benchmark] = Registry(
    "benchmark",
    (
        Entry(
            "figstep",
            "vlmguard.eval.benchmarks.figstep:FigStep",
            "FigStep SafeBench: typographic attack images",
        ),
        Entry(
            "siuo",
            "vlmguard.eval.benchmarks.siuo:SIUO",
            "SIUO: safe inputs, unsafe outputs (images given by --images)",
        ),
        Entry(
            "mmsafetybench",
            "vlmguard.eval.benchmarks.mmsafetybench:MMSafetyBench",
            "MM-SafetyBench: 13 scenarios, SD / SD_TYPO / TYPO images",
        ),
        Entry(
            "vlguard",
            "vlmguard.eval.benchmarks.vlguard:VLGuard",
            "VLGuard test: safe_safes, safe_unsafes, unsafes (images given by --images)",
        ),
        Entry(
            "mmvet",
            "vlmguard.eval.benchmarks.mmvet:MMVet",
            "MM-Vet: general capability (utility), graded 0-1",
        ),
        Entry(
            "mossbench",
            "vlmguard.eval.benchmarks.mossbench:MOSSBench",
            "MOSSBench: over-refusal on benign requests",
        ),
        Entry(
            "jsonl",
            "vlmguard.eval.benchmarks.generic:GenericJSONL",
            "your own items, one JSON object a line",
        ),
        Entry("csv", "vlmguard.eval.benchmarks.generic:GenericCSV", "your own items, one CSV row each"),
    ),
)


def load_benchmark(name: str, options: BenchmarkOptions) -> BenchmarkData:
    """Read benchmark ``name`` with ``options`` (filters and limit applied)."""
    benchmark = BENCHMARKS.create(name)
    if options.variant is not None and benchmark.variants and options.variant not in benchmark.variants:
        raise ConfigError(
            f"benchmark {name!r} has no variant {options.variant!r} "
            f"(variants: {', '.join(benchmark.variants)})"
        )
    return benchmark.load(options)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark reader registered as ``name``."""
    return BENCHMARKS.create(name)


# ---------------------------------------------------------------------------------------------
# helpers for benchmark modules


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


def category_matches(sample: Sample, wanted: Sequence[str]) -> bool:
    """True when ``sample``'s category or own label is one of ``wanted`` (case-insensitive)."""
    if not wanted:
        return True
    return bool({w.strip().lower() for w in wanted} & _names(sample))


def _names(sample: Sample) -> set[str]:
    """The names ``sample`` answers to: its label (with and without a parenthesised gloss), its groups
    and its taxonomy category, lower-cased."""
    label = sample.label.lower()
    own = {label, label.split(" (")[0]} | {g.lower() for g in sample.groups}
    if sample.category is not None:
        own.add(sample.category.value)
    return own


def check_categories(samples: Sequence[Sample], wanted: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a ``wanted`` category that is neither a taxonomy name nor a
    label of ``samples``, listing the known ones (a typo must not run zero samples)."""
    from vlmguard.taxonomy import RiskCategory

    known: set[str] = {c.value for c in RiskCategory}
    for sample in samples:
        known |= _names(sample) - {""}
    unknown = [w for w in wanted if w.strip().lower() not in known]
    if unknown:
        listed = sorted(known)
        shown = ", ".join(listed[:60]) + (f", ... ({len(listed)} in all)" if len(listed) > 60 else "")
        names = ", ".join(repr(u) for u in unknown)
        raise ConfigError(f"unknown category {names}; known categories: {shown}")


def select(samples: Iterable[Sample], options: BenchmarkOptions) -> list[Sample]:
    """Apply the category filter and the limit (round-robin over labels when ``stratify``).

    Raises :class:`ConfigError` for an unknown category (see :func:`check_categories`).
    """
    samples = list(samples)
    if options.categories:
        check_categories(samples, options.categories)
    kept = [s for s in samples if category_matches(s, options.categories)]
    if options.limit is None or options.limit >= len(kept):
        return kept
    if not options.stratify:
        return kept[: options.limit]
    groups: dict[str, list[Sample]] = {}
    for sample in kept:
        groups.setdefault(sample.label or (sample.category.value if sample.category else ""), []).append(
            sample
        )
    chosen: list[Sample] = []
    queues = [list(g) for g in groups.values()]
    depth = 0
    while len(chosen) < options.limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < options.limit:
                chosen.append(queue[depth])
        depth += 1
    order = {s.key: i for i, s in enumerate(kept)}
    return sorted(chosen, key=lambda s: order[s.key])


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
