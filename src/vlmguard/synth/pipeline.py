"""The synthesis run: seeds -> responses -> hindsight -> causal -> optimize (-> verify), resumable.

:func:`run_synthesis` opens (or creates) a run folder (:mod:`.run_folder`), folds the store's events
over the seeds, and runs every unfinished stage of every record with ``concurrency`` records in
flight (:mod:`.record_workers`), each finished stage made durable before the next starts. A teacher
spec may name several endpoints; calls spread over them. A rich progress bar shows records done,
rate and ETA. :func:`vlmguard.synth.status.run_status` counts what a run folder holds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.backends.base import VLM
from vlmguard.errors import ConfigError
from vlmguard.synth.config import SynthConfig
from vlmguard.synth.record_workers import ProgressHook, run_records
from vlmguard.synth.records import StageName, SynthRecord, active_stages
from vlmguard.synth.responses import ResponseStage
from vlmguard.synth.run_folder import prepare_run
from vlmguard.synth.stage_common import Stage
from vlmguard.synth.stages import CausalStage, HindsightStage, OptimizeStage
from vlmguard.synth.status import failure_counts
from vlmguard.synth.store import RecordStore, RunLock, fold, read_events
from vlmguard.types import GenerateConfig

RETRYABLE_FAILURES = frozenset({"teacher", "error", "config"})
"""Failure kinds a resumed run retries by itself (others only with ``retry_failed``)."""


class SynthSummary(BaseModel):
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


def needs_work(record: SynthRecord, stages: tuple[StageName, ...], retry_failed: bool) -> bool:
    """Whether a run works on ``record``: unfinished, and not failed (or failed in a retryable way)."""
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


async def run_synthesis(
    config: SynthConfig, *, progress: bool = True, on_record: ProgressHook | None = None
) -> SynthSummary:
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
            done_now = await run_records(
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
    failures = failure_counts(final)
    teacher_calls = models[0][1].calls if models and teacher is not None else 0
    other = sum(c.calls for _, c in models[1:]) if models else 0
    return SynthSummary(
        total=len(final),
        done=done,
        failed=sum(failures.values()),
        processed=len(done_now),
        teacher_calls=teacher_calls,
        other_calls=other,
        elapsed_s=round(elapsed, 3),
        records_per_s=round(len(done_now) / elapsed, 3) if elapsed > 0 else 0.0,
        store_syncs=store.syncs,
        failures=failures,
    )


def _verify_stage(config: SynthConfig, make: Callable[[Sequence[str], str], VLM]) -> Stage:
    from vlmguard.synth.verify import VerifyStage, load_score_judge

    assert config.verify is not None
    targets = [make([spec], f"target:{spec}") for spec in config.verify.targets]
    judge = load_score_judge(config.verify.judge, lambda spec: make([spec], "judge"))
    return VerifyStage(targets, judge, config.verify)
