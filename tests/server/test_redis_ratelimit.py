"""Rate limits shared through a real redis-server: exact across limiters (processes, replicas), and the
failure policy when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy_helpers import chat_body, config, proxy_client
from redis_helpers import RedisProcess, redis_server

from vlmguard.errors import ConfigError
from vlmguard.server.config import ProxyConfig, RateLimitConfig, SharedRateLimitConfig
from vlmguard.server.errors import ProxyError
from vlmguard.server.redis_ratelimit import RedisRateLimiter, redis_limiters, safe_url

SLOW_REFILL = 0.001
"""Requests per minute: no token comes back during a test."""


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def shared(url: str, **extra: Any) -> SharedRateLimitConfig:
    data: dict[str, Any] = {
        "backend": "redis",
        "redis_url": url,
        "requests_per_minute": SLOW_REFILL,
        "burst": 5,
        "redis_timeout_s": 5.0,  # busy cores must not turn a slow answer into a failure
    }
    return SharedRateLimitConfig(**(data | extra))


def limiter(url: str, prefix: str, **extra: Any) -> tuple[RedisRateLimiter, Any]:
    requests, _, client = redis_limiters(
        shared(url, redis_prefix=prefix, **extra),
        {"vip": RateLimitConfig(requests_per_minute=1, burst=8)},
        RateLimitConfig(),
    )
    return requests, client


async def _close(*clients: Any) -> None:
    for client in clients:
        await client.aclose()


def test_buckets_are_exact_across_limiters_with_their_own_connections(redis: RedisProcess) -> None:
    async def run() -> list[float]:
        # three limiters, each with its own client: like three worker processes or replicas
        pairs = [limiter(redis.url, "t-exact:") for _ in range(3)]
        try:
            return await asyncio.gather(*(pairs[i % 3][0].acquire("alice") for i in range(30)))
        finally:
            await _close(*(c for _, c in pairs))

    waits = asyncio.run(run())
    assert sum(w == 0.0 for w in waits) == 5
    assert all(w > 1000 for w in waits if w > 0)  # the next token is ~1/rate away


def test_keys_have_their_own_buckets_and_limits(redis: RedisProcess) -> None:
    async def run() -> dict[str, int]:
        limit, client = limiter(redis.url, "t-keys:")
        try:
            out = {}
            for key in ("bob", "carol", "vip"):
                waits = [await limit.acquire(key) for _ in range(12)]
                out[key] = sum(w == 0.0 for w in waits)
            return out
        finally:
            await client.aclose()

    assert asyncio.run(run()) == {"bob": 5, "carol": 5, "vip": 8}


def test_no_default_limit_means_unlimited_without_calling_redis() -> None:
    class NoScript:
        def register_script(self, script: str) -> Any:
            def fail(**_: Any) -> Any:
                raise AssertionError("Redis must not be called")

            return fail

    limit = RedisRateLimiter(None, client=NoScript(), prefix="x:")
    assert asyncio.run(limit.acquire("anyone")) == 0.0


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
def test_redis_going_away_follows_the_policy_and_says_so(
    tmp_path: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisProcess(tmp_path)
    server.start()

    async def run() -> tuple[list[Any], list[float]]:
        limit, client = limiter(server.url, "t-down:", redis_failure=policy, redis_retry_s=0)
        outcomes: list[Any] = []
        try:
            assert [await limit.acquire("dave") for _ in range(5)] == [0.0] * 5
            assert await limit.acquire("dave") > 0  # over the limit while Redis is up
            server.stop()
            for _ in range(3):
                try:
                    outcomes.append(await limit.acquire("dave"))
                except ProxyError as exc:
                    outcomes.append(exc)
            assert not limit.available
            server.start()  # a fresh, empty Redis on the same port
            back = [await limit.acquire("dave") for _ in range(6)]
            assert limit.available
            return outcomes, back
        finally:
            await client.aclose()

    with caplog.at_level(logging.INFO, logger="vlmguard.server"):
        try:
            outcomes, back = asyncio.run(run())
        finally:
            server.stop()
    if policy == "fail_open":
        assert outcomes == [0.0, 0.0, 0.0]
    else:
        assert all(isinstance(o, ProxyError) and o.status == 503 for o in outcomes)
        assert outcomes[0].code == "rate_limiter_unavailable"
        assert "Retry-After" in outcomes[0].headers
    assert sum(w == 0.0 for w in back) == 5  # the limit holds again once Redis answers
    messages = [r.getMessage() for r in caplog.records]
    down = [m for m in messages if "unreachable" in m]
    assert len(down) == 1 and policy in down[0]  # logged once, naming the policy
    assert any("answers again" in m for m in messages)


def test_config_needs_a_url_and_keeps_passwords_out() -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        ProxyConfig.from_dict({"rate_limit": {"backend": "redis"}})
    with pytest.raises(ConfigError, match="redis_password_env"):
        ProxyConfig.from_dict({"rate_limit": {"backend": "redis", "redis_url": "redis://:secret@db:6379/0"}})
    assert ProxyConfig.from_dict({}).rate_limit.backend == "memory"  # type: ignore[union-attr]
    assert safe_url("redis://user@db.internal:6380/2") == "redis://db.internal:6380/2"


def test_two_replicas_share_one_client_budget(redis: RedisProcess) -> None:
    """Two proxy apps (replicas behind a load balancer) with one Redis: one client's burst over both."""
    cfg = config(
        rate_limit={
            "backend": "redis",
            "redis_url": redis.url,
            "requests_per_minute": SLOW_REFILL,
            "burst": 4,
            "redis_prefix": "t-replicas:",
        }
    )

    async def run() -> list[int]:
        async with proxy_client(cfg) as (a, _, _), proxy_client(cfg) as (b, _, _):
            statuses = []
            for i in range(10):
                r = await (a if i % 2 else b).post("/v1/chat/completions", json=chat_body("hello"))
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert r.json()["error"]["code"] == "rate_limit_exceeded"
                    assert int(r.headers["retry-after"]) >= 1
            return statuses

    statuses = asyncio.run(run())
    assert statuses.count(200) == 4 and statuses.count(429) == 6
    assert statuses[4:] == [429] * 6  # both replicas refuse once the shared bucket is empty
