"""What a synthesis run folder holds, counted: :func:`run_status` (read-only, no lock needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from vlmguard.synth.records import SynthRecord, active_stages
from vlmguard.synth.run_folder import read_run
from vlmguard.synth.store import fold, read_events


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


def failure_counts(records: Iterable[SynthRecord]) -> dict[str, int]:
    """How many of ``records`` failed, per ``stage:kind``."""
    return dict(
        Counter(f"{r.failure.stage.value}:{r.failure.kind}" for r in records if r.failure is not None)
    )


def run_status(folder: str | Path) -> StatusReport:
    """Read a run folder (no lock needed, nothing written) and count what is there."""
    paths, manifest, seeds = read_run(folder)
    stage_names = active_stages(manifest["config"].get("verify") is not None)
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
        failures=failure_counts(failed_records),
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
