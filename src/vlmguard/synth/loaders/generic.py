"""Generic seed JSONL: one object per line with the :class:`~vlmguard.synth.seeds.Seed` fields.

``image`` (one path) or ``images`` (a list); relative paths are resolved against the file's folder
(or the ``images`` option). ``category`` may be a taxonomy name or a benchmark label. A missing
``id`` becomes ``<prefix>/<line number>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmguard.errors import InputError
from vlmguard.synth.loaders._common import (
    SeedFileOptions,
    existing_file,
    first_seeds,
    parse_options,
    read_json_or_jsonl,
    resolve_image,
)
from vlmguard.synth.seeds import Seed
from vlmguard.taxonomy import category_from_label


class JsonlOptions(SeedFileOptions):
    """Options of the ``jsonl`` loader (``images``: base folder of relative paths, default the file's)."""

    id_prefix: str = "jsonl"


def load_jsonl(path: str, options: dict[str, Any]) -> list[Seed]:
    """Seeds from a generic JSONL (or JSON list) file."""
    opts = parse_options(JsonlOptions, "jsonl", options)
    file = existing_file(path, "seed file")
    base = opts.images_folder(file.parent)
    return first_seeds(_seeds(file, base, opts), opts, "jsonl")


def _seeds(file: Path, base: Path, opts: JsonlOptions) -> Iterator[tuple[Seed, list[Path]]]:
    for n, row in enumerate(read_json_or_jsonl(file), 1):
        row = dict(row)
        images = row.pop("images", None) or ([row.pop("image")] if row.get("image") else [])
        row.pop("image", None)
        if isinstance(images, str):
            images = [images]
        paths = [resolve_image(base, str(i)) for i in images]
        row["images"] = [str(p) for p in paths]
        row.setdefault("id", f"{opts.id_prefix}/{n}")
        row.setdefault("source", f"jsonl:{file.name}")
        if row.get("category"):
            row["category"] = category_from_label(str(row["category"])).value
        try:
            yield Seed.model_validate(row), paths
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise InputError(f"{file}:{n}: {problems}") from None
