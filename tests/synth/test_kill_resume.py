"""SIGKILL at random moments, then resume: each record exactly once, finished stages never asked again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from synth_testkit import write_rules, write_seed_file

N_SEEDS = 40


def _start(run_dir: Path, seeds: Path, rules: Path, calls: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "vlmguard.cli.main",
        "synth",
        "run",
        "--out",
        str(run_dir),
        "--seeds",
        f"jsonl:{seeds}",
        "--teacher",
        f"mock:rules={rules}?latency=0.02",
        "--concurrency",
        "4",
        "--call-log",
        str(calls),
        "--no-progress",
        "--json",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_mid_run_then_resume_is_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(7)
    seeds = write_seed_file(tmp_path / "data", N_SEEDS)
    rules = write_rules(tmp_path / "rules.json")
    run_dir, calls = tmp_path / "run", tmp_path / "calls.jsonl"
    store = run_dir / "records.jsonl"
    pids: list[int] = []
    kills = 0
    for round_ in range(3):
        before = _lines(store)
        proc = _start(run_dir, seeds, rules, calls)
        pids.append(proc.pid)
        deadline = time.monotonic() + 60
        while _lines(store) < before + 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
        if round_ == 1:  # as if killed in the middle of writing a line
            with store.open("ab") as fh:
                fh.write(b'{"v":1,"id":"s0001","stage":"hind')
    assert kills >= 2, "the run finished before it could be killed; make it slower"
    proc = _start(run_dir, seeds, rules, calls)
    pids.append(proc.pid)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["total"] == N_SEEDS and summary["done"] == N_SEEDS and summary["failed"] == 0

    events = [json.loads(line) for line in store.read_text().splitlines()]
    ok = [(e["id"], e["stage"]) for e in events if e["ok"]]
    assert len(ok) == len(set(ok)) == N_SEEDS * 4  # every (record, stage) finished exactly once
    assert {e["id"] for e in events} == {f"s{i:04d}" for i in range(N_SEEDS)}
    assert (run_dir / "records.jsonl.torn").exists()

    finished_by = {(e["id"], e["stage"]): e["pid"] for e in events if e["ok"]}
    order = {pid: n for n, pid in enumerate(pids)}
    log = [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]
    per_process: Counter[tuple[str, str, int]] = Counter()
    for call in log:
        key = (call["record"], call["stage"])
        # no call for a stage after the process that finished it: finished stages are never asked again
        assert order[call["pid"]] <= order[finished_by[key]], f"repeated call for finished {key}"
        per_process[(call["record"], call["stage"], call["pid"])] += 1
    for event in events:
        if event["ok"] and event["stage"] != "responses":
            assert per_process[(event["id"], event["stage"], event["pid"])] == event["calls"] == 1
    repeated = sum(1 for (r, s, p) in per_process if p != finished_by[(r, s)])
    # only work not yet durable at a kill is redone: at most 4 records in flight x 3 teacher stages each
    assert repeated <= 4 * 3 * kills
