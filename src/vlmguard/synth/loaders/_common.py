"""Helpers shared by the seed loaders: option validation, file reading and the missing-image rule."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlmguard.errors import ConfigError, InputError
from vlmguard.eval.benchmarks.reading import iter_jsonl
from vlmguard.synth.seeds import Seed

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class SeedFileOptions(BaseModel):
    """The options every loader of image seeds takes. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")
    images: str | None = None
    """The images folder (each loader says its default)."""
    limit: int | None = Field(None, ge=1)
    """Read at most this many seeds (counted before seeds with missing images are left out)."""
    missing: Literal["error", "skip"] = "error"
    """What a missing image file does: an error naming it, or its seed is left out."""
    id_prefix: str = "seed"

    def images_folder(self, default: Path) -> Path:
        """The ``images`` folder given (``~`` expanded), else ``default``."""
        return Path(self.images).expanduser() if self.images else default


def parse_options(model: type[OptionsT], loader: str, options: dict[str, Any]) -> OptionsT:
    """Validate a loader's options; unknown keys and bad values give a :class:`ConfigError`."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        known = ", ".join(model.model_fields)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"seed loader {loader!r}: {problems} (options: {known})") from None


def existing_file(path: str, what: str) -> Path:
    """``path`` (``~`` expanded) if it is a file, else an :class:`InputError` naming ``what``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{what} not found: {p}")
    return p


def existing_dir(path: str | Path, what: str) -> Path:
    """``path`` (``~`` expanded) if it is a folder, else an :class:`InputError` naming ``what``."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{what} not found: {p}")
    return p


def read_json_or_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON list or a JSONL file (blank lines skipped); a bad line names its number."""
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return [row for _, row in iter_jsonl(path)]
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path}: every row must be a JSON object")
    return rows


def resolve_image(base: Path, name: str) -> Path:
    """``name`` (``~`` expanded) if absolute, else relative to ``base``."""
    p = Path(name).expanduser()
    return p if p.is_absolute() else base / p


def check_images(paths: Sequence[Path], loader: str, on_missing: str) -> set[Path]:
    """The missing paths among ``paths``; raises :class:`InputError` unless ``on_missing == 'skip'``."""
    missing = {p for p in paths if not p.is_file()}
    if missing and on_missing != "skip":
        example = sorted(missing)[0]
        raise InputError(
            f"{loader}: {len(missing)} of {len(paths)} image(s) are missing, e.g. {example}; "
            "point 'images' at the "
            "folder of the official download, or pass missing=skip to leave those seeds out"
        )
    return missing


def first_seeds(
    items: Iterable[tuple[Seed, Sequence[Path]]], options: SeedFileOptions, loader: str
) -> list[Seed]:
    """The first ``options.limit`` seeds of ``items`` (each with its image files), less those whose
    images are missing; a missing image is an :class:`InputError` unless ``options.missing == "skip"``."""
    chosen = list(itertools.islice(items, options.limit))
    missing = check_images(sorted({p for _, paths in chosen for p in paths}), loader, options.missing)
    return [seed for seed, paths in chosen if missing.isdisjoint(paths)]
