"""Text requests rendered into typographic images (FigStep-style seeds).

``typography``: a ``.txt`` file (one request per line), a CSV (``column``) or JSON/JSONL
(``column``). Each request is drawn with :func:`vlmguard.synth.typography.render_typography` and
paired with a text prompt (FigStep's by default). ``figstep``: FigStep SafeBench's ``safebench.csv``,
read by eval's FigStep reader, with the right columns preset (``instruction``, ``category_name``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field

from vlmguard.errors import InputError
from vlmguard.eval.benchmarks import BenchmarkOptions, load_benchmark
from vlmguard.eval.benchmarks.figstep import FIGSTEP_PROMPT
from vlmguard.synth.loaders._common import existing_file, parse_options, read_json_or_jsonl
from vlmguard.synth.seeds import Seed
from vlmguard.synth.typography import TypographyStyle, render_typography
from vlmguard.taxonomy import RiskCategory, category_from_label


class TypographyOptions(TypographyStyle):
    """Options of the ``typography`` and ``figstep`` loaders: which rows make which seeds, and the
    style of the images (every :class:`TypographyStyle` field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = "text"
    category_column: str | None = None
    category: str | None = None
    """A fixed category for every request (a taxonomy name or a benchmark label)."""
    id_column: str | None = None
    kind: Literal["safe", "unsafe"] = "unsafe"
    prompt: str = FIGSTEP_PROMPT
    limit: int | None = Field(None, ge=1)
    id_prefix: str = "typo"

    def style(self) -> TypographyStyle:
        """The image style alone."""
        return TypographyStyle.model_validate(self.model_dump(include=set(TypographyStyle.model_fields)))


def _check_column(rows: Sequence[dict[str, Any]], column: str, file: Path) -> None:
    if rows and column not in rows[0]:
        raise InputError(f"{file}: no column {column!r} (columns: {', '.join(rows[0])})")


def read_requests(file: Path, column: str) -> list[dict[str, Any]]:
    """Rows of requests: ``{column: text, ...}`` from a .txt, .csv, .json or .jsonl file."""
    suffix = file.suffix.lower()
    if suffix == ".txt":
        return [
            {column: line.strip()} for line in file.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix in (".json", ".jsonl"):
        rows = read_json_or_jsonl(file)
    else:
        raise InputError(f"{file}: request lists must be .txt, .csv, .json or .jsonl")
    _check_column(rows, column, file)
    return rows


def load_typography(path: str, options: dict[str, Any]) -> list[Seed]:
    """Render each request of ``path`` into an image and make a seed of it."""
    opts = parse_options(TypographyOptions, "typography", options)
    file = existing_file(path, "request list")
    return _render_rows(read_requests(file, opts.column), opts, f"typography:{file.name}")


def load_figstep(path: str, options: dict[str, Any]) -> list[Seed]:
    """FigStep SafeBench ``safebench.csv``: its declarative instructions rendered as typographic images.

    The rows are FigStep's samples as eval reads them, with the CSV's columns ``category_id``,
    ``task_id``, ``category_name``, ``question`` and ``instruction``.
    """
    preset = {"column": "instruction", "category_column": "category_name", "id_prefix": "figstep"}
    opts = parse_options(TypographyOptions, "figstep", {**preset, **options})
    file = existing_file(path, "FigStep safebench.csv")
    data = load_benchmark("figstep", BenchmarkOptions(data=file, variant="text"))
    rows = [
        {
            "category_id": sample.meta["category_id"],
            "task_id": sample.meta["task_id"],
            "category_name": sample.label,
            "question": sample.question,
            "instruction": sample.meta["instruction"],
        }
        for sample in data.samples
    ]
    _check_column(rows, opts.column, file)
    return _render_rows(rows, opts, f"figstep:{file.name}")


def _render_rows(rows: Sequence[dict[str, Any]], opts: TypographyOptions, source: str) -> list[Seed]:
    style = opts.style()
    fixed = category_from_label(opts.category) if opts.category else None
    seeds: list[Seed] = []
    for n, row in enumerate(rows, 1):
        text = str(row.get(opts.column) or "").strip()
        if not text:
            continue
        if opts.id_column:
            ident = str(row.get(opts.id_column, n))
        elif "category_id" in row and "task_id" in row:
            ident = f"{row['category_id']}-{row['task_id']}"
        else:
            ident = str(n)
        category: RiskCategory | None = fixed
        if category is None and opts.category_column and row.get(opts.category_column):
            category = category_from_label(str(row[opts.category_column]))
        if opts.kind == "unsafe" and category is None:
            category = RiskCategory.OTHER
        image = render_typography(text, style)
        seeds.append(
            Seed(
                id=f"{opts.id_prefix}/{ident}",
                images=[image],
                prompt=opts.prompt,
                kind=opts.kind,
                category=category if opts.kind == "unsafe" else None,
                source=source,
            )
        )
        if opts.limit is not None and len(seeds) >= opts.limit:
            break
    return seeds
