"""Cost amplification against the proxy: the worst allowed request, and text latency under an image flood.

Runs the proxy app in this process (the fake upstream behind it, in-process too) with the default
``evidence`` rewriter (``--rewriter mock`` for a stand-in that decodes and downsizes every image
the way the perceiver does, without the models) and prints, in one run:

1. the analysis time and the peak memory growth (RSS sampled every 5 ms) of a request with one
   image, and of the worst request the limits allow: ``limits.max_images`` images holding
   ``limits.max_request_pixels`` pixels in all, each full of text; plus what becomes of the request
   that used to pass (8 images at the per-image limit): refused with its code;
2. text-only requests' latency (p50 / p95) alone, then while ``--flooders`` clients send the worst
   allowed image request in a loop (their 200 / 429 / 503 counts are printed). Target: text p95
   under the flood within 2x of the p95 without it.

Run: ``.venv/bin/python benchmarks/proxy_overload.py [--rewriter evidence|mock] [--text-requests 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from vlmguard.server.app import create_app
from vlmguard.server.config import ProxyConfig
from vlmguard.server.fake_upstream import FakeUpstream
from vlmguard.types import Decision, ImageData, Rewrite, RiskReport, Severity

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakRSS:
    """Samples this process's RSS in a thread; ``peak - start`` is the growth during the block."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


