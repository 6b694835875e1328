"""VLGuard train: ``train.json`` (official layout, read by eval's VLGuard reader) + the user's images.

Each unsafe image has one instruction with GPT-4V's safe response (an unsafe seed). Each safe
image has a ``safe_instruction`` with a helpful answer (a benign seed) and an ``unsafe_instruction``
with a safe refusal (an unsafe seed whose risk comes from the text). The GPT-4V answers are the
seeds' ``y_safe``; ``y_unsafe`` is left to response collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from vlmguard.eval.benchmarks import BenchmarkOptions, load_benchmark
from vlmguard.eval.sample import Sample
from vlmguard.synth.loaders._common import (
    SeedFileOptions,
    existing_dir,
    existing_file,
    first_seeds,
    parse_options,
)
from vlmguard.synth.seeds import Seed
from vlmguard.taxonomy import RiskCategory, category_from_label


class VLGuardOptions(SeedFileOptions):
    """Options of the ``vlguard`` loader."""

    images: str
    """The folder holding the official images (``bad_ads/...``, ``HOD/...`` etc.)."""
    include: Literal["all", "unsafe", "safe"] = "all"
    id_prefix: str = "vlguard"


def _category(meta: dict[str, Any]) -> RiskCategory:
    """The taxonomy category of an unsafe image: its subcategory, else its category, else ``other``."""
    for key in ("harmful_subcategory", "harmful_category"):
        label = meta.get(key)
        if label:
            category = category_from_label(str(label))
            if category != RiskCategory.OTHER:
                return category
    return RiskCategory.OTHER


def _seed(sample: Sample, prefix: str, source: str) -> Seed:
    """A seed of one VLGuard sample: benign for a safe instruction; unsafe otherwise, with the image's
    category for an unsafe image and ``other`` for an unsafe instruction on a safe image."""
    meta = sample.meta
    safe = meta["subset"] == "safe_safes"
    category: RiskCategory | None = None
    if meta["subset"] == "unsafes":
        category = _category(meta)
    elif not safe:
        category = RiskCategory.OTHER
    return Seed(
        id=f"{prefix}/{meta['item']}/{meta['pair']}",
        images=[str(sample.image_paths[0])],
        prompt=sample.prompt,
        kind="safe" if safe else "unsafe",
        category=category,
        y_safe=sample.reference or None,
        source=source,
    )


def load_vlguard(path: str, options: dict[str, Any]) -> list[Seed]:
    """Seeds from VLGuard's ``train.json``."""
    opts = parse_options(VLGuardOptions, "vlguard", options)
    file = existing_file(path, "VLGuard train.json")
    folder = existing_dir(opts.images, "VLGuard images folder")
    data = load_benchmark("vlguard", BenchmarkOptions(data=file, images=folder, missing_images="keep"))

    def seeds() -> Iterator[tuple[Seed, list[Path]]]:
        for sample in data.samples:
            seed = _seed(sample, opts.id_prefix, f"vlguard:{file.name}")
            if opts.include == "all" or seed.kind == opts.include:
                yield seed, sample.image_paths

    return first_seeds(seeds(), opts, "vlguard")
