"""The guard in the middle of an OpenAI-compatible call, without any web framework.

One chat request goes through :meth:`GuardService.chat`:

1. validate the body and the limits (:mod:`vlmguard.server.inbound`); wait for an analysis slot
   (:mod:`vlmguard.server.admission`: 429 / 503 when the guard is busy);
2. load every image (data URIs; remote URLs only through the safe fetcher), within a pixel budget
   for the whole request (:mod:`vlmguard.server.request_images`);
3. judge the conversation with the request pipeline (:mod:`vlmguard.pipeline`, the same code the
   Python API, the CLI and eval use): the last user turn with a window of earlier turns, the
   rewriter under a time limit, the fail policy when the guard cannot judge;
4. ``refuse``: answer with an assistant message, the upstream is not called; otherwise send the
   client's own JSON upstream (:mod:`vlmguard.server.upstream`) with the last user turn's text
   replaced when the plan rewrites it (images untouched; remote images as the bytes that were
   analysed) and every other field passed through;
5. return the upstream's answer with a ``vlmguard`` object added, or relay its SSE stream
   (:mod:`vlmguard.server.sse`) with the ``vlmguard`` object in a last chunk before ``[DONE]``.

Errors are :class:`ProxyError` with OpenAI bodies; errors of the guard itself
(:class:`~vlmguard.errors.VLMGuardError`) are mapped by their code (:func:`proxy_error`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from vlmguard.errors import VLMGuardError
from vlmguard.images import ImageLimits
from vlmguard.pipeline import Action, PipelineConfig, Plan, RequestPipeline, select_turns
from vlmguard.rewriter.base import Rewriter
from vlmguard.server.access import AccessControl
from vlmguard.server.admission import Admission
from vlmguard.server.config import ProxyConfig
from vlmguard.server.errors import ProxyError, error_body, proxy_error
from vlmguard.server.fetch import ImageFetcher
from vlmguard.server.inbound import parse_chat_request, replace_text, to_messages, upstream_body
from vlmguard.server.metrics import ProxyMetrics
from vlmguard.server.request_images import ImageRef, RequestImageLoader, image_refs
from vlmguard.server.sse import refusal_stream, relay
from vlmguard.server.upstream import Upstream
from vlmguard.server.wire import (
    ChatCompletionRequest,
    ChatMessage,
    VLMGuardExtension,
    assistant_completion,
    new_completion_id,
)
from vlmguard.types import Rewrite

log = logging.getLogger("vlmguard.server")


@dataclass
class JSONResult:
    """A JSON answer."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResult:
    """A ``text/event-stream`` answer: bytes to send as they come."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GuardedRequest:
    """A judged request: the plan, and what goes upstream (``None`` when refused) or the refusal text."""

    request: ChatCompletionRequest
    plan: Plan
    start: float
    upstream_body: dict[str, Any] | None
    refusal: str | None = None

    @property
    def rewrite(self) -> Rewrite:
        return self.plan.rewrite


def pipeline_config(config: ProxyConfig) -> PipelineConfig:
    """The request pipeline's settings from the proxy's config."""
    return PipelineConfig(
        fail_policy=config.fail_policy,
        fail_closed_action=config.fail_closed_action,
        refusal_message=config.refusal_message,
        rewriter_timeout_s=config.timeouts.rewriter_s,
        max_prompt_chars=config.limits.max_prompt_chars,
        window=config.conversation,
    )


class GuardService:
    """The proxy without a web framework: access, limits, the guard adapter and the upstream call."""

    def __init__(
        self,
        config: ProxyConfig,
        rewriter: Rewriter | None,
        client: httpx.AsyncClient | None,
        *,
        fetcher: ImageFetcher | None = None,
        metrics: ProxyMetrics | None = None,
        upstream_key: str | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or ProxyMetrics()
        self.upstream = Upstream(config, client, self.metrics, key=upstream_key)
        self.access = AccessControl(config)
        self.fetcher = fetcher or ImageFetcher(config.remote_images)
        self.image_limits = ImageLimits(
            max_bytes=config.limits.max_image_bytes, max_pixels=config.limits.max_image_pixels
        )
        self.images = RequestImageLoader(
            self.fetcher,
            self.image_limits,
            max_images=config.limits.max_images,
            max_request_pixels=config.limits.max_request_pixels,
        )
        self.admission = Admission(config.admission)
        self.pipeline: RequestPipeline | None = None
        self.rewriter = rewriter

    @property
    def rewriter(self) -> Rewriter | None:
        """The rewriter (``None`` while it loads: requests are then answered 503 ``not_ready``)."""
        return None if self.pipeline is None else self.pipeline.rewriter

    @rewriter.setter
    def rewriter(self, rewriter: Rewriter | None) -> None:
        self.pipeline = (
            None
            if rewriter is None
            else RequestPipeline(rewriter, pipeline_config(self.config), redact=self.upstream.redact)
        )

    async def authorize(self, presented: str | None, client_address: str | None) -> str:
        """The name of the caller's key (or ``anonymous:<address>`` without keys); 401 / 429 otherwise."""
        return await self.access.authorize(presented, client_address)

    def redact(self, text: str) -> str:
        """``text`` without the upstream key."""
        return self.upstream.redact(text)

    # ------------------------------------------------------------------ the guard adapter
    async def guard(self, body: Any, *, client_key: str = "anonymous") -> GuardedRequest:
        """Validate ``body``, load its images and judge the conversation (no upstream call).

        The result holds the plan and, unless it refuses, the body to send upstream: the client's
        own dict with the last user turn's text replaced when rewritten. Images are loaded and the
        request judged inside an analysis slot of the :class:`~vlmguard.server.admission.Admission`
        lanes (429 / 503 when none can be had).
        """
        start = time.perf_counter()
        request = parse_chat_request(body, max_messages=self.config.limits.max_messages)
        refs = image_refs(request)
        async with self.admission.lane(bool(refs)).slot(client_key):
            return await self._guard_admitted(body, request, refs, start)

    async def _guard_admitted(
        self, body: Any, request: ChatCompletionRequest, refs: list[ImageRef], start: float
    ) -> GuardedRequest:
        images = await self.images.load(refs)
        messages = to_messages(request, images)
        try:
            limit, window = self.config.limits.max_prompt_chars, self.config.conversation
            selected = select_turns(messages, max_prompt_chars=limit, window=window)
            if self.pipeline is None:
                raise ProxyError(503, "the guard is still loading", code="not_ready")
            plan = await self.pipeline.judge(messages, selected)
        except VLMGuardError as exc:
            raise proxy_error(exc) from None
        self.metrics.rewrite_seconds.observe(plan.rewrite_s)
        if plan.failure in ("error", "timeout"):
            self.metrics.errors.labels("rewriter_failure").inc()
        self.metrics.decisions.labels(plan.rewrite.decision.value, plan.fallback or "none").inc()
        if plan.action == Action.REFUSE:
            return GuardedRequest(request, plan, start, None, plan.refusal or "")
        text = plan.rewrite.prompt if plan.action == Action.SEND_REWRITTEN else None
        return GuardedRequest(
            request, plan, start, upstream_body(body, request, images, index=plan.request.index, text=text)
        )

    def extension(
        self, guarded: GuardedRequest, *, upstream_s: float | None, request_id: str
    ) -> dict[str, Any] | None:
        """The ``vlmguard`` object for ``guarded`` (``None`` when disabled in the config)."""
        if not self.config.extension:
            return None
        plan = guarded.plan
        return VLMGuardExtension.build(
            plan.rewrite,
            upstream_called=upstream_s is not None,
            rewrite_s=plan.rewrite_s,
            total_s=time.perf_counter() - guarded.start,
            upstream_s=upstream_s,
            request_id=request_id,
        ).model_dump(mode="json")

    # ------------------------------------------------------------------ chat
    async def chat(
        self, body: Any, *, request_id: str, client_key: str = "anonymous"
    ) -> JSONResult | StreamResult:
        """Handle one decoded ``/v1/chat/completions`` body of the client ``client_key``."""
        guarded = await self.guard(body, client_key=client_key)
        model = guarded.request.model
        stream = bool(guarded.request.stream)
        fallback = guarded.plan.fallback or "none"
        decision = guarded.rewrite.decision.value
        if guarded.upstream_body is None:
            ext = self.extension(guarded, upstream_s=None, request_id=request_id)
            log.info("request %s decision=refuse fallback=%s upstream=no", request_id, fallback)
            completion_id = new_completion_id()
            text = guarded.refusal or ""
            if stream:
                return StreamResult(refusal_stream(text, model=model, completion_id=completion_id, ext=ext))
            answer = assistant_completion(text, model=model, completion_id=completion_id)
            if ext is not None:
                answer["vlmguard"] = ext
            return JSONResult(200, answer)
        payload = json.dumps(guarded.upstream_body, separators=(",", ":")).encode()
        upstream_start = time.perf_counter()
        if stream:
            response = await self.upstream.open_stream(payload)

            def on_end(upstream_s: float, finished: bool) -> dict[str, Any] | None:
                log.info(
                    "request %s decision=%s fallback=%s stream upstream_ms=%.1f complete=%s",
                    request_id,
                    decision,
                    fallback,
                    upstream_s * 1000,
                    finished,
                )
                return self.extension(guarded, upstream_s=upstream_s, request_id=request_id)

            return StreamResult(
                relay(
                    response,
                    model=model,
                    request_id=request_id,
                    started=upstream_start,
                    on_error=self.upstream.transport_error,
                    on_close=self.metrics.upstream_seconds.labels("true").observe,
                    on_end=on_end,
                )
            )
        data = await self.upstream.post_json(payload)
        upstream_s = time.perf_counter() - upstream_start
        self.metrics.upstream_seconds.labels("false").observe(upstream_s)
        ext = self.extension(guarded, upstream_s=upstream_s, request_id=request_id)
        if ext is not None:
            data["vlmguard"] = ext
        log.info(
            "request %s decision=%s fallback=%s upstream_ms=%.1f",
            request_id,
            decision,
            fallback,
            upstream_s * 1000,
        )
        return JSONResult(200, data)

    # ------------------------------------------------------------------ models and readiness
    async def list_models(self) -> JSONResult:
        """``/v1/models``: the configured model ids, or the upstream's list."""
        configured = self.config.upstream.models
        if configured is not None:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "vlmguard"} for m in configured]
            return JSONResult(200, {"object": "list", "data": data})
        return JSONResult(200, await self.upstream.models())

    async def upstream_reachable(self) -> bool:
        """True when an upstream answers ``GET /models`` with any status below 500."""
        return await self.upstream.reachable()


__all__ = [
    "ChatMessage",
    "GuardService",
    "GuardedRequest",
    "JSONResult",
    "StreamResult",
    "error_body",
    "parse_chat_request",
    "pipeline_config",
    "replace_text",
    "to_messages",
]
