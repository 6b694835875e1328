"""The benchmark protocol, shared options, filtering and the ``BENCHMARKS`` registry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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
    """The benchmark's folder (or, for the generic loader, a ``.jsonl``/``.csv`` file)."""
    images: Path | None = None
    """The images folder, where the benchmark keeps images outside its data folder (SIUO, VLGuard)."""
    limit: int | None = Field(None, ge=1)
    categories: tuple[str, ...] = ()
    """Keep only these categories: taxonomy names or the benchmark's own labels (case-insensitive)."""
    variant: str | None = None
    """A benchmark-specific variant (FigStep ``figstep``/``text``; MM-SafetyBench ``SD_TYPO``...)."""
    stratify: bool = True
    """With ``limit``: take items round-robin over categories (file order inside each), not the first N."""


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
            "figstep", "vlmguard.eval.benchmarks.figstep:FigStep",
            "FigStep SafeBench: typographic attack images",
        ),
        Entry(
            "siuo", "vlmguard.eval.benchmarks.siuo:SIUO",
            "SIUO: safe inputs, unsafe outputs (images given by --images)",
        ),
        Entry(
            "mmsafetybench", "vlmguard.eval.benchmarks.mmsafetybench:MMSafetyBench",
            "MM-SafetyBench: 13 scenarios, SD / SD_TYPO / TYPO images",
        ),
        Entry(
            "vlguard", "vlmguard.eval.benchmarks.vlguard:VLGuard",
            "VLGuard test: safe_safes, safe_unsafes, unsafes (images given by --images)",
        ),
        Entry(
            "mmvet", "vlmguard.eval.benchmarks.mmvet:MMVet",
            "MM-Vet: general capability (utility), graded 0-1",
        ),
        Entry(
            "mossbench", "vlmguard.eval.benchmarks.mossbench:MOSSBench",
            "MOSSBench: over-refusal on benign requests",
        ),
        Entry(
            "jsonl", "vlmguard.eval.benchmarks.generic:GenericJSONL",
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
    names = {w.strip().lower() for w in wanted}
    label = sample.label.lower()
    own = {label, label.split(" (")[0]} | {g.lower() for g in sample.groups}
    if sample.category is not None:
        own.add(sample.category.value)
    return bool(names & own)


def _names(sample: Sample) -> set[str]:
    label = sample.label.lower()
    own = {label, label.split(" (")[0]} | {g.lower() for g in sample.groups}
    if sample.category is not None:
        own.add(sample.category.value)
    return own - {""}


def check_categories(samples: Sequence[Sample], wanted: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a ``wanted`` category that is neither a taxonomy name nor a
    label of ``samples``, listing the known ones (a typo must not run zero samples)."""
    from vlmguard.taxonomy import RiskCategory

    known: set[str] = {c.value for c in RiskCategory}
    for sample in samples:
        known |= _names(sample)
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