class DecodingRewriter:
    """A stand-in for the evidence rewriter: decodes each image and downsizes it like the perceiver."""

    name = "decoding-stand-in"

    async def rewrite(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        return await asyncio.to_thread(self._work, prompt, list(images))

    def _work(self, prompt: str, images: list[ImageData]) -> Rewrite:
        from PIL import Image

        from vlmguard.images import to_pil

        for image in images:
            pil = to_pil(image)
            pil.thumbnail((1600, 1600), Image.Resampling.BILINEAR)
        report = RiskReport(decision=Decision.FORWARD, severity=Severity.NONE, analysis="stand-in")
        return Rewrite(original_prompt=prompt, prompt=prompt, report=report, rewriter=self.name)


def text_image(width: int, height: int, seed: int) -> str:
    """A PNG data URI of ``width`` x ``height`` covered in lines of text (work for OCR)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    words = ["how", "to", "make", "a", "bomb", "step", "one", "mix", "the", "powder", "and", "wire"]
    for row, y in enumerate(range(8, height - 16, 22)):
        line = " ".join(words[(row * 7 + i + seed) % len(words)] for i in range(width // 36))
        draw.text((8, y), line, fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def body(text: str, images: Sequence[str] = ()) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in images]
    content.append({"type": "text", "text": text})
    return {"model": "fake-vlm", "messages": [{"role": "user", "content": content}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(client: httpx.AsyncClient, payload: dict[str, Any] | bytes) -> tuple[int, float, Any]:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    start = time.perf_counter()
    response = await client.post(
        "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}
    )
    return response.status_code, time.perf_counter() - start, response.json()


async def text_latencies(
    client: httpx.AsyncClient, n: int, stop: asyncio.Event | None = None
) -> tuple[list[float], list[float]]:
    """Each text request's latency, and the share of it the guard's analysis took (both in seconds)."""
    out, analysis = [], []
    for i in range(n):
        status, seconds, data = await timed(client, body(f"What is a good name for a cat, number {i}?"))
        assert status == 200, data
        out.append(seconds)
        analysis.append(data.get("vlmguard", {}).get("latency", {}).get("rewrite_ms", float("nan")) / 1000)
    if stop is not None:
        stop.set()
    return out, analysis


async def flooder(client: httpx.AsyncClient, payload: bytes, stop: asyncio.Event, seen: Counter[int]) -> None:
    while not stop.is_set():
        status, _, _ = await timed(client, payload)
        seen[status] += 1
        if status != 200:
            retry = 0.2 if status in (429, 503) else 1.0
            await asyncio.sleep(retry)


async def main(args: argparse.Namespace) -> None:
    config = ProxyConfig.from_dict({"upstream": {"urls": ["http://upstream.test/v1"]}, "rate_limit": None})
    limits = config.limits
    if args.rewriter == "mock":
        rewriter: Any = DecodingRewriter()
    else:
        from vlmguard.rewriter.load import load_rewriter

        print("loading the evidence rewriter ...", flush=True)
        rewriter = load_rewriter("evidence")
        warm = getattr(rewriter, "warmup", None)
        if warm is not None:
            await asyncio.to_thread(warm)
    app = create_app(config, rewriter=rewriter, upstream_transport=httpx.ASGITransport(app=FakeUpstream()))
    per_side = int((limits.max_request_pixels / limits.max_images) ** 0.5)
    print(
        f"rewriter: {getattr(rewriter, 'name', '?')}; limits: {limits.max_images} images, "
        f"{limits.max_image_pixels:,} px each, {limits.max_request_pixels:,} px per request; "
        f"image lane concurrency {config.admission.image.concurrency}, "
        f"waiting {config.admission.image.max_waiting}"
    )
    one = [text_image(760, 760, 0)]
    worst = [text_image(per_side, per_side, i) for i in range(limits.max_images)]
    side_old = int(limits.max_image_pixels**0.5)
    old_worst = [text_image(side_old, side_old, 0)] * limits.max_images
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://proxy.test", timeout=600) as client,
    ):
        await timed(client, body("warm up", one))
        rows = []
        cases = (("1 image 760x760", one), (f"{len(worst)} images {per_side}x{per_side}", worst))
        for label, images in cases:
            with PeakRSS() as peak:
                status, seconds, data = await timed(client, body("Read the text in these images.", images))
            rewrite_ms = data.get("vlmguard", {}).get("latency", {}).get("rewrite_ms", float("nan"))
            rows.append((label, status, seconds, rewrite_ms / 1000, peak.growth_mb))
        print("\n1. one request at a time")
        print(f"   {'request':<28} {'status':>6} {'total s':>9} {'analysis s':>11} {'peak RSS +MB':>13}")
        for label, status, seconds, analysis, growth in rows:
            print(f"   {label:<28} {status:>6} {seconds:>9.2f} {analysis:>11.2f} {growth:>13.1f}")
        print(
            f"   worst / one image: analysis x{rows[1][3] / rows[0][3]:.1f}, peak RSS x"
            f"{rows[1][4] / max(rows[0][4], 0.1):.1f}"
        )
        status, seconds, data = await timed(client, body("x", old_worst))
        print(
            f"   {len(old_worst)} images {side_old}x{side_old} (each within the per-image limit): "
            f"{status} {data.get('error', {}).get('code')} in {seconds:.2f} s"
        )

        print(
            f"\n2. text requests ({args.text_requests} sequential), alone and under a flood of "
            f"{args.flooders} clients sending the worst allowed image request"
        )
        alone, alone_analysis = await text_latencies(client, args.text_requests)
        stop = asyncio.Event()
        seen: Counter[int] = Counter()
        flood_body = json.dumps(body("Read these.", worst)).encode()  # encoded once: not the client's cost
        flood = [asyncio.create_task(flooder(client, flood_body, stop, seen)) for _ in range(args.flooders)]
        await asyncio.sleep(args.flood_head_start)
        under, under_analysis = await text_latencies(client, args.text_requests, stop)
        await asyncio.gather(*flood)
        for label, values, analysis in (
            ("alone", alone, alone_analysis),
            ("under flood", under, under_analysis),
        ):
            slowest = max(range(len(values)), key=values.__getitem__)
            print(
                f"   {label:<12} p50 {statistics.median(values) * 1000:8.1f} ms   "
                f"p95 {pct(values, 0.95) * 1000:8.1f} ms   max {max(values) * 1000:8.1f} ms "
                f"(of which analysis {analysis[slowest] * 1000:.1f} ms)"
            )
        ratio = pct(under, 0.95) / pct(alone, 0.95)
        print(f"   p95 under flood / alone: x{ratio:.2f} (target <= 2)")
        rss_mb = rss_bytes() / 2**20
        print(f"   flood answers: {dict(sorted(seen.items()))}; RSS of the process now {rss_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rewriter", choices=["evidence", "mock"], default="evidence")
    parser.add_argument("--text-requests", type=int, default=60)
    parser.add_argument("--flooders", type=int, default=6)
    parser.add_argument("--flood-head-start", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
