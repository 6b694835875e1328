"""The guard in the middle of an OpenAI-compatible call, without any web framework.

One chat request goes through :meth:`GuardService.chat`:

1. validate the body (:mod:`vlmguard.server.wire`) and the limits (messages, images, pixels, prompt);
   wait for an analysis slot (:mod:`vlmguard.server.admission`: 429 / 503 when the guard is busy);
2. load every image (data URIs; remote URLs only through the safe :class:`ImageFetcher`), within a
   pixel budget for the whole request (:mod:`vlmguard.server.request_images`);
3. rewrite the last user turn with the rewriter (with a time limit); when the guard cannot judge
   (rewriter error or timeout, unusable output) the fail policy decides, and the response says so;
4. ``refuse``: answer with an assistant message, the upstream is not called;
   otherwise send the client's own JSON upstream with the last user turn's text replaced by the
   rewritten prompt (images untouched; remote images as the bytes that were analysed) and every
   other field passed through;
5. return the upstream's answer with a ``vlmguard`` object added, or relay its SSE stream line by
   line as it comes, with one extra chunk just before ``data: [DONE]`` that carries the
   ``vlmguard`` object (``choices: []``, like a usage chunk).

Errors are :class:`ProxyError` with OpenAI bodies: 400 bad input, 401, 413, 429, 502 upstream
failure, 504 upstream timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from vlmguard.backends.base import last_user_index
from vlmguard.defenses.refusal import refusal_message
from vlmguard.defenses.vlmguard_defense import images_for_analysis
from vlmguard.errors import InputError
from vlmguard.images import ImageLimits
from vlmguard.rewriter.base import Rewriter
from vlmguard.rewriter.fallback import fallback_rewrite
from vlmguard.server.admission import Admission
from vlmguard.server.auth import KeyVerifier
from vlmguard.server.config import ProxyConfig, RateLimitConfig
from vlmguard.server.errors import ProxyError, error_body, redact
from vlmguard.server.fetch import ImageFetcher
from vlmguard.server.metrics import ProxyMetrics
from vlmguard.server.ratelimit import RateLimiter
from vlmguard.server.request_images import ImageRef, RequestImageLoader, image_refs
from vlmguard.server.wire import (
    ChatCompletionRequest,
    ChatMessage,
    ImageContentPart,
    TextContentPart,
    VLMGuardExtension,
    assistant_chunks,
    assistant_completion,
    extension_chunk,
    new_completion_id,
)
from vlmguard.text import clean_prompt
from vlmguard.types import (
    Decision,
    Finding,
    ImageData,
    ImagePart,
    Message,
    Modality,
    Rewrite,
    RiskReport,
    Severity,
    TextPart,
)

log = logging.getLogger("vlmguard.server")

_MAX_ERROR_BODY = 64 * 1024


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
class _Judged:
    """A rewrite with the time it took and the fail policy applied, if any."""

    rewrite: Rewrite
    rewrite_s: float
    fallback: str | None
    fallback_reason: str | None


@dataclass
class GuardedRequest:
    """A judged request: what goes upstream (``None`` when refused) or the refusal text."""

    request: ChatCompletionRequest
    judged: _Judged
    start: float
    upstream_body: dict[str, Any] | None
    refusal: str | None = None

    @property
    def rewrite(self) -> Rewrite:
        return self.judged.rewrite


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate a decoded JSON body; raises a 400 :class:`ProxyError` naming the bad field."""
    if not isinstance(body, dict):
        raise ProxyError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise ProxyError(
            400, f"invalid request: {where or 'body'}: {err['msg']}", code="invalid_request", param=where
        ) from None


def to_messages(request: ChatCompletionRequest, images: dict[tuple[int, int], ImageData]) -> list[Message]:
    """Our :class:`Message` list for analysis (``developer`` as ``system``; tool output as ``assistant``)."""
    out: list[Message] = []
    for mi, message in enumerate(request.messages):
        role = {"developer": "system", "tool": "assistant", "function": "assistant"}.get(
            message.role, message.role
        )
        parts: list[Any] = []
        if isinstance(message.content, str):
            parts.append(TextPart(text=message.content))
        elif message.content is not None:
            for pi, part in enumerate(message.content):
                if isinstance(part, ImageContentPart) and (mi, pi) in images:
                    parts.append(ImagePart(image=images[(mi, pi)]))
                elif isinstance(part, TextContentPart):
                    parts.append(TextPart(text=part.text))
        out.append(Message(role=role, content=parts))  # type: ignore[arg-type]
    return out


