"""Who may call the proxy: API keys (:mod:`vlmguard.server.auth`) and per-key rate limits
(:mod:`vlmguard.server.ratelimit` in the process, :mod:`vlmguard.server.redis_ratelimit` shared
through Redis)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from vlmguard.server.auth import KeyVerifier
from vlmguard.server.config import ProxyConfig, RateLimitConfig
from vlmguard.server.errors import ProxyError
from vlmguard.server.ratelimit import Limiter, RateLimiter

log = logging.getLogger("vlmguard.server")

UNKNOWN_KEY_LIMIT = RateLimitConfig(requests_per_minute=60, burst=20)
"""Slow hashes of keys not seen before, per client address."""


async def take(limiter: Limiter, key: str) -> float:
    """Take a token from ``limiter`` (sync or async) for ``key``: 0.0, or the seconds to wait."""
    wait = limiter.acquire(key)
    if inspect.isawaitable(wait):
        wait = await wait
    return float(wait)


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(wait + 0.999)))}


class AccessControl:
    """Checks a presented API key and takes a rate-limit token for its caller.

    ``limiter`` and ``hash_limiter`` replace the token buckets (any :class:`Limiter`, sync or
    async); by default they are built from the config: in-process buckets, or buckets in Redis
    shared by every worker and replica with ``rate_limit.backend: redis``.
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        limiter: Limiter | None = None,
        hash_limiter: Limiter | None = None,
    ) -> None:
        self.verifier = KeyVerifier({k.name: k.hash for k in config.api_keys})
        per_key = {k.name: k.rate_limit for k in config.api_keys if k.rate_limit is not None}
        self._redis: Any = None
        shared = config.rate_limit is not None and config.rate_limit.backend == "redis"
        if shared and (limiter is None or hash_limiter is None):
            from vlmguard.server.redis_ratelimit import redis_limiters, safe_url

            assert config.rate_limit is not None
            requests, unknown, self._redis = redis_limiters(config.rate_limit, per_key, UNKNOWN_KEY_LIMIT)
            limiter, hash_limiter = limiter or requests, hash_limiter or unknown
            log.info("rate limits shared through Redis at %s", safe_url(config.rate_limit.redis_url or ""))
        self.limiter: Limiter = limiter or RateLimiter(config.rate_limit, per_key)
        self.hash_limiter: Limiter = hash_limiter or RateLimiter(UNKNOWN_KEY_LIMIT)

    async def aclose(self) -> None:
        """Close the connections to Redis, if any."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def authorize(self, presented: str | None, client_address: str | None) -> str:
        """The name of the caller's key (or ``anonymous:<address>`` without keys); 401 / 429 otherwise."""
        if self.verifier.enabled:
            if not presented:
                raise ProxyError(
                    401, "an API key is required (Authorization: Bearer <key>)", code="missing_api_key"
                )
            _, name = self.verifier.cached(presented)
            if name is None:
                # a key not seen before costs a slow hash: limited per client address, so a flood of
                # guessed keys cannot take the CPU
                wait = await take(self.hash_limiter, client_address or "unknown")
                if wait > 0:
                    raise ProxyError(
                        429,
                        f"too many unknown API keys from this address; retry in {wait:.0f} s",
                        code="rate_limit_exceeded",
                        headers=_retry_after(wait),
                    )
                name = await asyncio.to_thread(self.verifier.verify, presented)
            if name is None:
                raise ProxyError(401, "incorrect API key", code="invalid_api_key")
        else:
            name = f"anonymous:{client_address or 'unknown'}"
        wait = await take(self.limiter, name)
        if wait > 0:
            raise ProxyError(
                429,
                f"rate limit exceeded; retry in {wait:.1f} s",
                code="rate_limit_exceeded",
                headers=_retry_after(wait),
            )
        return name
