"""The run: stages over many records, resume without repeated calls, pools, config, status, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from synth_testkit import write_rules, write_seed_file

from vlmguard.backends.mock import MockVLM
from vlmguard.cli.main import cli
from vlmguard.errors import ConfigError
from vlmguard.synth.config import SynthConfig, load_config
from vlmguard.synth.pipeline import run_synthesis
from vlmguard.synth.status import run_status
from vlmguard.synth.store import read_events
from vlmguard.synth.teachers import TeacherPool


def _config(tmp_path: Path, n: int = 12, **kw: object) -> SynthConfig:
    seeds = write_seed_file(tmp_path / "data", n)
    rules = write_rules(tmp_path / "rules.json")
    base: dict[str, object] = {
        "out": str(tmp_path / "run"),
        "seeds": [f"jsonl:{seeds}"],
        "teacher": [f"mock:rules={rules}"],
        "concurrency": 4,
    }
    base.update(kw)
    return SynthConfig.model_validate(base)


async def test_run_then_resume_makes_no_more_calls(tmp_path: Path) -> None:
    config = _config(tmp_path, call_log=str(tmp_path / "calls.jsonl"))
    summary = await run_synthesis(config, progress=False)
    assert (summary.total, summary.done, summary.failed, summary.processed) == (12, 12, 0, 12)
    assert summary.teacher_calls == 36  # exactly 3 per record
    events = read_events(tmp_path / "run" / "records.jsonl")
    pairs = [(e["id"], e["stage"]) for e in events]
    assert len(pairs) == len(set(pairs)) == 48  # responses + 3 stages, each once
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 36 and {c["stage"] for c in calls} == {"hindsight", "causal", "optimize"}
    again = await run_synthesis(config.model_copy(update={"seeds": []}), progress=False)
    assert again.processed == 0 and again.teacher_calls == 0 and again.done == 12
    status = run_status(tmp_path / "run")
    assert status.done == 12 and status.stages == {
        "responses": 12,
        "hindsight": 12,
        "causal": 12,
        "optimize": 12,
    }
    assert status.decisions == {"forward": 3, "reframe": 9}
    assert status.kinds == {"safe": 3, "unsafe": 9} and status.categories == {"benign": 3, "drugs": 9}
    assert status.teacher_calls == 36


async def test_resume_with_other_seeds_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, n=2)
    await run_synthesis(config, progress=False)
    with pytest.raises(ConfigError, match="other seed sources"):
        await run_synthesis(config.model_copy(update={"seeds": ["jsonl:/elsewhere.jsonl"]}), progress=False)


async def test_failed_parse_records_stay_failed_until_retry_failed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"pattern": "Stage", "response": "I refuse to use tags."}]))
    config = _config(tmp_path, n=3, teacher=[f"mock:rules={bad}"], parse_attempts=2)
    summary = await run_synthesis(config, progress=False)
    assert summary.failed == 3 and summary.failures == {"hindsight:parse": 3}
    assert summary.teacher_calls == 6  # 2 attempts each, bounded
    status = run_status(tmp_path / "run")
    assert (
        status.failures == {"hindsight:parse": 3} and "no <risk_features> block" in status.failure_examples[0]
    )
    again = await run_synthesis(config.model_copy(update={"seeds": []}), progress=False)
    assert again.teacher_calls == 0  # parse failures are final unless asked
    rules = write_rules(tmp_path / "rules.json")
    fixed = await run_synthesis(
        config.model_copy(update={"seeds": [], "retry_failed": True, "teacher": [f"mock:rules={rules}"]}),
        progress=False,
    )
    assert fixed.done == 3 and fixed.failed == 0 and fixed.teacher_calls == 9


async def test_teacher_timeouts_fail_records_then_resume_retries_them(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.json")
    config = _config(tmp_path, n=4, teacher=[f"mock:rules={rules}?latency=3"], timeout_s=0.05, retries=0)
    summary = await run_synthesis(config, progress=False)
    assert summary.failed == 4 and summary.failures == {"hindsight:teacher": 4}
    # how quickly the timeouts end the run is printed by benchmarks/mock_timings.py
    ok = await run_synthesis(
        config.model_copy(update={"seeds": [], "teacher": [f"mock:rules={rules}"]}), progress=False
    )
    assert ok.done == 4 and ok.processed == 4


async def test_missing_response_models_are_a_config_error(tmp_path: Path) -> None:
    seeds = write_seed_file(tmp_path / "data", 3, with_responses=False)
    config = SynthConfig(out=str(tmp_path / "run"), seeds=[f"jsonl:{seeds}"], teacher=["mock:echo"])
    with pytest.raises(ConfigError, match="--weak"):
        await run_synthesis(config, progress=False)


async def test_responses_are_collected_once(tmp_path: Path) -> None:
    seeds = write_seed_file(tmp_path / "data", 4, with_responses=False)
    rules = write_rules(tmp_path / "rules.json")
    config = SynthConfig(
        out=str(tmp_path / "run"),
        seeds=[f"jsonl:{seeds}"],
        teacher=[f"mock:rules={rules}"],
        weak="mock:text=Sure, here is how",
        strong="mock:text=A safe answer.",
    )
    summary = await run_synthesis(config, progress=False)
    assert summary.done == 4 and summary.teacher_calls == 12
    assert summary.other_calls == 3 * 2 + 1  # 3 unsafe seeds x (weak + strong), 1 benign x strong


async def test_pool_spreads_calls_over_endpoints() -> None:
    a = MockVLM.rules([], default="a", latency_s=0.01, name="a")
    b = MockVLM.rules([], default="b", latency_s=0.01, name="b")
    pool = TeacherPool([a, b])
    import asyncio

    from vlmguard.types import Message

    await asyncio.gather(*(pool.generate([Message.user("x")]) for _ in range(20)))
    assert len(a.calls) == 10 and len(b.calls) == 10
    assert pool.name == "pool(a,b)"


def test_config_is_strict_and_layered(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("out: run\nteacher: mock:echo\nconcurrency: 3\n")
    config = load_config(yaml_file, {"concurrency": 7, "weak": None})
    assert config.concurrency == 7 and config.teacher == ["mock:echo"]
    yaml_file.write_text("out: run\nteachr: mock:echo\n")
    with pytest.raises(ConfigError, match="teachr: unknown key"):
        load_config(yaml_file, {})
    with pytest.raises(ConfigError, match=r"verify\.judge"):
        load_config(None, {"out": "x", "verify": {"targets": ["mock:echo"]}})


def test_cli_run_status_export(tmp_path: Path) -> None:
    seeds = write_seed_file(tmp_path / "data", 6)
    rules = write_rules(tmp_path / "rules.json")
    runner = CliRunner()
    run_dir = tmp_path / "run"
    result = runner.invoke(
        cli,
        [
            "synth",
            "run",
            "--out",
            str(run_dir),
            "--seeds",
            f"jsonl:{seeds}",
            "--teacher",
            f"mock:rules={rules}",
            "--no-progress",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["done"] == 6 and summary["teacher_calls"] == 18
    result = runner.invoke(cli, ["synth", "status", str(run_dir), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["done"] == 6
    result = runner.invoke(cli, ["synth", "status", str(run_dir)])
    assert result.exit_code == 0 and "6 records" in result.output and "forward" in result.output
    result = runner.invoke(cli, ["synth", "export", str(run_dir), "--out", str(tmp_path / "sft"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"]["total"] == 6
    result = runner.invoke(
        cli,
        [
            "synth",
            "render-typography",
            "--text",
            "Steps to do X.",
            "--out",
            str(tmp_path / "typo"),
            "--width",
            "128",
            "--height",
            "128",
            "--font-size",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "typo" / "00001.png").is_file() and (tmp_path / "typo" / "index.jsonl").is_file()
