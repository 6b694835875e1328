"""Load test on loopback (slow suite): 10,000 requests at concurrency 64 through a real proxy process.

Run with ``.venv/bin/pytest -m slow tests/server/test_load.py -s`` (prints its figures).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from proxy_helpers import data_uri, free_port, tiny_png, wait_http, write_rules

pytestmark = pytest.mark.slow

TOTAL = 10_000
CONCURRENCY = 64
TEXTS = ["describe this picture", "REFRAMEME how is this made", "REFUSEME", "what colour is it?"]


@contextmanager
def process(args: list[str], health_url: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "VLMGUARD_UPSTREAM_API_KEY": ""}
    proc = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_http(health_url, timeout_s=60)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def stack(tmp_path: Path, fail_rate: float) -> Iterator[tuple[str, psutil.Process]]:
    """A fake upstream process and a proxy process in front of it (mock rewriter, no rate limit)."""
    up_port, proxy_port = free_port(), free_port()
    rules = write_rules(tmp_path / f"rules-{fail_rate}.json")
    cfg = tmp_path / f"proxy-{fail_rate}.yaml"
    cfg.write_text(
        f"upstream:\n  urls: [http://127.0.0.1:{up_port}/v1]\nrewriter: 'mock:rules={rules}'\n"
        f"rate_limit: null\nserver:\n  port: {proxy_port}\n  log_level: warning\n"
        # a load test of the proxy's plumbing: the analysis lanes must not turn load into 429s
        "admission:\n  image: {concurrency: 4, max_waiting: 1024, max_pending_per_key: null}\n"
        "  text: {concurrency: 16, max_waiting: 1024}\n",
        encoding="utf-8",
    )
    with (
        process(
            ["-m", "vlmguard.server.fake_upstream", "--port", str(up_port), "--fail-rate", str(fail_rate)],
            f"http://127.0.0.1:{up_port}/v1/models",
        ),
        process(
            [str(Path(__file__).with_name("proxy_runner.py")), str(cfg)],
            f"http://127.0.0.1:{proxy_port}/healthz",
        ) as proxy,
    ):
        yield f"http://127.0.0.1:{proxy_port}", psutil.Process(proxy.pid)


async def hammer(base: str, total: int, image: str) -> tuple[Counter[str], list[str]]:
    """``total`` requests at concurrency 64; returns outcome counts and descriptions of bad answers."""
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in counter:
                text = TEXTS[i % len(TEXTS)]
                body = {
                    "model": "fake-vlm",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image_url", "image_url": {"url": image}},
                                {"type": "text", "text": text},
                            ],
                        }
                    ],
                }
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    data = r.json()
                except (httpx.HTTPError, ValueError) as exc:
                    outcomes["transport_error"] += 1
                    problems.append(repr(exc))
                    continue
                if r.status_code == 200 and data["choices"][0]["message"]["content"] and "vlmguard" in data:
                    outcomes[f"ok:{data['vlmguard']['decision']}"] += 1
                elif (
                    r.status_code == 502
                    and set(data.get("error", {})) == {"message", "type", "param", "code"}
                    and data["error"]["code"] == "upstream_error"
                ):
                    outcomes["upstream_error_body"] += 1
                else:
                    outcomes[f"bad:{r.status_code}"] += 1
                    problems.append(r.text[:200])

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), timeout=600)
    return outcomes, problems


def test_load_10k_requests_zero_errors_bounded_memory(tmp_path: Path) -> None:
    image = data_uri(tiny_png(16, 16))
    with stack(tmp_path, 0.0) as (base, proxy):
        asyncio.run(hammer(base, 1000, image))  # warm-up: caches, pools, lazy imports
        rss_before = proxy.memory_info().rss
        start = time.perf_counter()
        outcomes, problems = asyncio.run(hammer(base, TOTAL, image))
        elapsed = time.perf_counter() - start
        rss_after = proxy.memory_info().rss
    growth_mb = (rss_after - rss_before) / 2**20
    print(
        f"\nload: {TOTAL} requests at concurrency {CONCURRENCY} in {elapsed:.1f} s "
        f"({TOTAL / elapsed:.0f} req/s); outcomes {dict(outcomes)}; proxy RSS {rss_before / 2**20:.1f} -> "
        f"{rss_after / 2**20:.1f} MB (growth {growth_mb:+.1f} MB)"
    )
    assert problems == []
    assert sum(v for k, v in outcomes.items() if k.startswith("ok:")) == TOTAL
    assert outcomes["ok:refuse"] == TOTAL // 4
    assert growth_mb < 50


def test_load_with_failing_upstream_every_failure_is_a_proper_error(tmp_path: Path) -> None:
    image = data_uri(tiny_png(16, 16))
    total = 4000
    with stack(tmp_path, 0.2) as (base, _):
        outcomes, problems = asyncio.run(hammer(base, total, image))
        health = httpx.get(base + "/healthz", timeout=5)
        after, _ = asyncio.run(hammer(base, 200, image))
    print(f"\nfailing upstream (20%): {dict(outcomes)}; afterwards {dict(after)}")
    assert problems == []
    failures = outcomes["upstream_error_body"]
    upstream_calls = total - outcomes["ok:refuse"]  # refusals never reach the upstream
    assert 0.15 * upstream_calls < failures < 0.25 * upstream_calls
    assert health.status_code == 200
    assert sum(v for k, v in after.items() if k.startswith("ok:")) > 100  # still serving
