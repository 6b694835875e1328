"""A real ``vlmguard serve --workers 2`` on a loopback port: requests reach both workers, ``/metrics``
adds up over them, and one client's rate limit (in a real Redis) holds across them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from proxy_helpers import chat_body, free_port, serve_in_thread, wait_http, write_rules
from redis_helpers import redis_server

from vlmguard.errors import ConfigError
from vlmguard.server.auth import hash_key
from vlmguard.server.config import ProxyConfig
from vlmguard.server.fake_upstream import FakeUpstream
from vlmguard.server.workers import WORKER_CONFIG_ENV, worker_app

OPEN_KEY = "sk-open-0123456789"
LIMITED_KEY = "sk-limited-0123456789"
LIMITED_BURST = 5


@dataclass
class Proxy:
    base: str
    metrics_dir: Path


def requests_by_pid(metrics_dir: Path) -> dict[int, Counter[str]]:
    """Each worker's own ``vlmguard_requests_total`` by status (read from its multiprocess file)."""
    out: dict[int, Counter[str]] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        counts: Counter[str] = Counter()
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "vlmguard_requests_total" and labels.get("endpoint") == "/v1/chat/completions":
                counts[labels["status"]] += int(value)
        out[pid] = counts
    return out


def metrics_total(base: str, status: str) -> float:
    text = httpx.get(base + "/metrics", timeout=10).text
    wanted = f'vlmguard_requests_total{{endpoint="/v1/chat/completions",status="{status}"}}'
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted)]
    return sum(values)


def post(base: str, key: str) -> int:
    # a fresh connection per request, so the kernel hands requests to either worker
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        r = client.post(
            base + "/v1/chat/completions", json=chat_body("hello"), headers={"authorization": f"Bearer {key}"}
        )
        return r.status_code


def burst(base: str, key: str, n: int) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: post(base, key), range(n)))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("workers")
    metrics_dir = tmp / "metrics"
    port = free_port()
    with redis_server(tmp) as redis, serve_in_thread(FakeUpstream(api_key=None)) as upstream:
        cfg = {
            "upstream": {"urls": [upstream + "/v1"]},
            "rewriter": f"mock:rules={write_rules(tmp / 'rules.json')}",
            "api_keys": [
                {"name": "open", "hash": hash_key(OPEN_KEY, algo="sha256")},
                {
                    "name": "limited",
                    "hash": hash_key(LIMITED_KEY, algo="sha256"),
                    "rate_limit": {"requests_per_minute": 0.001, "burst": LIMITED_BURST},
                },
            ],
            # a generous Redis timeout: on busy cores a 0.25 s call would fail open and let requests through
            "rate_limit": {
                "backend": "redis",
                "redis_url": redis.url,
                "redis_timeout_s": 5.0,
                "requests_per_minute": 100000,
                "burst": 10000,
            },
            "server": {"port": port, "log_level": "warning", "access_log": False},
        }
        path = tmp / "proxy.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")  # JSON is YAML
        env = {**os.environ, "VLMGUARD_UPSTREAM_API_KEY": "", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlmguard.cli.main", "serve", "--config", str(path), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", timeout_s=90)
            yield Proxy(base, metrics_dir)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()


def test_metrics_add_up_over_both_workers(proxy: Proxy) -> None:
    sent = 0
    for _ in range(30):  # until both workers have answered some (the kernel chooses)
        assert burst(proxy.base, OPEN_KEY, 16) == [200] * 16
        sent += 16
        served = {pid: c["200"] for pid, c in requests_by_pid(proxy.metrics_dir).items() if c["200"]}
        if len(served) >= 2:
            break
    assert len(served) == 2, served
    assert sum(served.values()) == sent
    for _ in range(6):  # whichever worker answers /metrics, it reports the sum
        assert metrics_total(proxy.base, "200") == sent


def test_a_client_over_its_limit_gets_429_from_any_worker(proxy: Proxy) -> None:
    statuses = burst(proxy.base, LIMITED_KEY, 12)
    assert statuses.count(200) == LIMITED_BURST and statuses.count(429) == 12 - LIMITED_BURST
    for _ in range(30):
        refused = [pid for pid, c in requests_by_pid(proxy.metrics_dir).items() if c["429"]]
        if len(refused) >= 2:
            break
        assert burst(proxy.base, LIMITED_KEY, 8) == [429] * 8
    assert len(refused) == 2  # both workers refused this client
    assert metrics_total(proxy.base, "200") >= LIMITED_BURST


def test_worker_app_needs_its_config_and_the_config_survives_the_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(WORKER_CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=WORKER_CONFIG_ENV):
        worker_app()
    cfg = ProxyConfig.from_dict(
        {
            "upstream": {"urls": ["http://up:8000/v1"]},
            "rate_limit": {"backend": "redis", "redis_url": "redis://db:6379/1", "burst": 3},
            "conversation": {"max_turns": 2},
            "server": {"workers": 3},
        }
    )
    assert ProxyConfig.from_dict(json.loads(cfg.model_dump_json())) == cfg
