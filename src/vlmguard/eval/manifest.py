"""The content of a run's ``manifest.json``: configuration, identity, target, judge, defences,
benchmarks and the versions that shape results. :mod:`vlmguard.eval.store` reads and writes the file.
"""

from __future__ import annotations

import functools
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError
from vlmguard.eval.benchmarks.base import BenchmarkData
from vlmguard.eval.judges import Judge
from vlmguard.eval.run_config import RunConfig
from vlmguard.eval.store import read_manifest

MANIFEST_FORMAT = 1
_PACKAGES = (
    "vlmguard",
    "pydantic",
    "torch",
    "transformers",
    "onnxruntime",
    "sentence-transformers",
    "rapidocr-onnxruntime",
    "llama-cpp-python",
    "openai",
    "httpx",
    "matplotlib",
    "numpy",
)


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, Any]:
    """Python, platform and the versions of the packages that shape results (looked up once per process)."""
    found: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": found}


def now() -> str:
    """The current UTC time to the second, in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_identity(run_dir: Path, config: RunConfig) -> dict[str, Any] | None:
    """The manifest of an earlier run in ``run_dir`` (``None`` if none); a :class:`ConfigError`
    when that run's identity (target, judge, generation settings) differs from ``config``'s."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        return None
    previous = manifest.get("identity")
    if previous is not None and previous != config.identity():
        changed = [k for k in config.identity() if previous.get(k) != config.identity()[k]]
        raise ConfigError(
            f"run folder {run_dir} holds a run with a different {', '.join(changed)} "
            f"({', '.join(f'{k}={previous.get(k)!r}' for k in changed)}); "
            "use another --out to start a new run"
        )
    return manifest


def _judge_info(judge: Judge, spec: str) -> dict[str, Any]:
    return {
        "spec": spec,
        "name": judge.name,
        "model": judge.model,
        "approximate": bool(judge.approximate),
        "prompt_version": getattr(judge, "prompt_version", None),
    }


def running_manifest(
    previous: dict[str, Any] | None,
    config: RunConfig,
    *,
    target_name: str,
    judge: Judge,
    defense_names: dict[str, str],
    datasets: Sequence[BenchmarkData],
) -> dict[str, Any]:
    """The manifest of a run that starts now: ``previous`` (a resumed run's) updated with this run.

    Defences and benchmarks of the earlier run stay listed beside this run's.
    """
    earlier = previous or {}
    manifest: dict[str, Any] = dict(earlier)
    manifest.update(
        {
            "format": MANIFEST_FORMAT,
            "created": earlier.get("created", now()),
            "updated": now(),
            "status": "running",
            "identity": config.identity(),
            "config": config.model_dump(mode="json"),
            "target": {"spec": config.target, "name": target_name},
            "judge": _judge_info(judge, config.judge),
            "defenses": {
                **earlier.get("defenses", {}),
                **{spec: {"name": name} for spec, name in defense_names.items()},
            },
            "benchmarks": {
                **earlier.get("benchmarks", {}),
                **{
                    d.benchmark: {
                        "reader": spec.name,
                        "variant": d.variant,
                        "kind": d.kind,
                        "total": d.total,
                        "selected": len(d.samples),
                        "skipped": [s.model_dump() for s in d.skipped],
                        "source": d.source,
                        "options": spec.options.model_dump(mode="json"),
                    }
                    for d, spec in zip(datasets, config.benchmarks, strict=True)
                },
            },
            "versions": versions(),
        }
    )
    return manifest
