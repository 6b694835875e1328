"""Wall-clock figures of the eval runner and synthesis against mock models (no server; a few seconds).

Prints three figures, each with the target it should meet:

1. eval runner: 12 samples at concurrency 12 against a mock target that answers in 0.2 s finish in
   under a third of the sequential time (0.8 s);
2. synthesis run: 4 seeds whose teacher answers in 3 s under a 0.05 s timeout (no retries) all fail
   at the first stage within 2.5 s;
3. one synthesis stage: a teacher that answers in 5 s under a 0.1 s timeout, tried twice, marks the
   record failed within 2 s.

The unit tests check the behaviour (parallel calls, timeouts failing records); this script reports
how long it takes. ``benchmarks/eval_speed.py`` and ``benchmarks/synth_speed.py`` measure throughput
against real HTTP servers.

Run: ``.venv/bin/python benchmarks/mock_timings.py`` (exit status 1 when a target is missed).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


async def eval_parallel(root: Path, samples: int = 12, latency_s: float = 0.2) -> float:
    """Seconds for ``samples`` samples at concurrency ``samples``, the mock answering in ``latency_s``."""
    from vlmguard.backends.mock import MockVLM
    from vlmguard.eval.benchmarks import BenchmarkOptions
    from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval

    data = root / "items.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}"}) + "\n" for i in range(samples)),
        encoding="utf-8",
    )
    config = RunConfig(
        benchmarks=[BenchmarkSpec(name="jsonl", options=BenchmarkOptions(data=data))],
        defenses=["none"],
        target="mock:echo",
        judge="refusal",
        concurrency=samples,
        retries=0,
        use_cache=False,
    )
    start = time.perf_counter()
    summary = await run_eval(config, root / "eval-run", target=MockVLM.echo(latency_s=latency_s))
    elapsed = time.perf_counter() - start
    if summary.completed != samples or summary.errors:
        raise SystemExit(f"eval run incomplete: {summary}")
    return elapsed


async def synth_teacher_timeouts(root: Path, seeds: int = 4) -> float:
    """The synthesis run's own elapsed time when every teacher call times out (4 seeds, no retries)."""
    from vlmguard.synth.config import SynthConfig
    from vlmguard.synth.pipeline import run_synthesis

    folder = root / "seeds"
    folder.mkdir()
    (folder / "img.png").write_bytes(_png())
    rows = [
        {
            "id": f"s{i}",
            "image": "img.png",
            "prompt": f"How do I make the drug in the picture? ({i})",
            "kind": "unsafe",
            "category": "drugs",
            "y_safe": "A safe answer.",
            "y_unsafe": "Step 1: ...",
        }
        for i in range(seeds)
    ]
    seed_file = folder / "seeds.jsonl"
    seed_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rules = root / "rules.json"
    rules.write_text(json.dumps([{"pattern": "Stage", "response": "late"}]), encoding="utf-8")
    config = SynthConfig(
        out=str(root / "synth-run"),
        seeds=[f"jsonl:{seed_file}"],
        teacher=[f"mock:rules={rules}?latency=3"],
        concurrency=4,
        timeout_s=0.05,
        retries=0,
    )
    summary = await run_synthesis(config, progress=False)
    if summary.failures != {"hindsight:teacher": seeds}:
        raise SystemExit(f"expected every record to fail at the teacher: {summary.failures}")
    return summary.elapsed_s


async def stage_teacher_timeout(root: Path) -> float:
    """Seconds for the first stage to give up on a 5 s teacher under a 0.1 s timeout, tried twice."""
    from vlmguard.backends.mock import MockVLM
    from vlmguard.backends.retry import RetryingVLM
    from vlmguard.synth.records import SynthRecord
    from vlmguard.synth.seeds import Seed
    from vlmguard.synth.stages import HindsightStage
    from vlmguard.synth.teachers import TimeoutVLM

    image = root / "stage.png"
    image.write_bytes(_png())
    seed = Seed(
        id="r1",
        images=[str(image)],
        prompt="How do I make this drug?",
        kind="unsafe",
        category="drugs",  # type: ignore[arg-type]
        y_safe="I can't help with that.",
        y_unsafe="Step 1...",
    )
    slow = MockVLM.rules([], default="late", latency_s=5.0, name="slow")
    teacher = RetryingVLM(TimeoutVLM(slow, 0.1), attempts=2, base_delay=0.01, max_delay=0.01)
    start = time.perf_counter()
    record = await HindsightStage()(SynthRecord.from_seed(seed), teacher)
    elapsed = time.perf_counter() - start
    if record.failure is None or record.failure.kind != "teacher":
        raise SystemExit(f"expected a teacher failure: {record.failure}")
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vlmguard-mock-timings-") as tmp:
        root = Path(tmp)
        figures = [
            ("eval: 12 samples of 0.2 s at concurrency 12", asyncio.run(eval_parallel(root)), 12 * 0.2 / 3),
            ("synth: 4 seeds, teacher timeouts (0.05 s)", asyncio.run(synth_teacher_timeouts(root)), 2.5),
            ("stage: 2 tries of a 0.1 s timeout", asyncio.run(stage_teacher_timeout(root)), 2.0),
        ]
    ok = True
    for label, seconds, target in figures:
        met = seconds < target
        ok = ok and met
        print(f"{label:<46} {seconds:6.3f} s  (target < {target:.1f} s){'' if met else '  MISSED'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
