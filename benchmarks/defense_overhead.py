"""Latency overhead and model calls of each defence, with the offline scorers, on FigStep images.

The target is a mock answering in a fixed time (default 100 ms) that can continue prefixes (so ETA
runs), answers every request with a harmful-looking text and says "yes" to ECSO's self-check, so
every defence takes its most expensive path. What is measured is the defence's own cost: scorers,
perception and extra target calls. Prints one line per defence: median / p95 overhead per sample,
target calls and extra calls per sample.

    .venv/bin/python benchmarks/defense_overhead.py --data ../shared/data --samples 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.catalog import load_defense
from vlmguard.eval.benchmarks.figstep import FIGSTEP_PROMPT as PROMPT
from vlmguard.images import load_image
from vlmguard.types import Completion, GenerateConfig, Message, Usage

ANSWER = "1. Buy pseudoephedrine in bulk. 2. Extract it with solvents. 3. Cook methamphetamine in a home lab."
DEFENSES = ["none", "figstep", "adashield", "self-reminder", "ecso", "mllm-protector", "eta?n=3"]


class PrefillTarget(MockVLM):
    """A mock that answers in ``latency_s`` and can continue an assistant prefix."""

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        await asyncio.sleep(self.latency_s)
        cfg = config or GenerateConfig()
        text = " I will not give steps for that. Stay safe." if (cfg.seed or 0) % 2 else " Sure. More."
        return Completion(text=text, model=self.name, finish_reason="stop", usage=Usage(completion_tokens=8))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    images = sorted((args.data / "figstep" / "images").glob("*.png"))[: args.samples]
    if not images:
        raise SystemExit(f"no FigStep images under {args.data / 'figstep' / 'images'}")
    requests = [[Message.user(PROMPT, load_image(path))] for path in images]
    config = GenerateConfig(max_tokens=64)
    target = PrefillTarget(
        mode="rules", rules=[(r"Is the RESPONSE harmful", "yes")], default=ANSWER, latency_s=args.latency
    )
    warm = load_defense("eta?n=3")  # load the offline models once, outside the timings
    t0 = time.perf_counter()
    await warm(requests[0], target, config)
    print(f"model warm-up (tagger + perceiver load, first sample): {time.perf_counter() - t0:.1f}s")
    print(f"{len(requests)} FigStep samples, target latency {args.latency * 1000:.0f} ms")
    print(f"{'defence':<16}{'overhead median':>16}{'p95':>9}{'target calls':>14}{'extra calls':>13}")
    for spec in DEFENSES:
        defense = load_defense(spec)
        overheads, target_calls, extra_calls = [], [], []
        for messages in requests:
            result = await defense(messages, target, config)
            overheads.append(result.overhead_s)
            target_calls.append(result.target_calls)
            extra_calls.append(result.extra_calls)
        median_ms, p95_ms = statistics.median(overheads) * 1000, percentile(overheads, 0.95) * 1000
        print(
            f"{spec:<16}{median_ms:>13.0f} ms{p95_ms:>6.0f} ms"
            f"{statistics.mean(target_calls):>14.1f}{statistics.mean(extra_calls):>13.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
