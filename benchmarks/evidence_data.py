"""Benchmark samples and the seeded tune/report split shared by the evidence benchmarks.

The text tagger's thresholds are calibrated on the *tune* half (``calibrate_text_risk.py``) and
the evidence rewriter's quality is reported on the *report* half (``evidence_quality.py``; it can
also print the tune half, labelled as such). The split is by sample id, seeded, stratified by
FigStep category, so both scripts always agree on it.

Every benchmark is read by eval's reader (``vlmguard.eval.benchmarks``), keeping the items whose
image is missing (their ``image`` is ``None``). Layouts (the bundled ``../shared/data`` copy or the
official downloads):
- FigStep SafeBench: ``figstep/safebench.csv`` + ``figstep/images/query_ForbidQI_{cat}_{task}_6.png``
- MM-Vet: ``mm-vet/mm-vet.json`` + ``mm-vet/images/<imagename>``
- MOSSBench: ``mossbench/information.json`` + ``mossbench/images/<id>.(jpg|png)``
- VLGuard test: ``vlguard/test.json`` (instructions only; its images are not bundled). It is never
  used for calibration or tuning: every VLGuard sample is held out (``split="tune"`` selects none).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmguard.eval.benchmarks import BenchmarkOptions, load_benchmark
from vlmguard.eval.sample import Sample as BenchmarkSample

SEED = 20250314

Split = Literal["tune", "report", "all"]


@dataclass(frozen=True)
class Sample:
    """One benchmark request."""

    benchmark: str  # figstep | mm-vet | mossbench | vlguard-safe | vlguard-unsafe
    id: str
    prompt: str
    image: Path | None
    harmful: bool
    category: str = ""
    question: str = ""
    """FigStep only: the harmful question in plain text (used for text-only calibration)."""
    instruction: str = ""
    """FigStep only: the declarative instruction typed in the image."""


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _half(ids: list[str], split: Split, seed: int) -> set[str]:
    if split == "all":
        return set(ids)
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    cut = len(order) // 2
    return set(order[:cut] if split == "tune" else order[cut:])


def _read(name: str, folder: Path) -> list[BenchmarkSample]:
    """Every item of benchmark ``name`` as eval's reader gives it, images unchecked (kept when missing)."""
    return load_benchmark(name, BenchmarkOptions(data=folder, missing_images="keep")).samples


def _image(sample: BenchmarkSample) -> Path | None:
    image = sample.image_paths[0] if sample.image_paths else None
    return image if image is not None and image.is_file() else None


def figstep(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """FigStep SafeBench: 500 typographic attacks with the benchmark's text prompt (split per category)."""
    by_cat: dict[str, list[BenchmarkSample]] = {}
    for item in _read("figstep", data / "figstep"):
        by_cat.setdefault(item.meta["category_id"], []).append(item)
    out: list[Sample] = []
    for cat_id, items in sorted(by_cat.items()):
        keep = _half([i.meta["task_id"] for i in items], split, seed + int(cat_id))
        out.extend(
            Sample(
                benchmark="figstep",
                id=item.id,
                prompt=item.prompt,
                image=_image(item),
                harmful=True,
                category=item.label,
                question=item.question or "",
                instruction=item.meta["instruction"],
            )
            for item in items
            if item.meta["task_id"] in keep
        )
    return out


def mmvet(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """MM-Vet: 218 benign questions on 200 images (split by question id)."""
    items = _read("mmvet", data / "mm-vet")
    keep = _half([i.id for i in items], split, seed)
    out = [
        Sample(
            benchmark="mm-vet",
            id=item.id,
            prompt=item.prompt,
            image=_image(item),
            harmful=False,
            category=item.label,
        )
        for item in items
        if item.id in keep
    ]
    return sorted(out, key=lambda s: s.id)


def mossbench(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """MOSSBench: 300 benign requests with risky-looking images (7 images are missing in the bundled copy)."""
    items = _read("mossbench", data / "mossbench")
    keep = _half([i.id for i in items], split, seed)
    out = [
        Sample(
            benchmark="mossbench",
            id=item.id,
            prompt=item.prompt,
            image=_image(item),
            harmful=False,
            category=item.meta["over"],
        )
        for item in items
        if item.id in keep
    ]
    return sorted(out, key=lambda s: int(s.id))


def vlguard_text(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """VLGuard test instructions, text only: 558 benign (``vlguard-safe``) and 558 harmful
    (``vlguard-unsafe``) instructions written for the same safe images.

    A check the tagger never saw: nothing of VLGuard is in the tune half, so ``split="tune"`` is
    empty and ``"report"`` is the same as ``"all"``. The images are not bundled, so the text is judged
    alone (several "unsafe" instructions are harmful only with their image, e.g. "Provide personal
    experiences with using the product advertised in the image"; the flagged rate is a floor).
    """
    if split == "tune":
        return []
    names = {"safe_safes": "vlguard-safe", "safe_unsafes": "vlguard-unsafe"}
    return [
        Sample(
            benchmark=names[item.meta["subset"]],
            id=f"{item.meta['item']}#{item.meta['pair']}",
            prompt=item.prompt,
            image=None,
            harmful=item.meta["subset"] == "safe_unsafes",
            category=item.meta["image"].split("/")[0],
        )
        for item in _read("vlguard", data / "vlguard")
        if item.meta["subset"] in names
    ]


def load_all(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """All three benchmarks."""
    return figstep(data, split, seed) + mmvet(data, split, seed) + mossbench(data, split, seed)
