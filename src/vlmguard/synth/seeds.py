"""Seeds: the raw material of synthesis, one (image(s), prompt, label, responses) each."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlmguard.errors import InputError
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import ImageData

SeedKind = Literal["safe", "unsafe"]
ImageRef = str | ImageData
"""An image of a seed: a file path, or image data held in memory (e.g. a rendered typographic image)."""


class Seed(BaseModel):
    """One synthesis input.

    ``kind`` is ``unsafe`` for requests the rewriter must make safe (safety data) and ``safe`` for
    benign requests it must forward (helpfulness data). ``y_safe`` / ``y_unsafe`` are the safe and
    unsafe responses where the source has them; response collection fills in the missing ones.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    images: list[ImageRef] = Field(default_factory=list)
    prompt: str = Field(min_length=1)
    kind: SeedKind
    category: RiskCategory | None = None
    y_safe: str | None = None
    y_unsafe: str | None = None
    source: str = ""
    """Where the seed comes from (loader name and file)."""

    @field_validator("images", mode="before")
    @classmethod
    def _one_image(cls, value: object) -> object:
        if isinstance(value, str | ImageData):
            return [value]
        return value

    @property
    def image_paths(self) -> list[str]:
        return [i for i in self.images if isinstance(i, str)]

    def load_images(self) -> list[ImageData]:
        """Load and validate every image of the seed (raises :class:`vlmguard.errors.ImageError`)."""
        from vlmguard.images import load_image

        return [load_image(i) if isinstance(i, str) else i for i in self.images]

    def content_hash(self) -> str:
        """A hash of everything that defines the seed (images by path or content hash)."""
        payload = self.model_dump(mode="json", exclude={"images"})
        payload["images"] = [i if isinstance(i, str) else f"sha256:{i.sha256}" for i in self.images]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_unique_ids(seeds: Sequence[Seed]) -> None:
    """Raise :class:`InputError` when two seeds share an id."""
    seen: set[str] = set()
    dupes: list[str] = []
    for seed in seeds:
        if seed.id in seen:
            dupes.append(seed.id)
        seen.add(seed.id)
    if dupes:
        shown = ", ".join(sorted(set(dupes))[:5])
        raise InputError(f"{len(dupes)} duplicate seed id(s), e.g. {shown}; give each source its own prefix")


def materialize_images(seeds: Iterable[Seed], folder: Path) -> list[Seed]:
    """Write in-memory images of ``seeds`` to ``folder`` (named by content hash) and refer to them by path.

    Seeds whose images are all paths are returned unchanged. Files are written atomically.
    """
    from vlmguard.durable import atomic_write_bytes

    out: list[Seed] = []
    for seed in seeds:
        if all(isinstance(i, str) for i in seed.images):
            out.append(seed)
            continue
        refs: list[ImageRef] = []
        for image in seed.images:
            if isinstance(image, str):
                refs.append(image)
                continue
            ext = image.mime.split("/")[-1].replace("jpeg", "jpg")
            path = folder / f"{image.sha256}.{ext}"
            if not path.exists():
                atomic_write_bytes(path, image.data)
            refs.append(str(path.resolve()))
        out.append(seed.model_copy(update={"images": refs}))
    return out
