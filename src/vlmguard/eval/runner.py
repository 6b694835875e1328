"""Run defences x benchmarks against one target, judge every answer, store results durably, resume.

::

    spec = BenchmarkSpec(name="figstep", options=BenchmarkOptions(data=..., limit=20))
    config = RunConfig(benchmarks=[spec], defenses=["none", "vlmguard?rewriter=evidence"],
                       target="smollm2:", judge="offline")
    summary = asyncio.run(run_eval(config, Path("runs/figstep")))

The run folder holds ``manifest.json`` (every configuration and version), ``results.jsonl`` (one
durable record per judged sample) and, unless disabled, ``cache.sqlite`` (the response cache).
Re-running into the same folder resumes: samples with a record are skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.appendlog import FolderLock, is_storage_error, storage_error
from vlmguard.backends.base import VLM
from vlmguard.defenses.base import Defense, DefenseResult
from vlmguard.errors import ConfigError, VLMGuardError
from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions, load_benchmark
from vlmguard.eval.counting import CURRENT_COUNTER, CallCounter, CountingVLM, counting
from vlmguard.eval.judges import Judge, load_judge
from vlmguard.eval.judges.base import Judgement
from vlmguard.eval.record import ResultRecord, record_key
from vlmguard.eval.sample import Sample
from vlmguard.eval.store import ResultStore, read_manifest, write_manifest
from vlmguard.types import GenerateConfig

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
DEFAULT_GENERATE = GenerateConfig(max_tokens=256, temperature=0.0)
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


class BenchmarkSpec(BaseModel):
    """One benchmark of a run and its options."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    options: BenchmarkOptions


