"""Who may call the proxy: API keys (:mod:`vlmguard.server.auth`) and per-key rate limits
(:mod:`vlmguard.server.ratelimit`)."""

from __future__ import annotations

import asyncio

from vlmguard.server.auth import KeyVerifier
from vlmguard.server.config import ProxyConfig, RateLimitConfig
from vlmguard.server.errors import ProxyError
from vlmguard.server.ratelimit import RateLimiter


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(wait + 0.999)))}


class AccessControl:
    """Checks a presented API key and takes a rate-limit token for its caller.

    ``limiter`` and ``hash_limiter`` replace the in-process token buckets (e.g. with limiters
    shared by several workers); by default they are built from the config.
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        limiter: RateLimiter | None = None,
        hash_limiter: RateLimiter | None = None,
    ) -> None:
        self.verifier = KeyVerifier({k.name: k.hash for k in config.api_keys})
        self.limiter = limiter or RateLimiter(
            config.rate_limit, {k.name: k.rate_limit for k in config.api_keys if k.rate_limit is not None}
        )
        self.hash_limiter = hash_limiter or RateLimiter(RateLimitConfig(requests_per_minute=60, burst=20))

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
                wait = self.hash_limiter.acquire(client_address or "unknown")
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
        wait = self.limiter.acquire(name)
        if wait > 0:
            raise ProxyError(
                429, f"rate limit exceeded; retry in {wait:.1f} s", code="rate_limit_exceeded",
                headers=_retry_after(wait),
            )
        return name
