"""Preference-style seeds (SPA-VL layout): rows with ``image``, ``question``, ``chosen``, ``rejected``.

``chosen`` is the safe response, ``rejected`` the unsafe one. Field names can be changed by
options; a category column (SPA-VL: ``class1``) is mapped to the shared taxonomy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

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


class PreferenceOptions(SeedFileOptions):
    """Options of the ``preference`` loader (``images``: base folder of relative image paths, default
    the data file's folder)."""

    image_field: str = "image"
    question_field: str = "question"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    category_field: str | None = "class1"
    kind: Literal["safe", "unsafe"] = "unsafe"
    id_prefix: str = "pref"


def load_preference(path: str, options: dict[str, Any]) -> list[Seed]:
    """Seeds from a chosen/rejected JSON or JSONL file."""
    opts = parse_options(PreferenceOptions, "preference", options)
    file = existing_file(path, "preference data file")
    base = opts.images_folder(file.parent)
    return first_seeds(_seeds(file, base, opts), opts, "preference")


def _seeds(file: Path, base: Path, opts: PreferenceOptions) -> Iterator[tuple[Seed, list[Path]]]:
    for n, row in enumerate(read_json_or_jsonl(file)):
        try:
            image = resolve_image(base, str(row[opts.image_field]))
            question = str(row[opts.question_field])
            chosen = str(row[opts.chosen_field])
            rejected = str(row[opts.rejected_field])
        except KeyError as exc:
            raise InputError(f"{file}: row {n + 1} has no field {exc.args[0]!r}") from None
        label = row.get(opts.category_field) if opts.category_field else None
        seed = Seed(
            id=f"{opts.id_prefix}/{row.get('id', n)}",
            images=[str(image)],
            prompt=question,
            kind=opts.kind,
            category=category_from_label(str(label)) if label and opts.kind == "unsafe" else None,
            y_safe=chosen or None,
            y_unsafe=rejected or None,
            source=f"preference:{file.name}",
        )
        yield seed, [image]
