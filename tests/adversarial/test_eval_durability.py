"""eval durability: a garbage last line, one writer per folder, a full disk stops the run cleanly."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from vlmguard.appendlog import FolderLock, FolderLocked, StorageError
from vlmguard.backends.mock import MockVLM
from vlmguard.eval.benchmarks import BenchmarkOptions
from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval
from vlmguard.eval.store import RESULTS_FILE, ResultStore, read_records
from vlmguard.types import Completion, GenerateConfig, Message


def items(path: Path, n: int) -> Path:
    lines = [json.dumps({"id": f"s{i}", "prompt": f"question {i}", "expected": "benign"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(data: Path, **kw: object) -> RunConfig:
    base: dict[str, object] = {
        "benchmarks": [BenchmarkSpec(name="jsonl", options=BenchmarkOptions(data=data))],
        "defenses": ["none"],
        "target": "mock:echo",
        "judge": "refusal",
        "concurrency": 2,
        "retries": 0,
        "use_cache": False,
    }
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", [b"\x00\x01garbage that is not JSON\n", b'{"benchmark": 5}\n', b"}{\n"])
async def test_garbage_last_line_is_set_aside_and_the_run_resumes(tmp_path: Path, garbage: bytes) -> None:
    data = items(tmp_path / "items.jsonl", 6)
    run = tmp_path / "run"
    await run_eval(config(data), run)
    results = run / RESULTS_FILE
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:-1]) + garbage)  # the last record replaced by garbage
    assert len(read_records(results)) == 5  # readers skip it
    summary = await run_eval(config(data), run)
    assert summary.already_done == 5 and summary.completed == 1
    assert (run / (RESULTS_FILE + ".torn")).read_bytes() == garbage
    keys = Counter(r.key for r in read_records(results))
    assert len(keys) == 6 and set(keys.values()) == {1}


async def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 2)
    run = tmp_path / "run"
    with FolderLock(run, what="evaluation"), pytest.raises(FolderLocked, match=r"evaluation: pid \d+"):
        await run_eval(config(data), run)
    assert not (run / RESULTS_FILE).exists()
    summary = await run_eval(config(data), run)  # released: the run goes ahead
    assert summary.completed == 2


def test_a_second_cli_run_on_the_same_folder_gets_one_line(tmp_path: Path) -> None:
    data = items(tmp_path / "items.jsonl", 2)
    run = tmp_path / "run"
    code = (
        "import sys, time; from vlmguard.appendlog import FolderLock; "
        f"lock = FolderLock(__import__('pathlib').Path({str(run)!r}), what='evaluation'); lock.acquire(); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "vlmguard.cli.main",
                "eval",
                "-b",
                f"jsonl={data}",
                "-d",
                "none",
                "-t",
                "mock:echo",
                "-j",
                "refusal",
                "-o",
                str(run),
                "--no-report",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.communicate("", timeout=30)
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "in use by another evaluation" in lines[0] and f"pid {holder.pid}" in lines[0]
    assert "Traceback" not in second.stderr


async def test_a_failed_write_stops_the_run_and_the_next_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = items(tmp_path / "items.jsonl", 30)
    run = tmp_path / "run"
    real = ResultStore._write_durable
    writes = {"n": 0}

    def full_after_three(self: ResultStore, payload: bytes) -> None:
        writes["n"] += 1
        if writes["n"] > 3:
            os_error = OSError(errno.ENOSPC, "No space left on device")
            raise os_error
        real(self, payload)

    monkeypatch.setattr(ResultStore, "_write_durable", full_after_three)
    with pytest.raises(StorageError, match="No space left on device"):
        await run_eval(config(data, concurrency=1, target="mock:text=ok?latency=0.01"), run)
    kept = read_records(run / RESULTS_FILE)
    assert len(kept) == 3  # everything finished and synced before the failure is there
    assert writes["n"] <= 5  # the run stopped at the failure instead of working through 30 samples
    monkeypatch.setattr(ResultStore, "_write_durable", real)
    summary = await run_eval(config(data, target="mock:text=ok?latency=0.01"), run)
    assert summary.already_done == 3 and summary.completed == 27
    keys = Counter(r.key for r in read_records(run / RESULTS_FILE))
    assert len(keys) == 30 and set(keys.values()) == {1}


class FullCacheTarget(MockVLM):
    """A target whose response cache is on a full disk (sqlite reports it on every call)."""

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        raise sqlite3.OperationalError("database or disk is full")


async def test_a_full_disk_in_the_cache_stops_the_run_without_a_traceback_per_sample(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = items(tmp_path / "items.jsonl", 20)
    with pytest.raises(StorageError, match="disk is full"):
        await run_eval(config(data), tmp_path / "run", target=FullCacheTarget.echo())
    assert "Traceback" not in caplog.text
    assert read_records(tmp_path / "run" / RESULTS_FILE) == []
