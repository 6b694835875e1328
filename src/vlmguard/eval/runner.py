"""Run defences x benchmarks against one target, judge every answer, store results durably, resume.

::

    spec = BenchmarkSpec(name="figstep", options=BenchmarkOptions(data=..., limit=20))
    config = RunConfig(benchmarks=[spec], defenses=["none", "vlmguard?rewriter=evidence"],
                       target="smollm2:", judge="offline")
    summary = asyncio.run(run_eval(config, Path("runs/figstep")))

The run folder holds ``manifest.json`` (every configuration and version), ``results.jsonl`` (one
durable record per judged sample) and, unless disabled, ``cache.sqlite`` (the response cache).
Re-running into the same folder resumes: samples with a record are skipped.

The configuration lives in :mod:`~vlmguard.eval.run_config`, the workers in
:mod:`~vlmguard.eval.jobs` and the manifest's content in :mod:`~vlmguard.eval.manifest`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmguard.appendlog import FolderLock
from vlmguard.backends.base import VLM
from vlmguard.defenses.base import Defense
from vlmguard.errors import ConfigError
from vlmguard.eval.benchmarks.base import BenchmarkData, load_benchmark
from vlmguard.eval.counting import CountingVLM, counting
from vlmguard.eval.jobs import Job, ProgressCallback, Runner
from vlmguard.eval.judges import Judge, load_judge
from vlmguard.eval.manifest import check_identity, now, running_manifest
from vlmguard.eval.record import ResultRecord, record_key
from vlmguard.eval.run_config import BenchmarkSpec, EvalSummary, RunConfig
from vlmguard.eval.store import ResultStore, write_manifest

__all__ = [
    "BenchmarkSpec",
    "EvalSummary",
    "ProgressCallback",
    "RunConfig",
    "build_target",
    "run_eval",
    "wrap_target",
]


def build_target(spec: str, *, retries: int, cache: Path | None) -> tuple[VLM, CountingVLM]:
    """The target stack: cache -> retry -> counter -> backend. Returns the outer model and the counter."""
    from vlmguard.backends.spec import load_backend

    return wrap_target(load_backend(spec), retries=retries, cache=cache)


def wrap_target(target: VLM, *, retries: int, cache: Path | None) -> tuple[VLM, CountingVLM]:
    """The same stack around a ready model object (tests, benchmarks, the Python API)."""
    from vlmguard.backends.retry import RetryingVLM

    counter = counting(target)
    model: VLM = counter
    if retries:
        model = RetryingVLM(model, attempts=retries + 1)
    if cache is not None:
        from vlmguard.backends.cache import CachedVLM

        model = CachedVLM(model, cache)
    return model, counter


async def run_eval(
    config: RunConfig,
    run_dir: Path,
    *,
    target: VLM | None = None,
    judge: Judge | None = None,
    defenses: dict[str, Defense] | None = None,
    defense_context: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    command: list[str] | None = None,
) -> EvalSummary:
    """Run (or resume) the evaluation ``config`` into ``run_dir``.

    ``target``, ``judge`` and ``defenses`` (spec -> object) replace the objects the specs in
    ``config`` would build (for tests and the Python API; the specs are still recorded).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    lock = FolderLock(run_dir, what="evaluation")
    lock.acquire()
    try:
        return await _run_locked(
            config, run_dir, started, target, judge, defenses, defense_context, progress, command
        )
    finally:
        lock.release()


def _plan_jobs(
    config: RunConfig,
    datasets: Sequence[BenchmarkData],
    defenses: dict[str, Defense],
    existing: dict[str, ResultRecord],
) -> tuple[list[Job], int]:
    """The jobs still to run, and how many samples already have a record that stays."""
    jobs: list[Job] = []
    already = 0
    for data in datasets:
        for spec in config.defenses:
            for sample in data.samples:
                old = existing.get(record_key(data.benchmark, spec, sample.id))
                if old is not None and not (config.retry_errors and old.status == "error"):
                    already += 1
                    continue
                attempt = old.attempt + 1 if old is not None else 1
                jobs.append(Job(data.benchmark, spec, defenses[spec], sample, attempt))
    return jobs, already


async def _run_locked(
    config: RunConfig,
    run_dir: Path,
    started: float,
    target: VLM | None,
    judge: Judge | None,
    defenses: dict[str, Defense] | None,
    defense_context: dict[str, Any] | None,
    progress: ProgressCallback | None,
    command: list[str] | None,
) -> EvalSummary:
    previous = check_identity(run_dir, config)

    datasets: list[BenchmarkData] = [load_benchmark(spec.name, spec.options) for spec in config.benchmarks]
    names = [d.benchmark for d in datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"a benchmark appears twice in one run: {', '.join(names)}")

    cache = None
    if config.use_cache:
        cache = config.cache or run_dir / "cache.sqlite"
    if target is None:
        outer, counter = build_target(config.target, retries=config.retries, cache=cache)
    else:
        outer, counter = wrap_target(target, retries=config.retries, cache=cache)
    built_judge = judge or load_judge(config.judge, retries=config.retries, cache=cache)
    context = {"backend_options": {"retries": config.retries, "cache": cache}, **(defense_context or {})}
    built: dict[str, Defense] = {}
    try:
        for spec in config.defenses:
            if defenses and spec in defenses:
                built[spec] = defenses[spec]
            else:
                from vlmguard.defenses.catalog import load_defense

                built[spec] = load_defense(spec, **context)

        store_records = ResultStore(run_dir)
        existing = store_records.open()
        store_records.close()
        jobs, already = _plan_jobs(config, datasets, built, existing)

        manifest = running_manifest(
            previous,
            config,
            target_name=outer.name,
            judge=built_judge,
            defense_names={spec: d.name for spec, d in built.items()},
            datasets=datasets,
        )
        if command is not None:
            manifest["command"] = command
        write_manifest(run_dir, manifest)

        runner = Runner(config, run_dir, outer, counter, built_judge, built, progress)
        runner.store.open()
        try:
            await runner.run(jobs)
        finally:
            await runner.store.aclose()
        manifest.update({"status": "complete", "updated": now()})
        write_manifest(run_dir, manifest)
        return EvalSummary(
            run_dir=run_dir,
            planned=len(jobs) + already,
            already_done=already,
            completed=runner.counts.completed,
            errors=runner.counts.errors,
            model_calls=counter.calls,
            judge_calls=runner.counts.judge_calls,
            wall_s=time.perf_counter() - started,
            skipped_items={d.benchmark: len(d.skipped) for d in datasets if d.skipped},
        )
    finally:
        await outer.aclose()
        await built_judge.aclose()
