"""The synthesis run: seeds -> responses -> hindsight -> causal -> optimize (-> verify), resumable.

:func:`run_synthesis` opens (or creates) a run folder, folds the store's events over the seeds,
and runs every unfinished stage of every record with ``concurrency`` records in flight, each
finished stage made durable before the next starts. A teacher spec may name several endpoints;
calls spread over them. A rich progress bar shows records done, rate and ETA.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.backends.base import VLM
from vlmguard.durable import atomic_write_text
from vlmguard.errors import ConfigError
from vlmguard.synth.config import SynthConfig
from vlmguard.synth.records import STAGE_ORDER, StageName, SynthRecord
from vlmguard.synth.seeds import Seed, check_unique_ids, materialize_images
from vlmguard.synth.stages import (
    CausalStage,
    HindsightStage,
    OptimizeStage,
    ResponseStage,
    Stage,
    failed,
)
from vlmguard.synth.store import RecordStore, RunLock, event_for, fold, read_events
from vlmguard.types import GenerateConfig

log = logging.getLogger(__name__)

RETRYABLE_FAILURES = frozenset({"teacher", "error", "config"})
TEACHER_TEMPLATES = {
    StageName.HINDSIGHT: "synth-hindsight",
    StageName.CAUSAL: "synth-causal",
    StageName.OPTIMIZE: "synth-optimize",
}


class RunPaths:
    """The files of a run folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = self.folder / "run.json"
        self.seeds = self.folder / "seeds.jsonl"
        self.records = self.folder / "records.jsonl"
        self.images = self.folder / "images"


class RunSummary(BaseModel):
    """What one ``run_synthesis`` call did."""

    total: int
    done: int
    failed: int
    processed: int
    """Records worked on in this call."""
    teacher_calls: int
    other_calls: int = 0
    """Calls to the weak and strong models and to verification targets and judges."""
    elapsed_s: float
    records_per_s: float
    store_syncs: int = 0
    failures: dict[str, int] = Field(default_factory=dict)


def _seeds_hash(seeds: Sequence[Seed]) -> str:
    digest = hashlib.sha256()
    for seed in seeds:
        digest.update(seed.content_hash().encode())
    return digest.hexdigest()


def _template_versions() -> dict[str, int]:
    from vlmguard.prompts import load_prompt

    return {name: load_prompt(name).version for name in TEACHER_TEMPLATES.values()}


def prepare_run(config: SynthConfig) -> tuple[RunPaths, list[Seed], dict[str, Any]]:
    """Create the run folder (seeds fixed, manifest written) or open an existing one.

    On resume, the seed sources given (if any) must be those of the first run.
    """
    paths = RunPaths(config.out)
    if paths.manifest.exists():
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
        if config.seeds and config.seeds != manifest["config"].get("seeds"):
            raise ConfigError(
                f"{paths.folder} was started with other seed sources ({manifest['config'].get('seeds')}); "
                "use a new --out folder, or omit the seeds to resume"
            )
        seeds = [
            Seed.model_validate_json(line)
            for line in paths.seeds.read_text(encoding="utf-8").splitlines()
            if line
        ]
        return paths, seeds, manifest
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
        "templates": _template_versions(),
        "seeds": len(seeds),
        "seeds_sha256": _seeds_hash(seeds),
    }
    atomic_write_text(paths.manifest, json.dumps(manifest, indent=2) + "\n")
    return paths, seeds, manifest


def active_stages(verify: bool) -> tuple[StageName, ...]:
    return tuple(s for s in STAGE_ORDER if verify or s != StageName.VERIFY)


def needs_work(record: SynthRecord, stages: tuple[StageName, ...], retry_failed: bool) -> bool:
    if record.is_done(stages):
        return False
    if record.failure is None:
        return True
    return retry_failed or record.failure.kind in RETRYABLE_FAILURES


def _check_models(config: SynthConfig, records: Sequence[SynthRecord]) -> None:
    needs = Counter(
        n for r in records for n in ResponseStage.needs(r) if StageName.RESPONSES not in r.finished
    )
    if needs["weak"] and not config.weak:
        raise ConfigError(
            f"{needs['weak']} unsafe seed(s) have no unsafe response: "
            "give a weakly aligned model (--weak SPEC)"
        )
    if (needs["safe"] or needs["helpful"]) and not config.strong:
        raise ConfigError(
            f"{needs['safe'] + needs['helpful']} seed(s) have no safe/helpful response: "
            "give a strong model (--strong SPEC)"
        )
    if not config.teacher:
        raise ConfigError("no teacher: give --teacher SPEC (e.g. openai:MODEL@http://host:8000/v1)")


