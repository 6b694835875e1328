"""The benchmark protocol, shared options, filtering and the ``BENCHMARKS`` registry."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError
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
