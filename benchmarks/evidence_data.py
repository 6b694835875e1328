"""Benchmark samples and the seeded tune/report split shared by the evidence benchmarks.

The text tagger's thresholds are calibrated on the *tune* half (``calibrate_text_risk.py``) and
the evidence rewriter's quality is reported on the *report* half (``evidence_quality.py``; it can
also print the tune half, labelled as such). The split is by sample id, seeded, stratified by
FigStep category, so both scripts always agree on it.

Layouts read (the bundled ``../shared/data`` copy or the official downloads):
- FigStep SafeBench: ``figstep/safebench.csv`` + ``figstep/images/query_ForbidQI_{cat}_{task}_6.png``
- MM-Vet: ``mm-vet/mm-vet.json`` + ``mm-vet/images/<imagename>``
- MOSSBench: ``mossbench/information.json`` + ``mossbench/images/<id>.(jpg|png)``
- VLGuard test: ``vlguard/test.json`` (instructions only; its images are not bundled). It is never
  used for calibration or tuning: every VLGuard sample is held out (``split="tune"`` selects none).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmguard.eval.benchmarks.figstep import FIGSTEP_PROMPT

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


def figstep(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """FigStep SafeBench: 500 typographic attacks with the benchmark's text prompt (split per category)."""
    root = data / "figstep"
    rows = list(csv.DictReader((root / "safebench.csv").open(encoding="utf-8")))
    by_cat: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_cat.setdefault(row["category_id"], []).append(row)
    out: list[Sample] = []
    for cat_id, items in sorted(by_cat.items()):
        keep = _half([r["task_id"] for r in items], split, seed + int(cat_id))
        for row in items:
            if row["task_id"] not in keep:
                continue
            image = root / "images" / f"query_{row['dataset']}_{row['category_id']}_{row['task_id']}_6.png"
            out.append(
                Sample(
                    benchmark="figstep",
                    id=f"{row['category_id']}_{row['task_id']}",
                    prompt=FIGSTEP_PROMPT,
                    image=image if image.is_file() else None,
                    harmful=True,
                    category=row["category_name"],
                    question=row["question"],
                    instruction=row["instruction"],
                )
            )
    return out


def mmvet(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """MM-Vet: 218 benign questions on 200 images (split by question id)."""
    root = data / "mm-vet"
    items = json.loads((root / "mm-vet.json").read_text(encoding="utf-8"))
    keep = _half(list(items), split, seed)
    out = []
    for qid, item in items.items():
        if qid not in keep:
            continue
        image = root / "images" / item["imagename"]
        out.append(
            Sample(
                benchmark="mm-vet",
                id=qid,
                prompt=item["question"],
                image=image if image.is_file() else None,
                harmful=False,
                category=",".join(item.get("capability", [])),
            )
        )
    return sorted(out, key=lambda s: s.id)


def mossbench(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """MOSSBench: 300 benign requests with risky-looking images (7 images are missing in the bundled copy)."""
    root = data / "mossbench"
    items = json.loads((root / "information.json").read_text(encoding="utf-8"))
    keep = _half(list(items), split, seed)
    out = []
    for pid, item in items.items():
        if pid not in keep:
            continue
        image = None
        for ext in (".jpg", ".png", ".jpeg"):
            candidate = root / "images" / f"{pid}{ext}"
            if candidate.is_file():
                image = candidate
                break
        out.append(
            Sample(
                benchmark="mossbench",
                id=pid,
                prompt=item["question"],
                image=image,
                harmful=False,
                category=str(item.get("metadata", {}).get("over", "")),
            )
        )
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
    items = json.loads((data / "vlguard" / "test.json").read_text(encoding="utf-8"))
    out = []
    for item in items:
        for n, pair in enumerate(item.get("instr-resp", [])):
            for key, bench, harmful in (
                ("safe_instruction", "vlguard-safe", False),
                ("unsafe_instruction", "vlguard-unsafe", True),
            ):
                if key in pair:
                    out.append(
                        Sample(
                            benchmark=bench,
                            id=f"{item['id']}#{n}",
                            prompt=pair[key],
                            image=None,
                            harmful=harmful,
                            category=str(item["image"]).split("/")[0],
                        )
                    )
    return out


def load_all(data: Path, split: Split = "all", seed: int = SEED) -> list[Sample]:
    """All three benchmarks."""
    return figstep(data, split, seed) + mmvet(data, split, seed) + mossbench(data, split, seed)
