"""The files of a synthesis run folder: fixing the seeds and writing the manifest of a new run,
and reading an existing one.

A run folder holds ``run.json`` (the manifest: configuration, template versions, seed count and
hash), ``seeds.jsonl`` (the seeds, fixed when the run starts), ``records.jsonl`` (the store's event
log) and ``images/`` (in-memory seed images written to disk).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmguard.durable import atomic_write_text
from vlmguard.errors import ConfigError
from vlmguard.synth.config import SynthConfig
from vlmguard.synth.records import StageName
from vlmguard.synth.seeds import Seed, check_unique_ids, materialize_images

TEACHER_TEMPLATES = {
    StageName.HINDSIGHT: "synth-hindsight",
    StageName.CAUSAL: "synth-causal",
    StageName.OPTIMIZE: "synth-optimize",
}
"""The template each teacher stage renders (their versions are fixed in the manifest)."""


class RunPaths:
    """The files of a run folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = self.folder / "run.json"
        self.seeds = self.folder / "seeds.jsonl"
        self.records = self.folder / "records.jsonl"
        self.images = self.folder / "images"


def read_seeds(path: Path) -> list[Seed]:
    """The seeds of a ``seeds.jsonl`` file."""
    return [Seed.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_manifest(paths: RunPaths) -> dict[str, Any]:
    """The run's manifest (``run.json``)."""
    manifest: dict[str, Any] = json.loads(paths.manifest.read_text(encoding="utf-8"))
    return manifest


def read_run(folder: str | Path) -> tuple[RunPaths, dict[str, Any], list[Seed]]:
    """An existing run folder: its paths, manifest and seeds (:class:`ConfigError` when it is none)."""
    paths = RunPaths(folder)
    if not paths.manifest.exists():
        raise ConfigError(f"{paths.folder} is not a synthesis run (no run.json)")
    return paths, read_manifest(paths), read_seeds(paths.seeds)


def seeds_hash(seeds: Sequence[Seed]) -> str:
    """One SHA-256 over the content hashes of ``seeds``, in order."""
    digest = hashlib.sha256()
    for seed in seeds:
        digest.update(seed.content_hash().encode())
    return digest.hexdigest()


def template_versions() -> dict[str, int]:
    """The current version of each teacher stage's template."""
    from vlmguard.prompts import load_prompt

    return {name: load_prompt(name).version for name in TEACHER_TEMPLATES.values()}


def prepare_run(config: SynthConfig) -> tuple[RunPaths, list[Seed], dict[str, Any]]:
    """Create the run folder (seeds fixed, manifest written) or open an existing one.

    On resume, the seed sources given (if any) must be those of the first run.
    """
    paths = RunPaths(config.out)
    if paths.manifest.exists():
        manifest = read_manifest(paths)
        if config.seeds and config.seeds != manifest["config"].get("seeds"):
            raise ConfigError(
                f"{paths.folder} was started with other seed sources ({manifest['config'].get('seeds')}); "
                "use a new --out folder, or omit the seeds to resume"
            )
        return paths, read_seeds(paths.seeds), manifest
    if not config.seeds:
        raise ConfigError(
            f"{paths.folder} is not a synthesis run yet: give seed sources (--seeds LOADER:PATH)"
        )
    from vlmguard.synth.loaders import load_seeds

    seeds = []
    for source in config.seeds:
        seeds.extend(load_seeds(source))
    if config.limit is not None:
        seeds = seeds[: config.limit]
    if not seeds:
        raise ConfigError("the seed sources gave no seeds")
    check_unique_ids(seeds)
    seeds = materialize_images(seeds, paths.images)
    paths.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.seeds, "".join(s.model_dump_json() + "\n" for s in seeds))
    manifest = {
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.model_dump(mode="json", exclude={"retry_failed", "call_log"}),
        "templates": template_versions(),
        "seeds": len(seeds),
        "seeds_sha256": seeds_hash(seeds),
    }
    atomic_write_text(paths.manifest, json.dumps(manifest, indent=2) + "\n")
    return paths, seeds, manifest