ProgressHook = Callable[[SynthRecord], None]


async def run_synthesis(
    config: SynthConfig, *, progress: bool = True, on_record: ProgressHook | None = None
) -> RunSummary:
    """Run (or resume) a synthesis run to the end; returns a summary."""
    from vlmguard.synth.teachers import build_model

    paths, seeds, manifest = prepare_run(config)
    verify = config.verify is not None
    stage_names = active_stages(verify)
    with RunLock(paths.folder):
        store = RecordStore(paths.records)
        events = store.open()
        models: list[tuple[VLM, Any]] = []
        teacher: VLM | None = None
        elapsed = 0.0
        done_now: list[SynthRecord] = []
        try:
            records = fold(seeds, events)
            todo = [r for r in records if needs_work(r, stage_names, config.retry_failed)]
            if todo:
                _check_models(config, todo)
            versions = manifest.get("templates", {})
            teacher_cfg = GenerateConfig(max_tokens=config.max_tokens, temperature=config.temperature)
            pa = config.parse_attempts

            built: dict[tuple[str, ...], VLM] = {}

            def make(specs: Sequence[str], role: str) -> VLM:
                if role != "teacher" and tuple(specs) in built:  # e.g. the same model as weak and strong
                    return built[tuple(specs)]
                model, counter = build_model(
                    specs,
                    timeout_s=config.timeout_s,
                    retries=config.retries,
                    call_log=config.call_log,
                    role=role,
                )
                models.append((model, counter))
                if role != "teacher":  # teacher calls are counted on their own
                    built.setdefault(tuple(specs), model)
                return model

            teacher = make(config.teacher, "teacher") if todo else None
            weak = make([config.weak], "weak") if todo and config.weak else None
            strong = make([config.strong], "strong") if todo and config.strong else None
            stages: list[Stage] = [
                ResponseStage(
                    weak=weak,
                    strong=strong,
                    attempts=config.parse_attempts,
                    config=GenerateConfig(
                        max_tokens=config.response_max_tokens, temperature=config.temperature
                    ),
                ),
                HindsightStage(
                    template_version=versions.get("synth-hindsight"), parse_attempts=pa, config=teacher_cfg
                ),
                CausalStage(
                    template_version=versions.get("synth-causal"), parse_attempts=pa, config=teacher_cfg
                ),
                OptimizeStage(
                    template_version=versions.get("synth-optimize"), parse_attempts=pa, config=teacher_cfg
                ),
            ]
            if verify and todo:
                stages.append(_verify_stage(config, make))
            start = time.perf_counter()
            done_now = await _run_records(
                todo,
                stages,
                teacher,
                store,
                concurrency=config.concurrency,
                total=len(records),
                already=len(records) - len(todo),
                progress=progress,
                on_record=on_record,
            )
            elapsed = time.perf_counter() - start
            await store.drain()
        finally:
            store.close()
            for model, _ in models:
                await model.aclose()
    final = fold(seeds, read_events(paths.records))
    done = sum(1 for r in final if r.is_done(stage_names))
    failures = Counter(f"{r.failure.stage.value}:{r.failure.kind}" for r in final if r.failure is not None)
    teacher_calls = models[0][1].calls if models and teacher is not None else 0
    other = sum(c.calls for _, c in models[1:]) if models else 0
    return RunSummary(
        total=len(final),
        done=done,
        failed=sum(failures.values()),
        processed=len(done_now),
        teacher_calls=teacher_calls,
        other_calls=other,
        elapsed_s=round(elapsed, 3),
        records_per_s=round(len(done_now) / elapsed, 3) if elapsed > 0 else 0.0,
        store_syncs=store.syncs,
        failures=dict(failures),
    )


def _verify_stage(config: SynthConfig, make: Callable[[Sequence[str], str], VLM]) -> Stage:
    from vlmguard.synth.verify import VerifyStage, load_score_judge

    assert config.verify is not None
    targets = [make([spec], f"target:{spec}") for spec in config.verify.targets]
    judge = load_score_judge(config.verify.judge, lambda spec: make([spec], "judge"))
    return VerifyStage(targets, judge, config.verify)


