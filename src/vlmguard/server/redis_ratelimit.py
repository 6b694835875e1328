"""Token buckets in Redis, shared by every worker process and replica that uses the same Redis.

Each request runs one Lua script on the Redis server: it refills the caller's bucket from the time
elapsed since its last update (Redis's own clock, so the replicas' clocks do not matter), takes a
token when there is one, and stores the bucket with an expiry (a bucket that would be full again is
dropped, which bounds memory). The script is atomic, so ``burst`` requests pass and no more, however
many processes ask at once.

When Redis cannot be reached (or does not answer within ``redis_timeout_s``), the configured
``redis_failure`` policy applies: ``fail_open`` lets the request through without a limit,
``fail_closed`` answers 503 ``rate_limiter_unavailable``. The first failure and the recovery are
logged; for ``redis_retry_s`` after a failure the policy applies without trying Redis again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vlmguard.errors import ConfigError
from vlmguard.server.config import RateLimitConfig, SharedRateLimitConfig
from vlmguard.server.errors import ProxyError

log = logging.getLogger("vlmguard.server")
_NEEDS_REDIS = "rate_limit.backend redis needs the 'redis' package: pip install redis"

TOKEN_BUCKET_LUA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1])
local updated = tonumber(bucket[2])
if tokens == nil or updated == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""
"""KEYS[1]: the bucket; ARGV: tokens per second, burst. Returns the seconds to wait (``0`` when a
token was taken), as a string (Lua numbers would be truncated to integers)."""


def safe_url(url: str) -> str:
    """``url`` without a user name or password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisRateLimiter:
    """One token bucket per key in Redis (see the module docstring). ``acquire`` is async.

    ``limits`` maps a key to its own limit; others use ``default`` (``None``: unlimited).
    ``client`` is a ``redis.asyncio.Redis`` (or anything with ``register_script``).
    """

    def __init__(
        self,
        default: RateLimitConfig | None,
        limits: dict[str, RateLimitConfig] | None = None,
        *,
        client: Any,
        prefix: str,
        failure: str = "fail_open",
        retry_s: float = 1.0,
        where: str = "redis",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure not in ("fail_open", "fail_closed"):
            raise ConfigError(f"redis_failure must be fail_open or fail_closed, not {failure!r}")
        self.default = default
        self.limits = dict(limits or {})
        self.client = client
        self.prefix = prefix
        self.failure = failure
        self.retry_s = retry_s
        self.where = where
        self.clock = clock
        self._script = client.register_script(TOKEN_BUCKET_LUA)
        self._down_until: float | None = None

    @property
    def available(self) -> bool:
        """False while the last Redis call failed (the failure policy applies)."""
        return self._down_until is None

    async def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is available.

        Raises a 503 :class:`ProxyError` when Redis is unreachable and the policy is ``fail_closed``.
        """
        limit = self.limits.get(key, self.default)
        if limit is None:
            return 0.0
        if self._down_until is not None and self.clock() < self._down_until:
            return self._fail()
        rate = limit.requests_per_minute / 60.0
        try:
            from redis.exceptions import RedisError

            try:
                wait = await self._script(keys=[self.prefix + key], args=[repr(rate), str(limit.burst)])
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
                return self._fail()
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(_NEEDS_REDIS) from exc
        if self._down_until is not None:
            self._down_until = None
            log.warning("rate limit: Redis at %s answers again; limits are shared again", self.where)
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            action = (
                "requests pass without a rate limit (redis_failure: fail_open)"
                if self.failure == "fail_open"
                else "requests are refused with 503 (redis_failure: fail_closed)"
            )
            log.error(
                "rate limit: Redis at %s is unreachable (%s); %s until it answers",
                self.where,
                type(exc).__name__,
                action,
            )
        self._down_until = self.clock() + self.retry_s

    def _fail(self) -> float:
        if self.failure == "fail_open":
            return 0.0
        raise ProxyError(
            503,
            "the rate limiter is unavailable; retry shortly",
            code="rate_limiter_unavailable",
            headers={"Retry-After": str(max(1, round(self.retry_s)))},
        )


def redis_client(config: SharedRateLimitConfig, password: str | None = None) -> Any:
    """A ``redis.asyncio.Redis`` for ``config.redis_url``: short timeouts, no retries (a failed call
    falls to the failure policy at once)."""
    try:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(_NEEDS_REDIS) from exc
    if not config.redis_url:
        raise ConfigError("rate_limit.backend redis needs rate_limit.redis_url")
    return aredis.Redis.from_url(
        config.redis_url,
        password=password,
        socket_timeout=config.redis_timeout_s,
        socket_connect_timeout=config.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def redis_limiters(
    config: SharedRateLimitConfig,
    limits: dict[str, RateLimitConfig],
    hash_limit: RateLimitConfig,
    *,
    client: Any = None,
) -> tuple[RedisRateLimiter, RedisRateLimiter, Any]:
    """The request limiter, the unknown-key limiter and their shared client, for ``config``.

    The Redis password is read from the environment variable ``config.redis_password_env``.
    """
    if client is None:
        password = os.environ.get(config.redis_password_env) if config.redis_password_env else None
        client = redis_client(config, password or None)
    where = safe_url(config.redis_url or "")
    common: dict[str, Any] = {
        "client": client,
        "failure": config.redis_failure,
        "retry_s": config.redis_retry_s,
        "where": where,
    }
    default = RateLimitConfig(requests_per_minute=config.requests_per_minute, burst=config.burst)
    requests = RedisRateLimiter(default, limits, prefix=config.redis_prefix + "key:", **common)
    unknown = RedisRateLimiter(hash_limit, prefix=config.redis_prefix + "unknown-key:", **common)
    return requests, unknown, client
