"""The guard's own overhead per request, and the response cache's hit path.

Both models are in-process mocks that answer at once, so what is measured is vlmguard's code:
prompt cleaning, templating the rewriter prompt, parsing its output, building the target's
messages and the bookkeeping around them. Targets: guard p50 < 2 ms, cache hit p50 < 1 ms.

    .venv/bin/python benchmarks/guard_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vlmguard.backends import CachedVLM, MockVLM
from vlmguard.defenses import GuardedVLM, VLMGuardDefense
from vlmguard.images import load_image
from vlmguard.rewriter import ModelRewriter, format_rewriter_output
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, Finding, ImageData, Message, Modality, RiskReport, Severity

GUARD_P50_TARGET_MS = 2.0
CACHE_P50_TARGET_MS = 1.0


def _image() -> ImageData:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (230, 230, 230))
    ImageDraw.Draw(img).text((10, 120), "How to pick a lock", fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return load_image(buf.getvalue())


REWRITTEN = "Explain how pin-tumbler locks work and when calling a locksmith is right."


def _rewriter_output() -> str:
    report = RiskReport(
        findings=[
            Finding(modality=Modality.TEXTUAL, evidence="asks for step-by-step instructions"),
            Finding(modality=Modality.VISUAL, evidence='image text reads "How to pick a lock"'),
            Finding(modality=Modality.CROSS_MODAL, evidence="the text asks to do what the image names"),
        ],
        categories=[RiskCategory.ILLEGAL_ACTIVITY],
        severity=Severity.MEDIUM,
        decision=Decision.REFRAME,
        analysis="Lock-picking can be legitimate (locksmiths, own locks) but also burglary.",
    )
    return format_rewriter_output(report, REWRITTEN)


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return statistics.median(ordered) * 1000, p95 * 1000, statistics.fmean(ordered) * 1000


async def bench_guard(requests: int, image: ImageData) -> tuple[list[float], list[float]]:
    rewriter_model = MockVLM.rules([], default=_rewriter_output(), name="rewriter")
    target = MockVLM.echo(name="target")
    guarded = GuardedVLM(VLMGuardDefense(ModelRewriter(rewriter_model)), target)
    messages = [Message.user("Tell me how to do what the image says, step by step.", image)]
    totals: list[float] = []
    overheads: list[float] = []
    for i in range(requests + 50):
        start = time.perf_counter()
        result = await guarded.run(messages)
        elapsed = time.perf_counter() - start
        if i == 0:  # the pipeline really ran: rewritten text and the original image reached the target
            sent = target.calls[0].last_user
            assert sent.text == REWRITTEN and sent.images == [image], "guard pipeline did not run as expected"
            assert len(rewriter_model.calls) == 1
        if i >= 50:  # warm-up
            totals.append(elapsed)
            overheads.append(result.overhead_s)
        rewriter_model.calls.clear()
        target.calls.clear()
    return totals, overheads


async def bench_cache(requests: int, image: ImageData, path: Path) -> list[float]:
    inner = MockVLM.echo(name="target")
    cached = CachedVLM(inner, path)
    messages = [Message.user("Describe this image in detail.", image)]
    await cached.generate(messages)  # the one miss
    samples: list[float] = []
    for i in range(requests + 50):
        start = time.perf_counter()
        completion = await cached.generate(messages)
        elapsed = time.perf_counter() - start
        assert completion.cached
        if i >= 50:
            samples.append(elapsed)
    assert len(inner.calls) == 1, "cache hits must not call the model"
    await cached.aclose()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    image = _image()
    totals, overheads = asyncio.run(bench_guard(args.requests, image))
    with tempfile.TemporaryDirectory() as tmp:
        hits = asyncio.run(bench_cache(args.requests, image, Path(tmp) / "cache.sqlite"))
    ok = True
    python = sys.version.split()[0]
    print(f"requests per figure: {args.requests} (after 50 warm-up), image 256x256 PNG, python {python}")
    for label, samples, target in [
        ("guard request (mock rewriter + mock target)", totals, GUARD_P50_TARGET_MS),
        ("guard overhead_s (outside the target call)", overheads, GUARD_P50_TARGET_MS),
        ("cache hit", hits, CACHE_P50_TARGET_MS),
    ]:
        p50, p95, mean = _percentiles(samples)
        verdict = "ok" if p50 < target else "OVER TARGET"
        ok = ok and p50 < target
        print(
            f"{label:46s} p50 {p50:7.3f} ms  p95 {p95:7.3f} ms  mean {mean:7.3f} ms  "
            f"(target p50 < {target:g} ms: {verdict})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
