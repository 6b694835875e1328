"""The OpenAI chat-completions wire format, as clients send it and as the proxy answers.

The request models accept what clients send: ``content`` as a string or a list of parts,
``image_url`` as a string or ``{url, detail}``, and unknown extra fields anywhere (they are passed
through to the upstream untouched). The fields they know are typed strictly, and every text they
read goes through :func:`vlmguard.text.normalize_text` (the guard's one text boundary). The proxy
validates with these models and forwards the client's own JSON, changed only where the guard
changes it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from vlmguard.text import normalize_text
from vlmguard.types import Rewrite


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ImageURL(_Open):
    """``{"url": ..., "detail": ...}``."""

    url: str
    detail: str | None = None


class TextContentPart(_Open):
    type: Literal["text"]
    text: StrictStr

    @field_validator("text")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalize_text(value)


class ImageContentPart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _string_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value


class OtherContentPart(_Open):
    """A part type the guard does not read (audio, files...): refused in user turns."""

    type: str


ContentPart = TextContentPart | ImageContentPart | OtherContentPart


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        if isinstance(value, list):
            parts: list[Any] = []
            for item in value:
                if not isinstance(item, dict):
                    raise ValueError("each content part must be an object with a 'type'")
                kind = item.get("type")
                if kind == "text":
                    parts.append(TextContentPart.model_validate(item))
                elif kind == "image_url":
                    parts.append(ImageContentPart.model_validate(item))
                elif isinstance(kind, str):
                    parts.append(OtherContentPart.model_validate(item))
                else:
                    raise ValueError("each content part needs a string 'type'")
            return parts
        if isinstance(value, str):
            return normalize_text(value)
        return value

    def text_parts(self) -> list[str]:
        if isinstance(self.content, str):
            return [self.content]
        if self.content is None:
            return []
        return [p.text for p in self.content if isinstance(p, TextContentPart)]

    def image_parts(self) -> list[ImageContentPart]:
        if isinstance(self.content, list):
            return [p for p in self.content if isinstance(p, ImageContentPart)]
        return []


Number = StrictInt | StrictFloat


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(_Open):
    """``POST /v1/chat/completions`` body. Fields the proxy does not read are passed through.

    The fields of the OpenAI API that the proxy knows are typed strictly (``"stream": "yes"`` or
    ``"n": "2"`` is a 400, not a guess), so the guard and the upstream read the same request.
    """

    model: StrictStr = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1, le=128)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, ge=0, le=1)
    presence_penalty: Number | None = Field(None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(None, ge=-2, le=2)
    seed: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)
    stop: StrictStr | list[StrictStr] | None = None
    user: StrictStr | None = None
    logit_bias: dict[str, Number] | None = None
    parallel_tool_calls: StrictBool | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class Latencies(BaseModel):
    """Milliseconds spent in the guard, in the upstream and in total."""

    rewrite_ms: float
    upstream_ms: float | None = None
    total_ms: float


class VLMGuardExtension(BaseModel):
    """The ``vlmguard`` object added to responses (disable with ``extension: false``)."""

    decision: str
    severity: str
    categories: list[str]
    report: dict[str, Any]
    """The full risk report: findings per modality, categories, severity, decision, analysis."""
    rewritten: bool
    rewritten_prompt: str | None
    rewriter: str
    upstream_called: bool
    fallback: str | None = None
    """``fail_closed`` / ``fail_open`` when the guard could not judge the request, else ``None``."""
    fallback_reason: str | None = None
    latency: Latencies
    request_id: str

    @classmethod
    def build(
        cls,
        rewrite: Rewrite,
        *,
        upstream_called: bool,
        rewrite_s: float,
        total_s: float,
        upstream_s: float | None,
        request_id: str,
        fallback: str | None = None,
        fallback_reason: str | None = None,
    ) -> VLMGuardExtension:
        report = rewrite.report
        return cls(
            decision=report.decision.value,
            severity=report.severity.value,
            categories=[c.value for c in report.categories],
            report=report.model_dump(mode="json"),
            rewritten=rewrite.changed,
            rewritten_prompt=rewrite.prompt if rewrite.prompt else None,
            rewriter=rewrite.rewriter,
            upstream_called=upstream_called,
            fallback=fallback or rewrite.fallback,
            fallback_reason=fallback_reason or rewrite.error,
            latency=Latencies(
                rewrite_ms=round(rewrite_s * 1000, 3),
                total_ms=round(total_s * 1000, 3),
                upstream_ms=None if upstream_s is None else round(upstream_s * 1000, 3),
            ),
            request_id=request_id,
        )


def new_completion_id() -> str:
    return f"chatcmpl-vlmguard-{uuid.uuid4().hex[:24]}"


def assistant_completion(
    text: str, *, model: str, completion_id: str, finish_reason: str = "stop"
) -> dict[str, Any]:
    """A ``chat.completion`` body answered by the proxy itself (a refusal)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def assistant_chunks(
    text: str, *, model: str, completion_id: str, finish_reason: str = "stop"
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer by the proxy itself."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    return [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": text}, None),
        chunk({}, finish_reason),
    ]


def extension_chunk(extension: dict[str, Any], *, model: str, completion_id: str) -> dict[str, Any]:
    """The last chunk of a stream (just before ``[DONE]``): no choices, the ``vlmguard`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "vlmguard": extension,
    }
