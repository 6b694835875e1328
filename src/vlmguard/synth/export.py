"""Export finished records as SFT rows in TRL's vision-language conversational format.

Each row::

    {"images": ["images/<sha256>.png"],
     "messages": [{"role": "system", "content": [{"type": "text", "text": ...}]},
                  {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]},
                  {"role": "assistant", "content": [{"type": "text", "text": ...}]}],
     "id": ..., "kind": "unsafe", "category": "drugs", "decision": "reframe"}

The system and user turns are exactly what :meth:`vlmguard.rewriter.model.ModelRewriter.build_messages`
sends, and the assistant turn is :func:`vlmguard.rewriter.format.format_rewriter_output` of the
risk report and the final prompt, so a model trained on these rows works with the model-based
rewriter as it is. Images are written next to the JSONL files, named by content hash. The split
into train and validation is by image: rows sharing any image land in the same split.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlmguard.backends.chat_format import chat_template_messages
from vlmguard.durable import atomic_write_bytes, atomic_write_text, sha256_file
from vlmguard.errors import ConfigError, ParseError
from vlmguard.synth.records import SynthRecord
from vlmguard.synth.stage_common import record_images
from vlmguard.synth.stages import final_prompt
from vlmguard.types import ImageData

PAPER_MIX = "8904:977"
"""The paper's safety : helpfulness row ratio."""


class ExportConfig(BaseModel):
    """Export settings. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")
    out: str
    mix: str | None = None
    """``SAFETY:HELPFULNESS`` row ratio (the paper: ``8904:977``); ``None`` keeps every row."""
    max_rows: int | None = Field(None, ge=1)
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    seed: int = 0
    include_refuse: bool = True
    """Keep rows whose decision is refuse (their target prompt is empty)."""

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: str | None) -> str | None:
        if value is not None:
            parse_mix(value)
        return value


def parse_mix(value: str) -> tuple[float, float]:
    """``"8904:977"`` -> ``(8904.0, 977.0)``; raises :class:`ConfigError` when malformed."""
    try:
        a, b = (float(x) for x in value.split(":"))
    except ValueError:
        raise ConfigError(f"invalid mix {value!r}: expected SAFETY:HELPFULNESS, e.g. {PAPER_MIX}") from None
    if a < 0 or b < 0 or a + b == 0:
        raise ConfigError(f"invalid mix {value!r}: both parts must be >= 0 and not both 0")
    return a, b


class ExportCard(BaseModel):
    """The dataset card's data (written as ``dataset_card.json`` and rendered as ``README.md``)."""

    created: str
    source_run: str
    rows: dict[str, int]
    kinds: dict[str, dict[str, int]]
    categories: dict[str, int]
    decisions: dict[str, int]
    available: dict[str, int]
    """Finished rows before the mix was applied, per kind."""
    skipped: dict[str, int]
    mix: str | None
    val_fraction: float
    teachers: list[str]
    models: dict[str, list[str]]
    templates: list[str]
    rewriter_template: str
    images: int
    hashes: dict[str, str]
    standin_teacher: bool


def select_mix(
    safety: list[Any], helpful: list[Any], mix: str | None, max_rows: int | None, rng: random.Random
) -> tuple[list[Any], list[Any]]:
    """Pick rows so that ``len(safety) : len(helpful)`` follows ``mix`` as closely as the data allows."""
    n_s, n_h = len(safety), len(helpful)
    if mix is not None:
        a, b = parse_mix(mix)
        if b == 0:
            n_h = 0
        elif a == 0:
            n_s = 0
        elif n_s * b >= n_h * a:
            n_s = min(n_s, round(n_h * a / b))
        else:
            n_h = min(n_h, round(n_s * b / a))
    if max_rows is not None and n_s + n_h > max_rows:
        scale = max_rows / (n_s + n_h)
        n_s, n_h = round(n_s * scale), round(n_h * scale)
        if n_s + n_h > max_rows:
            n_s -= n_s + n_h - max_rows
    pick_s = list(safety)
    pick_h = list(helpful)
    rng.shuffle(pick_s)
    rng.shuffle(pick_h)
    return pick_s[:n_s], pick_h[:n_h]


