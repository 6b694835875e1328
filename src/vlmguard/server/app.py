"""The FastAPI app factory of the guard proxy. No module-level state: everything hangs off ``app.state``.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /healthz`` (the process is up),
``GET /readyz`` (rewriter loaded and an upstream reachable), ``GET /metrics`` (Prometheus).
"""

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from vlmguard.errors import VLMGuardError
from vlmguard.rewriter.base import Rewriter
from vlmguard.server.config import ProxyConfig
from vlmguard.server.errors import ProxyError, error_body, proxy_error
from vlmguard.server.fetch import ImageFetcher, read_capped
from vlmguard.server.jsonbody import JSONLimits, parse_json_body
from vlmguard.server.metrics import ProxyMetrics
from vlmguard.server.service import GuardService, JSONResult

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

log = logging.getLogger("vlmguard.server")

_THREAD_PARSE_BYTES = 256 * 1024


def _presented_key(request: "Request") -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.headers.get("x-api-key") or request.headers.get("api-key")


async def _read_body(request: "Request", limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise ProxyError(400, "invalid Content-Length", code="invalid_body")

    def too_large(what: str) -> ProxyError:
        return ProxyError(413, f"request body is {what}", code="body_too_large")

    return await read_capped(request.stream(), limit, declared, too_large)


def create_app(
    config: ProxyConfig,
    *,
    rewriter: Rewriter | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    fetcher: ImageFetcher | None = None,
    upstream_key: str | None = None,
    metrics_dir: str | None = None,
) -> "FastAPI":
    """Build a proxy app for ``config``.

    ``rewriter`` replaces loading ``config.rewriter`` (tests pass a mock-backed one); without it the
    rewriter is loaded (off the event loop) when the app starts. ``upstream_transport`` and
    ``fetcher`` replace the network pieces in tests. The upstream key is read from the environment
    variable ``config.upstream.api_key_env`` unless ``upstream_key`` is given. ``metrics_dir`` is
    prometheus_client's multiprocess folder when several worker processes serve one port: ``/metrics``
    then adds up the values of every worker (see :mod:`vlmguard.server.workers`).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse, Response, StreamingResponse

    if upstream_key is None and config.upstream.api_key_env:
        upstream_key = os.environ.get(config.upstream.api_key_env) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        # keep-alive shorter than uvicorn's default 5 s, so a connection the upstream is closing is not reused
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=4.0)
        client = httpx.AsyncClient(
            transport=upstream_transport,
            limits=limits,
            trust_env=False,
            timeout=httpx.Timeout(config.timeouts.upstream_s, connect=config.timeouts.upstream_connect_s),
        )
        state.service = GuardService(
            config, rewriter, client, fetcher=fetcher, metrics=state.metrics, upstream_key=upstream_key
        )
        if rewriter is None:
            from vlmguard.runtime import apply_thread_settings
            from vlmguard.server.batched_rewriter import load_proxy_rewriter
            from vlmguard.server.config import proxy_thread_settings

            apply_thread_settings(proxy_thread_settings(config))

            log.info("loading rewriter %s", config.rewriter)
            state.service.rewriter = await asyncio.to_thread(load_proxy_rewriter, config)
        if not config.api_keys:
            log.warning("no API keys configured: the proxy accepts requests without a key")
        log.info(
            "vlmguard proxy ready: upstream %s, rewriter %s",
            ", ".join(config.upstream.urls) or "(none)",
            getattr(state.service.rewriter, "name", "?"),
        )
        try:
            yield
        finally:
            await client.aclose()
            await state.service.access.aclose()
            state.metrics.close()
            backend = getattr(state.service.rewriter, "backend", None)
            if rewriter is None and backend is not None and hasattr(backend, "aclose"):
                await backend.aclose()

    app = FastAPI(title="vlmguard proxy", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.metrics = ProxyMetrics(multiprocess_dir=metrics_dir)
    json_limits = JSONLimits(
        max_depth=config.limits.max_json_depth, max_elements=config.limits.max_json_elements
    )

    if config.cors.enabled:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors.allow_origins,
            allow_methods=config.cors.allow_methods,
            allow_headers=config.cors.allow_headers,
            allow_credentials=config.cors.allow_credentials,
        )

    def service(request: Request) -> GuardService:
        svc = getattr(request.app.state, "service", None)
        if svc is None:
            raise ProxyError(503, "the proxy is starting", code="not_ready")
        assert isinstance(svc, GuardService)
        return svc

    def json_response(result: JSONResult) -> Response:
        return Response(
            json.dumps(result.body, separators=(",", ":")),
            status_code=result.status,
            media_type="application/json",
            headers=result.headers,
        )

    def error_response(exc: ProxyError, endpoint: str) -> Response:
        metrics: ProxyMetrics = app.state.metrics
        metrics.errors.labels(exc.code or exc.error_type).inc()
        metrics.requests.labels(endpoint, str(exc.status)).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(VLMGuardError)
    async def _guard_error(request: Request, exc: VLMGuardError) -> Response:
        return error_response(proxy_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return error_response(ProxyError(exc.status_code, message, code=None), "other")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(ProxyError(400, "invalid request", code="invalid_request"), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
        return error_response(ProxyError(500, "internal error", code="internal_error"), request.url.path)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        svc = service(request)
        metrics = svc.metrics
        key = await svc.authorize(_presented_key(request), request.client.host if request.client else None)
        raw = await _read_body(request, config.limits.max_body_bytes)
        if len(raw) > _THREAD_PARSE_BYTES:  # a large body (images) is parsed off the event loop
            body: Any = await asyncio.to_thread(parse_json_body, raw, json_limits)
        else:
            body = parse_json_body(raw, json_limits)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(request_id) > 128 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        metrics.in_flight.inc()
        try:
            result = await svc.chat(body, request_id=request_id, client_key=key)
        finally:
            metrics.in_flight.dec()
        if isinstance(result, JSONResult):
            metrics.requests.labels("/v1/chat/completions", str(result.status)).inc()
            return json_response(result)
        metrics.requests.labels("/v1/chat/completions", "200").inc()
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **result.headers}
        return StreamingResponse(result.chunks, media_type="text/event-stream", headers=headers)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        svc = service(request)
        await svc.authorize(_presented_key(request), request.client.host if request.client else None)
        result = await svc.list_models()
        svc.metrics.requests.labels("/v1/models", str(result.status)).inc()
        return json_response(result)

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response(JSONResult(200, {"status": "ok"}))

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        svc = getattr(request.app.state, "service", None)
        rewriter_ok = svc is not None and svc.rewriter is not None
        upstream_ok = bool(svc is not None and await svc.upstream_reachable())
        ready = rewriter_ok and upstream_ok
        body = {"status": "ready" if ready else "not ready", "rewriter": rewriter_ok, "upstream": upstream_ok}
        return json_response(JSONResult(200 if ready else 503, body))

    if config.metrics:

        @app.get("/metrics")
        async def metrics_endpoint() -> Response:
            content, content_type = app.state.metrics.render()
            return Response(content, media_type=content_type)

    return app


__all__ = ["create_app", "error_body"]