async def _run_records(
    todo: Sequence[SynthRecord],
    stages: Sequence[Stage],
    teacher: VLM | None,
    store: RecordStore,
    *,
    concurrency: int,
    total: int,
    already: int,
    progress: bool,
    on_record: ProgressHook | None,
) -> list[SynthRecord]:
    queue: asyncio.Queue[SynthRecord] = asyncio.Queue()
    for record in todo:
        queue.put_nowait(record)
    finished: list[SynthRecord] = []
    bar = _Progress(total, already) if progress else None

    async def process(record: SynthRecord) -> SynthRecord:
        assert teacher is not None
        record = record.model_copy(update={"failure": None})
        pending: list[asyncio.Future[None]] = []
        for stage in stages:
            if stage.name in record.finished:
                continue
            try:
                record = await stage(record, teacher)
            except Exception as exc:  # a bug or an unexpected library error: keep the run going, record it
                log.exception("record %s stage %s", record.id, stage.name.value)
                record = failed(record, stage.name, "error", f"{type(exc).__name__}: {exc}")
            # The next stage may start while this line is being synced: lines become durable in order,
            # so a crash loses at most the latest lines, and a stage whose line survives is never redone.
            pending.append(store.submit(event_for(record, stage.name, stage.fields)))
            if record.failure is not None:
                break
        await asyncio.gather(*pending)
        return record

    async def worker() -> None:
        while True:
            try:
                record = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = await process(record)
            finished.append(result)
            if bar is not None:
                bar.advance(result)
            if on_record is not None:
                on_record(result)

    try:
        if bar is not None:
            bar.start()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(todo))))))
    finally:
        if bar is not None:
            bar.stop()
    return finished


class _Progress:
    """A rich progress bar: records done of total, failures, rate (records/s) and ETA."""

    def __init__(self, total: int, already: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]synth[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task("", total=total, completed=already, rate="- rec/s")
        self.failed = 0
        self.start_t = time.perf_counter()
        self.count = 0

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def advance(self, record: SynthRecord) -> None:
        self.count += 1
        if record.failure is not None:
            self.failed += 1
        elapsed = max(1e-9, time.perf_counter() - self.start_t)
        self.progress.update(
            self.task,
            advance=1,
            description=f"failed {self.failed}",
            rate=f"{self.count / elapsed:.2f} rec/s",
        )


class StatusReport(BaseModel):
    """Counts of a run: per stage, category, decision, failure and verification outcome."""

    folder: str
    total: int
    done: int
    failed: int
    pending: int
    stages: dict[str, int]
    kinds: dict[str, int]
    categories: dict[str, int]
    decisions: dict[str, int]
    failures: dict[str, int]
    failure_examples: list[str]
    verification: dict[str, int]
    teacher_calls: int
    torn_lines_ignored: bool = False


def run_status(folder: str | Path) -> StatusReport:
    """Read a run folder (no lock needed, nothing written) and count what is there."""
    paths = RunPaths(folder)
    if not paths.manifest.exists():
        raise ConfigError(f"{paths.folder} is not a synthesis run (no run.json)")
    manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    verify = manifest["config"].get("verify") is not None
    stage_names = active_stages(verify)
    seeds = [
        Seed.model_validate_json(line)
        for line in paths.seeds.read_text(encoding="utf-8").splitlines()
        if line
    ]
    raw = paths.records.read_bytes() if paths.records.exists() else b""
    records = fold(seeds, read_events(paths.records))
    stages = {s.value: sum(1 for r in records if s in r.finished) for s in stage_names}
    failed_records = [r for r in records if r.failure is not None]
    done = [r for r in records if r.is_done(stage_names)]
    return StatusReport(
        folder=str(paths.folder),
        total=len(records),
        done=len(done),
        failed=len(failed_records),
        pending=len(records) - len(done) - len(failed_records),
        stages=stages,
        kinds=dict(Counter(r.seed.kind for r in records)),
        categories=dict(Counter((r.seed.category.value if r.seed.category else "benign") for r in records)),
        decisions=dict(Counter(r.report.decision.value for r in done if r.report is not None)),
        failures=dict(
            Counter(f"{r.failure.stage.value}:{r.failure.kind}" for r in failed_records if r.failure)
        ),
        failure_examples=[
            f"{r.id}: {r.failure.stage.value}: {r.failure.reason[:200]}"
            for r in failed_records[:5]
            if r.failure
        ],
        verification=dict(
            Counter(
                ("kept" if r.verification.kept else "dropped") for r in records if r.verification is not None
            )
        ),
        teacher_calls=sum(
            v for r in records for k, v in r.calls.items() if k in ("hindsight", "causal", "optimize")
        ),
        torn_lines_ignored=bool(raw) and not raw.endswith(b"\n"),
    )
