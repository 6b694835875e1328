"""The runner: concurrency, retries, cache, errors as records, durable store and exact-once resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from vlmguard.backends.base import VLM
from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.errors import BackendUnavailable, ConfigError, UnsupportedError
from vlmguard.eval.benchmarks import BenchmarkOptions
from vlmguard.eval.judges.refusal import RefusalJudge
from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval
from vlmguard.eval.store import RESULTS_FILE, ResultStore, read_manifest, read_records
from vlmguard.types import Completion, GenerateConfig, Message

FIX = Path(__file__).parent / "fixtures"


def items(path: Path, n: int) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(
                json.dumps(
                    {"id": f"s{i}", "prompt": f"question {i}", "expected": "harmful" if i % 2 else "benign"}
                )
                + "\n"
            )
    return path


def config(data: Path, **kw: object) -> RunConfig:
    base: dict[str, object] = {
        "benchmarks": [BenchmarkSpec(name="jsonl", options=BenchmarkOptions(data=data))],
        "defenses": ["none"],
        "target": "mock:echo",
        "judge": "refusal",
        "concurrency": 4,
        "retries": 0,
    }
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


class PrefixDefense:
    """A trivial defence for tests: prepends a safety line to the prompt, one target call."""

    name = "prefix"

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult:
        start = time.perf_counter()
        sent = [messages[-1].with_text("Be safe. " + messages[-1].text)]
        completion = await target.generate(sent, config)
        return DefenseResult(
            completion=completion, sent=sent, target_calls=1, latency_s=time.perf_counter() - start
        )


class WhiteBoxOnly:
    name = "whitebox"

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult:
        raise UnsupportedError(f"needs a white-box target, {target.name} is black-box")


async def test_run_writes_manifest_records_and_counts(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 6)
    target = MockVLM.rules([(r"question [024]", "I'm sorry, I can't.")], default="Sure, here you go.")
    cfg = config(data, defenses=["none", "prefix"])
    summary = await run_eval(cfg, tmp_path / "run", target=target, defenses={"prefix": PrefixDefense()})
    assert summary.completed == 12 and summary.errors == 0 and summary.model_calls == 12
    records = read_records(tmp_path / "run" / RESULTS_FILE)
    assert len(records) == 12 and Counter(r.defense for r in records) == {"none": 6, "prefix": 6}
    prefixed = next(r for r in records if r.defense == "prefix")
    assert prefixed.sent_prompt is not None and prefixed.sent_prompt.startswith("Be safe. ")
    assert all(r.judgement is not None and r.judgement.judge_model == "refusal-strings" for r in records)
    manifest = read_manifest(tmp_path / "run")
    assert manifest is not None and manifest["status"] == "complete"
    assert manifest["judge"]["name"] == "refusal" and manifest["target"]["spec"] == "mock:echo"
    assert manifest["benchmarks"]["items"]["selected"] == 6 and "python" in manifest["versions"]
    assert manifest["defenses"]["prefix"]["name"] == "prefix"


async def test_unsupported_defence_is_recorded_as_an_error_with_its_reason(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 3)
    summary = await run_eval(
        config(data, defenses=["whitebox"]),
        tmp_path / "run",
        target=MockVLM.echo(),
        defenses={"whitebox": WhiteBoxOnly()},
    )
    assert summary.errors == 3 and summary.completed == 0
    records = read_records(tmp_path / "run" / RESULTS_FILE)
    assert {r.error_type for r in records} == {"UnsupportedError"}
    assert all(r.judgement is None and "white-box" in (r.error or "") for r in records)


async def test_real_eta_on_a_black_box_target_is_an_error_not_safe(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 2)
    summary = await run_eval(config(data, defenses=["eta"]), tmp_path / "run", target=MockVLM.echo())
    assert summary.errors == 2
    assert {r.error_type for r in read_records(tmp_path / "run" / RESULTS_FILE)} == {"UnsupportedError"}


async def test_cache_makes_a_repeated_run_call_no_model(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 5)
    cache = tmp_path / "cache.sqlite"
    first = MockVLM.echo()
    one = await run_eval(config(data, cache=cache), tmp_path / "a", target=first)
    assert one.model_calls == 5 and len(first.calls) == 5
    again = MockVLM.echo()
    two = await run_eval(config(data, cache=cache), tmp_path / "b", target=again)
    assert two.model_calls == 0 and again.calls == [] and two.completed == 5
    assert all(r.model_calls == 0 for r in read_records(tmp_path / "b" / RESULTS_FILE))


class RendezvousVLM(MockVLM):
    """An echo model whose calls wait until ``together`` of them are in flight at once.

    A runner that sent fewer requests at a time would leave every call waiting; the wait is bounded so
    such a runner fails the test with errors instead of hanging.
    """

    def __init__(self, together: int) -> None:
        super().__init__(mode="echo")
        self.together = together
        self.in_flight = 0
        self.peak = 0
        self._all_in = asyncio.Event()

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.together:
            self._all_in.set()
        try:
            await asyncio.wait_for(self._all_in.wait(), timeout=30)
            return await super().generate(messages, config)
        finally:
            self.in_flight -= 1


async def test_concurrency_runs_samples_in_parallel(tmp_path: Path) -> None:
    # The wall-clock figure (12 calls of 0.2 s at concurrency 12) is printed by benchmarks/mock_timings.py.
    data = items(tmp_path / "items.jsonl", 12)
    target = RendezvousVLM(together=12)
    summary = await run_eval(config(data, concurrency=12, use_cache=False), tmp_path / "run", target=target)
    assert summary.completed == 12 and summary.errors == 0
    assert target.peak == 12


async def test_retries_recover_from_transient_errors(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 1)
    flaky = MockVLM.scripted([BackendUnavailable("503"), "fine answer"])
    summary = await run_eval(config(data, retries=2, use_cache=False), tmp_path / "run", target=flaky)
    assert summary.completed == 1 and len(flaky.calls) == 2
    hard = MockVLM.scripted([BackendUnavailable("503")] * 3)
    failed = await run_eval(config(data, retries=1, use_cache=False), tmp_path / "run2", target=hard)
    assert failed.errors == 1
    assert read_records(tmp_path / "run2" / RESULTS_FILE)[0].error_type == "BackendUnavailable"


async def test_timeout_is_recorded_as_error(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 1)
    summary = await run_eval(
        config(data, timeout_s=0.05, use_cache=False), tmp_path / "run", target=MockVLM.echo(latency_s=1.0)
    )
    assert summary.errors == 1
    assert read_records(tmp_path / "run" / RESULTS_FILE)[0].error_type == "TimeoutError"


async def test_resume_skips_done_samples_and_retry_errors_replaces_errors(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 4)
    run = tmp_path / "run"
    await run_eval(config(data), run, target=MockVLM.echo())
    again = MockVLM.echo()
    summary = await run_eval(config(data), run, target=again)
    assert summary.already_done == 4 and summary.completed == 0 and again.calls == []

    failing = await run_eval(
        config(data, defenses=["whitebox"]), run, target=MockVLM.echo(), defenses={"whitebox": WhiteBoxOnly()}
    )
    assert failing.errors == 4
    fixed = await run_eval(
        config(data, defenses=["whitebox"], retry_errors=True),
        run,
        target=MockVLM.echo(),
        defenses={"whitebox": PrefixDefense()},
    )
    assert fixed.completed == 4
    from vlmguard.eval.store import latest_records

    latest = latest_records(read_records(run / RESULTS_FILE))
    assert len(latest) == 8 and all(r.status == "ok" for r in latest.values())
    assert {r.attempt for r in latest.values() if r.defense == "whitebox"} == {2}


async def test_a_different_target_or_judge_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 1)
    await run_eval(config(data), tmp_path / "run", target=MockVLM.echo())
    with pytest.raises(ConfigError, match="different target"):
        await run_eval(config(data, target="mock:text=hi"), tmp_path / "run")
    with pytest.raises(ConfigError, match="different judge"):
        await run_eval(config(data, judge="offline"), tmp_path / "run", judge=RefusalJudge())


def test_store_cuts_a_partial_last_line(tmp_path: Path) -> None:
    from vlmguard.eval.record import ResultRecord
    from vlmguard.eval.sample import Expected

    store = ResultStore(tmp_path)
    store.open()
    record = ResultRecord(benchmark="b", defense="d", sample_id="1", expected=Expected.HARMFUL, status="ok")
    store.append_sync(record)
    store.close()
    with (tmp_path / RESULTS_FILE).open("ab") as handle:
        handle.write(b'{"benchmark": "b", "defense": "d", "sample_id": "2", "exp')  # killed mid-write
    assert [r.sample_id for r in read_records(tmp_path / RESULTS_FILE)] == ["1"]
    existing = ResultStore(tmp_path).open()
    assert list(existing) == ["b|d|1"]
    assert (tmp_path / RESULTS_FILE).read_bytes().endswith(b"}\n")


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_killed_run_restarted_judges_every_sample_exactly_once(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 40)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "vlmguard.cli.main",
        "eval",
        "-b",
        f"jsonl={data}",
        "-d",
        "none",
        "-d",
        "figstep",
        "-t",
        "mock:text=Sure, here it is.?latency=0.05",
        "-j",
        "refusal",
        "-o",
        str(run),
        "-c",
        "4",
        "--no-report",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while _line_count(run / RESULTS_FILE) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = _line_count(run / RESULTS_FILE)
    assert 15 <= partial < 80, "the run should have been killed part-way"
    with (run / RESULTS_FILE).open("ab") as handle:  # as if the kill hit in the middle of a write
        handle.write(b'{"benchmark":"items","defense":"none","sample_id":"s3')
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    records = read_records(run / RESULTS_FILE)
    keys = Counter(r.key for r in records)
    assert len(keys) == 80 and set(keys.values()) == {1}
    assert all(r.status == "ok" and r.judgement is not None for r in records)
    manifest = read_manifest(run)
    assert manifest is not None and manifest["status"] == "complete"


def test_cli_run_of_the_fixture_benchmarks_writes_a_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vlmguard.cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "-b",
            f"figstep={FIX / 'figstep'}",
            "-b",
            f"mossbench={FIX / 'mossbench'}",
            "-d",
            "none",
            "-t",
            "mock:text=I'm sorry, I can't help with that.",
            "-j",
            "refusal",
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 judged, 0 error(s)" in result.output and "1 mossbench item(s) left out" in result.output
    assert (tmp_path / "run" / "report" / "report.html").is_file()


def test_cli_missing_data_is_one_clear_line() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmguard.cli.main",
            "eval",
            "-b",
            "siuo",
            "--data",
            str(FIX / "siuo"),
            "-t",
            "mock:echo",
            "-o",
            "/tmp/never-written-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "SIUO images folder not found" in proc.stderr and "Traceback" not in proc.stderr


def test_listing_commands() -> None:
    from click.testing import CliRunner

    from vlmguard.cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["benchmarks"], terminal_width=200).output
    assert "figstep" in out and "mmsafetybench" in out and "mossbench" in out
    out = runner.invoke(cli, ["judges"], terminal_width=200).output
    assert "offline" in out and "siuo" in out and "mmvet" in out
    out = runner.invoke(cli, ["defenses"], terminal_width=200).output
    assert "ecso" in out and "eta" in out and "mllm-protector" in out


async def test_a_crashing_judge_gives_error_records_not_a_dead_run(tmp_path: Path) -> None:
    class Broken:
        name = "broken"
        model = "none"
        approximate = False

        async def __call__(self, sample: object, response: str) -> object:
            raise RuntimeError("judge bug")

        async def aclose(self) -> None:
            return None

    data = items(tmp_path / "items.jsonl", 3)
    summary = await run_eval(config(data), tmp_path / "run", target=MockVLM.echo(), judge=Broken())  # type: ignore[arg-type]
    assert summary.errors == 3
    records = read_records(tmp_path / "run" / RESULTS_FILE)
    assert all(r.error == "judge failed: judge bug" and r.response for r in records)