def replace_text(message: dict[str, Any], text: str) -> dict[str, Any]:
    """A copy of wire ``message`` with its text parts replaced by one text part ``text``; other parts kept."""
    out = dict(message)
    content = message.get("content")
    if isinstance(content, list):
        kept = [p for p in content if not (isinstance(p, dict) and p.get("type") == "text")]
        out["content"] = [*kept, {"type": "text", "text": text}]
    else:
        out["content"] = text
    return out


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


class GuardService:
    """Authentication, rate limiting, limits, the guard and the upstream call of the proxy."""

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
        self.rewriter = rewriter
        self.client = client
        self.fetcher = fetcher or ImageFetcher(config.remote_images)
        self.metrics = metrics or ProxyMetrics()
        self._upstream_key = upstream_key or None
        self.pool = UpstreamPool(config.upstream.urls)
        self._headers = self.upstream_headers()
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        self.verifier = KeyVerifier({k.name: k.hash for k in config.api_keys})
        self.limiter = RateLimiter(
            config.rate_limit, {k.name: k.rate_limit for k in config.api_keys if k.rate_limit is not None}
        )
        self.hash_limiter = RateLimiter(RateLimitConfig(requests_per_minute=60, burst=20))
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

    # ------------------------------------------------------------------ access
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
                        headers={"Retry-After": str(max(1, int(wait + 0.999)))},
                    )
                name = await asyncio.to_thread(self.verifier.verify, presented)
            if name is None:
                raise ProxyError(401, "incorrect API key", code="invalid_api_key")
        else:
            name = f"anonymous:{client_address or 'unknown'}"
        wait = self.limiter.acquire(name)
        if wait > 0:
            raise ProxyError(
                429,
                f"rate limit exceeded; retry in {wait:.1f} s",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        return name

    def upstream_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._upstream_key:
            headers["Authorization"] = f"Bearer {self._upstream_key}"
        return headers

    def redact(self, text: str) -> str:
        """``text`` without the upstream key."""
        return redact(text, [self._upstream_key or ""])

    # ------------------------------------------------------------------ chat
    async def guard(self, body: Any, *, client_key: str = "anonymous") -> GuardedRequest:
        """Validate ``body``, load its images and judge its last user turn (no upstream call).

        The result holds the rewrite and, unless the decision is ``refuse``, the body to send
        upstream: the client's own dict with the last user turn's text replaced when rewritten.
        Images are loaded and the request analysed inside an analysis slot of the
        :class:`~vlmguard.server.admission.Admission` lanes (429 / 503 when none can be had).
        """
        start = time.perf_counter()
        request = parse_chat_request(body)
        limits = self.config.limits
        if len(request.messages) > limits.max_messages:
            raise ProxyError(
                400,
                f"{len(request.messages)} messages, over the limit of {limits.max_messages}",
                code="too_many_messages",
                param="messages",
            )
        refs = image_refs(request)
        async with self.admission.lane(bool(refs)).slot(client_key):
            return await self._guard_admitted(body, request, refs, start)

    async def _guard_admitted(
        self, body: Any, request: ChatCompletionRequest, refs: list[ImageRef], start: float
    ) -> GuardedRequest:
        limits = self.config.limits
        images = await self.images.load(refs)
        messages = to_messages(request, images)
        try:
            index = last_user_index(messages)
        except ValueError:
            raise ProxyError(
                400, "the conversation has no user message", code="no_user_message", param="messages"
            ) from None
        last_text = "\n\n".join(request.messages[index].text_parts())
        try:
            prompt = clean_prompt(last_text, max_chars=limits.max_prompt_chars, allow_empty=True)
        except InputError as exc:
            code = exc.code or "invalid_prompt"
            raise ProxyError(400, str(exc), code=code, param=f"messages.{index}.content") from None
        if not prompt and not messages[index].images:
            raise ProxyError(
                400,
                "the last user message has neither text nor an image",
                code="empty_prompt",
                param=f"messages.{index}.content",
            )
        judged = await self._judge(prompt, images_for_analysis(messages, index))
        rewrite = judged.rewrite
        self.metrics.decisions.labels(rewrite.decision.value, judged.fallback or "none").inc()
        if rewrite.decision == Decision.REFUSE:
            text = self.config.refusal_message or refusal_message(rewrite.report)
            return GuardedRequest(request, judged, start, None, text)
        return GuardedRequest(
            request, judged, start, self._upstream_body(body, request, index, images, rewrite)
        )

    def extension(
        self, guarded: GuardedRequest, *, upstream_s: float | None, request_id: str
    ) -> dict[str, Any] | None:
        """The ``vlmguard`` object for ``guarded`` (``None`` when disabled in the config)."""
        return self._extension(
            guarded.judged,
            upstream_called=upstream_s is not None,
            start=guarded.start,
            upstream_s=upstream_s,
            request_id=request_id,
        )

    async def chat(
        self, body: Any, *, request_id: str, client_key: str = "anonymous"
    ) -> JSONResult | StreamResult:
        """Handle one decoded ``/v1/chat/completions`` body of the client ``client_key``."""
        guarded = await self.guard(body, client_key=client_key)
        request, judged, start = guarded.request, guarded.judged, guarded.start
        rewrite = judged.rewrite
        model = request.model
        stream = bool(request.stream)
        if guarded.upstream_body is None:
            text = guarded.refusal or ""
            ext = self._extension(
                judged, upstream_called=False, start=start, upstream_s=None, request_id=request_id
            )
            log.info(
                "request %s decision=refuse fallback=%s upstream=no", request_id, judged.fallback or "none"
            )
            completion_id = new_completion_id()
            if stream:
                return StreamResult(self._refusal_stream(text, model, completion_id, ext))
            answer = assistant_completion(text, model=model, completion_id=completion_id)
            if ext is not None:
                answer["vlmguard"] = ext
            return JSONResult(200, answer)
        payload = json.dumps(guarded.upstream_body, separators=(",", ":")).encode()
        if stream:
            return await self._stream(payload, judged, start, request_id, model)
        upstream_start = time.perf_counter()
        data = await self._post_json(payload)
        upstream_s = time.perf_counter() - upstream_start
        self.metrics.upstream_seconds.labels("false").observe(upstream_s)
        ext = self._extension(
            judged, upstream_called=True, start=start, upstream_s=upstream_s, request_id=request_id
        )
        if ext is not None:
            data["vlmguard"] = ext
        log.info(
            "request %s decision=%s fallback=%s upstream_ms=%.1f",
            request_id,
            rewrite.decision.value,
            judged.fallback or "none",
            upstream_s * 1000,
        )
        return JSONResult(200, data)

    async def _judge(self, prompt: str, images: Sequence[ImageData]) -> _Judged:
        if self.rewriter is None:
            raise ProxyError(503, "the guard is still loading", code="not_ready")
        start = time.perf_counter()
        reason: str | None = None
        rewrite: Rewrite | None = None
        timeout = self.config.timeouts.rewriter_s
        try:
            rewrite = await asyncio.wait_for(self.rewriter.rewrite(prompt, images), timeout=timeout)
        except asyncio.TimeoutError:
            reason = f"the rewriter did not answer within {timeout:g} s"
        except InputError as exc:
            raise ProxyError(400, str(exc), code=exc.code or "invalid_input") from None
        except Exception as exc:  # the guard could not judge: the fail policy decides below
            reason = f"the rewriter failed ({type(exc).__name__})"
            log.warning("rewriter failed: %s: %s", type(exc).__name__, self.redact(str(exc))[:300])
        elapsed = time.perf_counter() - start
        self.metrics.rewrite_seconds.observe(elapsed)
        if rewrite is None:
            assert reason is not None
            self.metrics.errors.labels("rewriter_failure").inc()
            rewrite = fallback_rewrite(
                prompt,
                self.config.fail_policy,
                rewriter=getattr(self.rewriter, "name", "?"),
                error=reason,
                latency_s=elapsed,
            )
        fallback = rewrite.fallback
        if fallback == "fail_closed" and self.config.fail_closed_action == "refuse":
            rewrite = self._fallback_refusal(rewrite)
        if fallback is not None:
            log.info("fail policy %s applied: %s", fallback, rewrite.error)
        return _Judged(rewrite, elapsed, fallback, rewrite.error if fallback else None)

    @staticmethod
    def _fallback_refusal(rewrite: Rewrite) -> Rewrite:
        finding = Finding(
            modality=Modality.CROSS_MODAL,
            severity=Severity.LOW,
            source="fallback",
            evidence=f"the request could not be analysed ({rewrite.error}); fail_closed policy applied",
        )
        report = RiskReport(
            findings=[finding],
            severity=Severity.LOW,
            decision=Decision.REFUSE,
            analysis="The risk could not be analysed; the request was refused (fail-closed).",
        )
        return rewrite.model_copy(update={"report": report, "prompt": ""})

    def _extension(
        self,
        judged: _Judged,
        *,
        upstream_called: bool,
        start: float,
        upstream_s: float | None,
        request_id: str,
    ) -> dict[str, Any] | None:
        if not self.config.extension:
            return None
        return VLMGuardExtension.build(
            judged.rewrite,
            upstream_called=upstream_called,
            rewrite_s=judged.rewrite_s,
            total_s=time.perf_counter() - start,
            upstream_s=upstream_s,
            request_id=request_id,
            fallback=judged.fallback,
            fallback_reason=judged.fallback_reason,
        ).model_dump(mode="json")

    def _upstream_body(
        self,
        body: dict[str, Any],
        request: ChatCompletionRequest,
        index: int,
        images: dict[tuple[int, int], ImageData],
        rewrite: Rewrite,
    ) -> dict[str, Any]:
        out = dict(body)
        messages = list(body["messages"])
        for (mi, pi), image in images.items():
            part = request.messages[mi].content[pi]  # type: ignore[index]
            assert isinstance(part, ImageContentPart)
            if not part.image_url.url.startswith("data:"):
                # send the bytes that were analysed, not a URL the upstream would fetch again
                message = dict(messages[mi])
                content = list(message["content"])
                raw = dict(content[pi])
                detail = part.image_url.detail
                raw["image_url"] = {"url": image.data_uri(), **({"detail": detail} if detail else {})}
                content[pi] = raw
                message["content"] = content
                messages[mi] = message
        if rewrite.decision != Decision.FORWARD or rewrite.changed:
            messages[index] = replace_text(messages[index], rewrite.prompt)
        out["messages"] = messages
        return out

    # ------------------------------------------------------------------ upstream
    def _map_status(self, status: int, content: bytes) -> ProxyError:
        detail = ""
        try:
            data = json.loads(content[:_MAX_ERROR_BODY])
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

    def _transport_error(self, exc: Exception) -> ProxyError:
        if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
            self.metrics.errors.labels("upstream_timeout").inc()
            return ProxyError(504, "the upstream did not answer in time", code="upstream_timeout")
        self.metrics.errors.labels("upstream_unreachable").inc()
        return ProxyError(
            502, f"the upstream could not be reached ({type(exc).__name__})", code="upstream_unreachable"
        )

    async def _send(
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
        headers = self._headers
        timeouts = httpx.Timeout(timeout, connect=self.config.timeouts.upstream_connect_s)
        for base in urls:
            url = self._urls.get((base, path))
            if url is None:
                url = self._urls[(base, path)] = httpx.URL(base + path)
            request = self.client.build_request(
                method, url, content=payload, headers=headers, timeout=timeouts
            )
            try:
                try:
                    return await self.client.send(request, stream=stream)
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                    log.info("upstream closed a reused connection (%s); retrying once", type(exc).__name__)
                    request = self.client.build_request(
                        method, url, content=payload, headers=headers, timeout=timeouts
                    )
                    return await self.client.send(request, stream=stream)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from None
        assert last is not None
        raise self._transport_error(last) from None

    async def _post_json(self, payload: bytes) -> dict[str, Any]:
        timeout = self.config.timeouts.upstream_s
        try:
            response = await asyncio.wait_for(
                self._send("POST", "/chat/completions", payload, stream=False, timeout=timeout),
                timeout=timeout,
            )
        except asyncio.TimeoutError:
            raise self._transport_error(asyncio.TimeoutError()) from None
        if response.status_code != 200:
            raise self._map_status(response.status_code, response.content)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.metrics.errors.labels("upstream_bad_response").inc()
            raise ProxyError(
                502,
                "the upstream answered with something that is not a JSON object",
                code="upstream_bad_response",
            )
        return data

    async def _stream(
        self, payload: bytes, judged: _Judged, start: float, request_id: str, model: str
    ) -> StreamResult:
        upstream_start = time.perf_counter()
        response = await self._send(
            "POST", "/chat/completions", payload, stream=True, timeout=self.config.timeouts.upstream_s
        )
        if response.status_code != 200:
            try:
                content = await self._read_bounded(response)
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise self._map_status(response.status_code, content)
        return StreamResult(self._relay(response, judged, start, upstream_start, request_id, model))

    @staticmethod
    async def _read_bounded(response: httpx.Response) -> bytes:
        out = bytearray()
        async for chunk in response.aiter_bytes():
            out += chunk
            if len(out) >= _MAX_ERROR_BODY:
                break
        return bytes(out)

    async def _relay(
        self,
        response: httpx.Response,
        judged: _Judged,
        start: float,
        upstream_start: float,
        request_id: str,
        model: str,
    ) -> AsyncIterator[bytes]:
        completion_id: str | None = None
        finished = False
        try:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    if completion_id is None and data.startswith("{"):
                        with contextlib.suppress(ValueError):
                            completion_id = str(json.loads(data).get("id") or "") or None
                yield (line + "\n").encode()
        except httpx.HTTPError as exc:
            err = self._transport_error(exc)
            log.warning("request %s upstream stream broke: %s", request_id, type(exc).__name__)
            yield _sse(err.body())
            return
        finally:
            await response.aclose()
            upstream_s = time.perf_counter() - upstream_start
            self.metrics.upstream_seconds.labels("true").observe(upstream_s)
        ext = self._extension(
            judged, upstream_called=True, start=start, upstream_s=upstream_s, request_id=request_id
        )
        log.info(
            "request %s decision=%s fallback=%s stream upstream_ms=%.1f complete=%s",
            request_id,
            judged.rewrite.decision.value,
            judged.fallback or "none",
            upstream_s * 1000,
            finished,
        )
        if ext is not None:
            yield _sse(extension_chunk(ext, model=model, completion_id=completion_id or new_completion_id()))
        yield b"data: [DONE]\n\n"

    async def _refusal_stream(
        self, text: str, model: str, completion_id: str, ext: dict[str, Any] | None
    ) -> AsyncIterator[bytes]:
        for chunk in assistant_chunks(text, model=model, completion_id=completion_id):
            yield _sse(chunk)
        if ext is not None:
            yield _sse(extension_chunk(ext, model=model, completion_id=completion_id))
        yield b"data: [DONE]\n\n"

    # ------------------------------------------------------------------ models and readiness
    async def list_models(self) -> JSONResult:
        """``/v1/models``: the configured model ids, or the upstream's list."""
        configured = self.config.upstream.models
        if configured is not None:
            return JSONResult(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "vlmguard"} for m in configured
                    ],
                },
            )
        timeout = self.config.timeouts.upstream_s
        response = await self._send("GET", "/models", None, stream=False, timeout=timeout)
        if response.status_code != 200:
            raise self._map_status(response.status_code, response.content)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProxyError(
                502, "the upstream's model list is not a JSON object", code="upstream_bad_response"
            )
        return JSONResult(200, data)

    async def upstream_reachable(self) -> bool:
        """True when an upstream answers ``GET /models`` with any status below 500."""
        timeout = self.config.timeouts.readiness_s
        try:
            response = await asyncio.wait_for(
                self._send("GET", "/models", None, stream=False, timeout=timeout), timeout=timeout
            )
        except (ProxyError, asyncio.TimeoutError):
            return False
        return response.status_code < 500


def error_result(exc: ProxyError) -> JSONResult:
    """The JSON answer of a :class:`ProxyError`."""
    return JSONResult(exc.status, exc.body(), dict(exc.headers))


__all__ = [
    "ChatMessage",
    "GuardService",
    "JSONResult",
    "StreamResult",
    "error_body",
    "error_result",
    "parse_chat_request",
    "replace_text",
    "to_messages",
]
