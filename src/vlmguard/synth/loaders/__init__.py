"""Seed loaders: official dataset layouts and generic files into :class:`~vlmguard.synth.seeds.Seed` lists.

A source is named by a spec ``LOADER:PATH[?key=value&...]`` (``vlguard:train.json?images=./imgs``)
or a mapping ``{"loader": ..., "path": ..., **options}``. Each loader validates its options and
refuses unknown ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from vlmguard.errors import ConfigError
from vlmguard.registry import Entry, Registry
from vlmguard.synth.seeds import Seed

SeedLoader = Callable[[str, dict[str, Any]], list[Seed]]
SEED_LOADERS: Registry[list[Seed]] = Registry(
    "seed loader",
    (
        Entry("vlguard", "vlmguard.synth.loaders.vlguard:load_vlguard", "VLGuard train.json + images folder"),
        Entry(
            "preference",
            "vlmguard.synth.loaders.preference:load_preference",
            "chosen/rejected JSON(L) in the SPA-VL layout (image, question, chosen, rejected)",
        ),
        Entry(
            "jsonl",
            "vlmguard.synth.loaders.generic:load_jsonl",
            "generic seed JSONL (prompt, image(s), kind, ...)",
        ),
        Entry(
            "typography",
            "vlmguard.synth.loaders.text_requests:load_typography",
            "text requests (txt/csv/jsonl) rendered into typographic images",
        ),
        Entry(
            "figstep",
            "vlmguard.synth.loaders.text_requests:load_figstep",
            "FigStep SafeBench CSV: instructions rendered by the typographic generator",
        ),
        Entry(
            "mmvet",
            "vlmguard.synth.loaders.mmvet:load_mmvet",
            "MM-Vet benign images and questions (helpfulness seeds)",
        ),
    ),
)


def parse_source(source: str | Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Split a source spec or mapping into ``(loader, path, options)``."""
    if isinstance(source, str):
        loader, sep, rest = source.partition(":")
        if not sep or not loader:
            raise ConfigError(
                f"invalid seed source {source!r}: expected LOADER:PATH[?key=value], e.g. 'jsonl:seeds.jsonl'"
            )
        path, _, query = rest.partition("?")
        return loader.strip().lower(), path, dict(parse_qsl(query, keep_blank_values=True))
    if not isinstance(source, Mapping):
        raise ConfigError(f"a seed source must be a spec string or a mapping, not {type(source).__name__}")
    options = dict(source)
    try:
        loader = str(options.pop("loader"))
        path = str(options.pop("path"))
    except KeyError as exc:
        raise ConfigError(f"seed source {dict(source)!r} needs {exc.args[0]!r}") from None
    return loader.lower(), path, options


def load_seeds(source: str | Mapping[str, Any]) -> list[Seed]:
    """Load the seeds of one source."""
    loader, path, options = parse_source(source)
    return SEED_LOADERS.get(loader)(path, options)


def loader_names() -> list[str]:
    return SEED_LOADERS.names()