def split_by_image(
    rows: Sequence[dict[str, Any]], hashes: Sequence[list[str]], val_fraction: float, seed: int
) -> list[str]:
    """``train`` / ``validation`` for each row; rows that share an image (transitively) share a split."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys: list[str] = []
    for row, images in zip(rows, hashes, strict=True):
        items = images or [f"row:{row['id']}"]
        for other in items[1:]:
            ra, rb = find(items[0]), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        keys.append(items[0])
    out: list[str] = []
    for key in keys:
        root = find(key)
        bucket = int(hashlib.sha256(f"{seed}:{root}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        out.append("validation" if bucket < val_fraction else "train")
    return out


def _write_image(folder: Path, image: ImageData) -> str:
    ext = image.mime.split("/")[-1].replace("jpeg", "jpg")
    name = f"{image.sha256}.{ext}"
    path = folder / name
    if not path.exists():
        atomic_write_bytes(path, image.data)
    return f"images/{name}"


def export_records(
    records: Sequence[SynthRecord],
    config: ExportConfig,
    *,
    source_run: str,
    extra_hashes: dict[str, str] | None = None,
) -> ExportCard:
    """Write ``train.jsonl``, ``validation.jsonl``, ``images/`` and the dataset card into ``config.out``."""
    from vlmguard.backends.mock import MockVLM
    from vlmguard.rewriter.format import format_rewriter_output, parse_rewriter_output
    from vlmguard.rewriter.model import ModelRewriter
    from vlmguard.types import Decision

    out = Path(config.out)
    images_dir = out / "images"
    rewriter = ModelRewriter(MockVLM.echo())  # only its message layout is used
    skipped: Counter[str] = Counter()
    candidates: dict[str, list[SynthRecord]] = {"unsafe": [], "safe": []}
    for record in records:
        if record.report is None or record.failure is not None or "optimize" not in record.finished:
            skipped["unfinished_or_failed"] += 1
        elif not record.kept:
            skipped["dropped_by_verification"] += 1
        elif record.report.decision == Decision.REFUSE and not config.include_refuse:
            skipped["refuse_excluded"] += 1
        else:
            candidates[record.seed.kind].append(record)
    available = {k: len(v) for k, v in candidates.items()}
    rng = random.Random(config.seed)
    safety, helpful = select_mix(
        sorted(candidates["unsafe"], key=lambda r: r.id),
        sorted(candidates["safe"], key=lambda r: r.id),
        config.mix,
        config.max_rows,
        rng,
    )
    chosen = sorted([*safety, *helpful], key=lambda r: r.id)
    rows: list[dict[str, Any]] = []
    image_hashes: list[list[str]] = []
    for record in chosen:
        assert record.report is not None
        images = record_images(record)
        prompt = final_prompt(record)
        target = format_rewriter_output(record.report, prompt)
        try:
            parse_rewriter_output(target)
        except ParseError:
            skipped["target_unparseable"] += 1
            continue
        messages = rewriter.build_messages(record.seed.prompt, images)
        rows.append(
            {
                "images": [_write_image(images_dir, img) for img in images],
                "messages": [
                    *chat_template_messages(messages),
                    {"role": "assistant", "content": [{"type": "text", "text": target}]},
                ],
                "id": record.id,
                "kind": record.seed.kind,
                "category": record.seed.category.value if record.seed.category else None,
                "decision": record.report.decision.value,
            }
        )
        image_hashes.append([img.sha256 for img in images])
    splits = split_by_image(rows, image_hashes, config.val_fraction, config.seed)
    by_split: dict[str, list[str]] = {"train": [], "validation": []}
    seen: dict[str, set[str]] = {"train": set(), "validation": set()}
    for row, split, row_hashes in zip(rows, splits, image_hashes, strict=True):
        by_split[split].append(json.dumps(row, ensure_ascii=False) + "\n")
        seen[split].update(row_hashes)
    if seen["train"] & seen["validation"]:
        raise AssertionError("an image is in both splits")  # split_by_image guarantees this never happens
    out.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    for split, lines in by_split.items():
        path = out / f"{split}.jsonl"
        atomic_write_text(path, "".join(lines))
        hashes[path.name] = sha256_file(path)
    image_files = sorted(p for p in images_dir.glob("*") if p.is_file()) if images_dir.exists() else []
    hashes["images"] = hashlib.sha256("".join(p.name for p in image_files).encode()).hexdigest()
    hashes.update(extra_hashes or {})
    models: dict[str, set[str]] = {}
    templates: set[str] = set()
    for record in chosen:
        for stage, model in record.models.items():
            models.setdefault(stage, set()).add(model)
        templates.update(t for v in record.templates.values() for t in v.split(",") if t)
    teachers = sorted(set().union(*(models.get(s, set()) for s in ("hindsight", "causal", "optimize"))))
    card = ExportCard(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        source_run=source_run,
        rows={"train": len(by_split["train"]), "validation": len(by_split["validation"]), "total": len(rows)},
        kinds={
            s: dict(Counter(r["kind"] for r, sp in zip(rows, splits, strict=True) if sp == s))
            for s in by_split
        },
        categories=dict(Counter(r["category"] or "benign" for r in rows)),
        decisions=dict(Counter(r["decision"] for r in rows)),
        available=available,
        skipped=dict(skipped),
        mix=config.mix,
        val_fraction=config.val_fraction,
        teachers=teachers,
        models={k: sorted(v) for k, v in sorted(models.items())},
        templates=sorted(templates),
        rewriter_template=rewriter.template.id,
        images=len(image_files),
        hashes=hashes,
        standin_teacher=any("standin" in t for t in teachers),
    )
    atomic_write_text(out / "dataset_card.json", card.model_dump_json(indent=2) + "\n")
    atomic_write_text(out / "README.md", render_card(card))
    return card


def export_run(folder: str | Path, config: ExportConfig) -> ExportCard:
    """Export the finished records of a run folder."""
    from vlmguard.synth.run_folder import read_run
    from vlmguard.synth.store import fold, read_events

    paths, _, seeds = read_run(folder)
    records = fold(seeds, read_events(paths.records))
    extra = {"seeds.jsonl": sha256_file(paths.seeds)}
    if paths.records.exists():
        extra["records.jsonl"] = sha256_file(paths.records)
    return export_records(records, config, source_run=str(paths.folder.resolve()), extra_hashes=extra)


def _table(counts: dict[str, int]) -> str:
    lines = ["| value | rows |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines)


def render_card(card: ExportCard) -> str:
    """The dataset card as Markdown."""
    warning = ""
    if card.standin_teacher:
        warning = (
            "\n> **Made with the offline stand-in teacher.** These rows come from heuristics over offline "
            "evidence, not from a strong teacher VLM. Use them to test the training pipeline only; real "
            "use needs a strong teacher (e.g. InternVL2.5-38B or Qwen2-VL-72B served by vLLM).\n"
        )
    hashes = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(card.hashes.items()))
    return f"""# vlmguard rewriter SFT data
{warning}
Rows in TRL's vision-language conversational format (`images` + `messages`). The system and user
turns are the model-based rewriter's prompt (`{card.rewriter_template}`); the assistant turn is the
risk analysis followed by the rewritten prompt, in the format the rewriter parses.

- created: {card.created}
- source run: `{card.source_run}`
- rows: {card.rows["total"]} (train {card.rows["train"]}, validation {card.rows["validation"]}); \
validation fraction {card.val_fraction:g}, split by image hash (no image in both splits)
- safety : helpfulness mix: {card.mix or "all rows kept"}; available before the mix: \
{card.available.get("unsafe", 0)} safety, {card.available.get("safe", 0)} helpfulness
- images: {card.images}
- teacher(s): {", ".join(card.teachers) or "unknown"}
- templates: {", ".join(card.templates) or "none"}

## Rows per split and kind

```json
{json.dumps(card.kinds, indent=2, sort_keys=True)}
```

## Categories

{_table(card.categories)}

## Decisions

{_table(card.decisions)}

## Skipped records

{_table(card.skipped) if card.skipped else "none"}

## Data hashes (SHA-256)

| file | sha256 |
| --- | --- |
{hashes}
"""