class RunConfig(BaseModel):
    """Everything that defines a run. Stored in the manifest; a resumed run must match its identity."""

    model_config = ConfigDict(extra="forbid")
    benchmarks: list[BenchmarkSpec]
    defenses: list[str] = Field(default_factory=lambda: ["none"])
    target: str = "smollm2:"
    judge: str = "offline"
    generate: GenerateConfig = DEFAULT_GENERATE
    concurrency: int = Field(4, ge=1, le=1024)
    retries: int = Field(2, ge=0, le=20)
    cache: Path | None = None
    """The response cache file; ``None``: ``<run>/cache.sqlite``."""
    use_cache: bool = True
    timeout_s: float | None = Field(None, gt=0)
    """Per-sample limit for the defended answer; a sample over it is recorded as an error."""
    retry_errors: bool = False
    """On resume, run again the samples whose record is an error (the new record replaces it)."""

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it continues."""
        return {"target": self.target, "judge": self.judge, "generate": self.generate.model_dump(mode="json")}


class RunSummary(BaseModel):
    """What one invocation of :func:`run_eval` did."""

    run_dir: Path
    planned: int
    already_done: int
    completed: int
    errors: int
    model_calls: int
    """Calls that reached the target backend in this invocation (cache hits excluded)."""
    judge_calls: int
    wall_s: float
    skipped_items: dict[str, int] = Field(default_factory=dict)
    """Benchmark items left out for incomplete data (missing images), per benchmark."""


ProgressCallback = Callable[[ResultRecord, int, int], None]


@dataclass
class _Job:
    benchmark: str
    defense_spec: str
    defense: Defense
    sample: Sample
    attempt: int = 1


@dataclass
class _Counts:
    completed: int = 0
    errors: int = 0
    judge_calls: int = 0
    done: int = 0
    total: int = 0
    judge_models: set[str] = field(default_factory=set)


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_target(spec: str, *, retries: int, cache: Path | None) -> tuple[VLM, CountingVLM]:
    """The target stack: cache -> retry -> counter -> backend. Returns the outer model and the counter."""
    from vlmguard.backends.retry import RetryingVLM
    from vlmguard.backends.spec import load_backend

    counter = counting(load_backend(spec))
    model: VLM = counter
    if retries:
        model = RetryingVLM(model, attempts=retries + 1)
    if cache is not None:
        from vlmguard.backends.cache import CachedVLM

        model = CachedVLM(model, cache)
    return model, counter


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


def _sample_fields(job: _Job) -> dict[str, Any]:
    """The fields every result record of ``job`` shares, finished or failed."""
    sample = job.sample
    return {
        "benchmark": job.benchmark,
        "defense": job.defense_spec,
        "sample_id": sample.id,
        "category": sample.category.value if sample.category else None,
        "label": sample.label,
        "groups": sample.group_labels,
        "expected": sample.expected,
    }


def _error_record(job: _Job, target: str, exc: BaseException, started: float) -> ResultRecord:
    kind = "TimeoutError" if isinstance(exc, asyncio.TimeoutError | TimeoutError) else type(exc).__name__
    message = str(exc) or kind
    return ResultRecord(
        **_sample_fields(job),
        status="error",
        error_type=kind,
        error=message,
        target=target,
        latency_s=time.perf_counter() - started,
        attempt=job.attempt,
        finished_at=time.time(),
    )


def _ok_record(
    job: _Job, target: str, result: DefenseResult, judgement: Judgement, model_calls: int, latency: float
) -> ResultRecord:
    sample = job.sample
    sent_text = None
    if result.sent:
        last_user = next((m for m in reversed(result.sent) if m.role == "user"), None)
        if last_user is not None and last_user.text != sample.prompt:
            sent_text = last_user.text
    rewrite = result.rewrite or result.completion.rewrite
    return ResultRecord(
        **_sample_fields(job),
        status="ok",
        target=target,
        response=result.completion.text,
        defense_refused=result.refused,
        decision=rewrite.decision.value if rewrite is not None else None,
        sent_prompt=sent_text,
        target_calls=result.target_calls,
        extra_calls=result.extra_calls,
        model_calls=model_calls,
        latency_s=result.latency_s or latency,
        overhead_s=result.overhead_s,
        judgement=judgement,
        attempt=job.attempt,
        finished_at=time.time(),
    )


class Runner:
    """Runs the jobs of one run folder with a fixed number of workers."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        target: VLM,
        counter: CountingVLM,
        judge: Judge,
        defenses: dict[str, Defense],
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.target = target
        self.counter = counter
        self.judge = judge
        self.defenses = defenses
        self.progress = progress
        self.store = ResultStore(run_dir)
        self.counts = _Counts()

    async def _one(self, job: _Job) -> ResultRecord:
        started = time.perf_counter()
        counter = CallCounter()
        token = CURRENT_COUNTER.set(counter)
        target_name = self.target.name
        try:
            try:
                sample = job.sample
                # Images are read and decoded off the event loop; text-only samples need no thread.
                messages = (
                    await asyncio.to_thread(sample.messages) if sample.image_paths else sample.messages()
                )
                call = job.defense(messages, self.target, self.config.generate)
                result = await (
                    asyncio.wait_for(call, self.config.timeout_s) if self.config.timeout_s else call
                )
            except (VLMGuardError, asyncio.TimeoutError, TimeoutError) as exc:
                log.info(
                    "%s %s %s: %s: %s",
                    job.benchmark,
                    job.defense_spec,
                    job.sample.id,
                    type(exc).__name__,
                    exc,
                )
                return _error_record(job, target_name, exc, started)
            except Exception as exc:
                if is_storage_error(exc):  # e.g. the response cache on a full disk: stop the run
                    raise storage_error(self.run_dir, exc) from None
                log.warning(
                    "%s %s %s failed unexpectedly:\n%s",
                    job.benchmark,
                    job.defense_spec,
                    job.sample.id,
                    traceback.format_exc(),
                )
                return _error_record(job, target_name, exc, started)
            model_calls = counter.calls
            latency = time.perf_counter() - started
        finally:
            CURRENT_COUNTER.reset(token)
        try:
            judgement = await self.judge(job.sample, result.completion.text)
        except Exception as exc:  # a failed judgement is an error record, never a silent pass
            if is_storage_error(exc):
                raise storage_error(self.run_dir, exc) from None
            if not isinstance(exc, VLMGuardError):
                log.warning(
                    "judge failed on %s %s:\n%s", job.benchmark, job.sample.id, traceback.format_exc()
                )
            record = _error_record(job, target_name, exc, started)
            return record.model_copy(
                update={"error": f"judge failed: {exc}", "response": result.completion.text}
            )
        return _ok_record(job, target_name, result, judgement, model_calls, latency)

    async def _worker(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if self.store.error is not None:
                raise self.store.error
            record = await self._one(job)
            await self.store.append(record)  # on disk at the next group fsync; raises once a write failed
            self.counts.done += 1
            if record.status == "ok":
                self.counts.completed += 1
                if record.judgement is not None:
                    self.counts.judge_calls += record.judgement.calls
            else:
                self.counts.errors += 1
            if self.progress is not None:
                self.progress(record, self.counts.done, self.counts.total)

    async def run(self, jobs: Sequence[_Job]) -> None:
        self.counts.total = len(jobs)
        queue: asyncio.Queue[_Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        workers = [
            asyncio.create_task(self._worker(queue)) for _ in range(min(self.config.concurrency, len(jobs)))
        ]
        try:
            await asyncio.gather(*workers)
            await self.store.drain()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


def _check_identity(run_dir: Path, config: RunConfig) -> dict[str, Any] | None:
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
) -> RunSummary:
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
) -> RunSummary:
    previous = _check_identity(run_dir, config)

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
        jobs: list[_Job] = []
        already = 0
        for data in datasets:
            for spec in config.defenses:
                for sample in data.samples:
                    old = existing.get(record_key(data.benchmark, spec, sample.id))
                    if old is not None and not (config.retry_errors and old.status == "error"):
                        already += 1
                        continue
                    attempt = old.attempt + 1 if old is not None else 1
                    jobs.append(_Job(data.benchmark, spec, built[spec], sample, attempt))

        manifest: dict[str, Any] = dict(previous or {})
        manifest.update(
            {
                "format": MANIFEST_FORMAT,
                "created": (previous or {}).get("created", _now()),
                "updated": _now(),
                "status": "running",
                "identity": config.identity(),
                "config": config.model_dump(mode="json"),
                "target": {"spec": config.target, "name": outer.name},
                "judge": _judge_info(built_judge, config.judge),
                "defenses": {
                    **(previous or {}).get("defenses", {}),
                    **{spec: {"name": d.name} for spec, d in built.items()},
                },
                "benchmarks": {
                    **(previous or {}).get("benchmarks", {}),
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
        if command is not None:
            manifest["command"] = command
        write_manifest(run_dir, manifest)

        runner = Runner(config, run_dir, outer, counter, built_judge, built, progress)
        runner.store.open()
        try:
            await runner.run(jobs)
        finally:
            await runner.store.aclose()
        manifest.update({"status": "complete", "updated": _now()})
        write_manifest(run_dir, manifest)
        return RunSummary(
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
