"""The upstream side of the proxy: round-robin over the upstream URLs with failover on connection
errors, one retry of a dropped kept-alive connection, and upstream failures mapped to proxy errors
(502 upstream failure, 504 timeout, the upstream's 4xx passed on)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from vlmguard.server.config import ProxyConfig
from vlmguard.server.errors import ProxyError, redact
from vlmguard.server.metrics import ProxyMetrics

log = logging.getLogger("vlmguard.server")

MAX_ERROR_BODY = 64 * 1024
"""The most bytes of an upstream error body read to find its message."""


class UpstreamPool:
    """Upstream base URLs in round-robin order."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._next = itertools.count()

    def order(self) -> list[str]:
        if len(self.urls) <= 1:
            return list(self.urls)
        start = next(self._next) % len(self.urls)
        return self.urls[start:] + self.urls[:start]


class Upstream:
    """Calls to the upstream OpenAI-compatible servers of ``config`` through ``client``.

    ``key`` is the upstream API key (sent as a bearer token, never logged: see :meth:`redact`).
    """

    def __init__(
        self,
        config: ProxyConfig,
        client: httpx.AsyncClient | None,
        metrics: ProxyMetrics,
        *,
        key: str | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.metrics = metrics
        self._key = key or None
        self.pool = UpstreamPool(config.upstream.urls)
        self.headers = {"Content-Type": "application/json"}
        if self._key:
            self.headers["Authorization"] = f"Bearer {self._key}"
        self._urls: dict[tuple[str, str], httpx.URL] = {}

    def redact(self, text: str) -> str:
        """``text`` without the upstream key."""
        return redact(text, [self._key or ""])

    # ------------------------------------------------------------------ errors
    def map_status(self, status: int, content: bytes) -> ProxyError:
        """The proxy error for an upstream answer with HTTP ``status`` and body ``content``."""
        detail = ""
        try:
            data = json.loads(content[:MAX_ERROR_BODY])
            if isinstance(data, dict):
                err = data.get("error")
                if isinstance(err, dict):
                    detail = str(err.get("message") or "")
                elif isinstance(err, str):
                    detail = err
                elif isinstance(data.get("detail"), str):
                    detail = data["detail"]
        except (ValueError, UnicodeDecodeError):
            pass
        detail = self.redact(detail)[:500]
        self.metrics.errors.labels(f"upstream_{status}").inc()
        if status in (401, 403):
            return ProxyError(502, "the upstream rejected the proxy's credentials", code="upstream_auth")
        if status == 429:
            return ProxyError(
                429,
                "the upstream is rate limiting requests" + (f": {detail}" if detail else ""),
                code="upstream_rate_limited",
            )
        if 400 <= status < 500:
            return ProxyError(
                status if status in (400, 404, 413, 422) else 400,
                "the upstream refused the request" + (f": {detail}" if detail else ""),
                code="upstream_bad_request",
            )
        return ProxyError(502, f"the upstream failed (HTTP {status})", code="upstream_error")

    def transport_error(self, exc: BaseException) -> ProxyError:
        """The proxy error for a failed connection or a timeout."""
        if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
            self.metrics.errors.labels("upstream_timeout").inc()
            return ProxyError(504, "the upstream did not answer in time", code="upstream_timeout")
        self.metrics.errors.labels("upstream_unreachable").inc()
        return ProxyError(
            502, f"the upstream could not be reached ({type(exc).__name__})", code="upstream_unreachable"
        )

    # ------------------------------------------------------------------ calls
    async def send(
        self, method: str, path: str, payload: bytes | None, *, stream: bool, timeout: float
    ) -> httpx.Response:
        """Send to the upstreams in round-robin order, moving on only when a connection cannot be made.

        A kept-alive connection that the upstream closed just as it was reused (the server dropped it
        without answering) is retried once on a fresh connection; timeouts are never retried.
        """
        urls = self.pool.order()
        if self.client is None:
            raise ProxyError(502, "no upstream client in this context", code="no_upstream")
        if not urls:
            raise ProxyError(502, "no upstream is configured", code="no_upstream")
        last: Exception | None = None
        timeouts = httpx.Timeout(timeout, connect=self.config.timeouts.upstream_connect_s)
        for base in urls:
            url = self._urls.get((base, path))
            if url is None:
                url = self._urls[(base, path)] = httpx.URL(base + path)
            request = self.client.build_request(
                method, url, content=payload, headers=self.headers, timeout=timeouts
            )
            try:
                try:
                    return await self.client.send(request, stream=stream)
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                    log.info("upstream closed a reused connection (%s); retrying once", type(exc).__name__)
                    request = self.client.build_request(
                        method, url, content=payload, headers=self.headers, timeout=timeouts
                    )
                    return await self.client.send(request, stream=stream)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise self.transport_error(exc) from None
        assert last is not None
        raise self.transport_error(last) from None

    async def post_json(self, payload: bytes) -> dict[str, Any]:
        """``POST /chat/completions`` and its JSON answer (a proxy error for anything else)."""
        timeout = self.config.timeouts.upstream_s
        try:
            response = await asyncio.wait_for(
                self.send("POST", "/chat/completions", payload, stream=False, timeout=timeout),
                timeout=timeout,
            )
        except asyncio.TimeoutError:
            raise self.transport_error(asyncio.TimeoutError()) from None
        if response.status_code != 200:
            raise self.map_status(response.status_code, response.content)
        return self._json_object(response, "the upstream answered with something that is not a JSON object")

    async def open_stream(self, payload: bytes) -> httpx.Response:
        """``POST /chat/completions`` as a stream; the open response (status 200) to read and close."""
        response = await self.send(
            "POST", "/chat/completions", payload, stream=True, timeout=self.config.timeouts.upstream_s
        )
        if response.status_code != 200:
            try:
                content = await _read_bounded(response)
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise self.map_status(response.status_code, content)
        return response

    async def models(self) -> dict[str, Any]:
        """The upstream's ``GET /models`` answer."""
        timeout = self.config.timeouts.upstream_s
        response = await self.send("GET", "/models", None, stream=False, timeout=timeout)
        if response.status_code != 200:
            raise self.map_status(response.status_code, response.content)
        return self._json_object(response, "the upstream's model list is not a JSON object")

    async def reachable(self) -> bool:
        """True when an upstream answers ``GET /models`` with any status below 500."""
        timeout = self.config.timeouts.readiness_s
        try:
            response = await asyncio.wait_for(
                self.send("GET", "/models", None, stream=False, timeout=timeout), timeout=timeout
            )
        except (ProxyError, asyncio.TimeoutError):
            return False
        return response.status_code < 500

    def _json_object(self, response: httpx.Response, message: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.metrics.errors.labels("upstream_bad_response").inc()
            raise ProxyError(502, message, code="upstream_bad_response")
        return data


async def _read_bounded(response: httpx.Response) -> bytes:
    out = bytearray()
    async for chunk in response.aiter_bytes():
        out += chunk
        if len(out) >= MAX_ERROR_BODY:
            break
    return bytes(out)
