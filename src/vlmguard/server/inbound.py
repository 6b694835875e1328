"""The proxy's wire adapter for inbound requests: validate the client's JSON, read it as messages for
the request pipeline, and build the body sent upstream from the client's own JSON.

The body sent upstream is the client's dict with every field passed through; only the last user
turn's text (when the plan rewrites it) and remote image URLs (replaced by the bytes that were
analysed, as data URIs) change.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from vlmguard.server.errors import ProxyError
from vlmguard.server.wire import ChatCompletionRequest, ImageContentPart, TextContentPart
from vlmguard.types import ImageData, ImagePart, Message, TextPart

_ROLES = {"developer": "system", "tool": "assistant", "function": "assistant"}


def parse_chat_request(body: Any, *, max_messages: int | None = None) -> ChatCompletionRequest:
    """Validate a decoded JSON body; raises a 400 :class:`ProxyError` naming the bad field, or
    ``too_many_messages`` past ``max_messages``."""
    if not isinstance(body, dict):
        raise ProxyError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise ProxyError(
            400, f"invalid request: {where or 'body'}: {err['msg']}", code="invalid_request", param=where
        ) from None
    if max_messages is not None and len(request.messages) > max_messages:
        raise ProxyError(
            400,
            f"{len(request.messages)} messages, over the limit of {max_messages}",
            code="too_many_messages",
            param="messages",
        )
    return request


def to_messages(request: ChatCompletionRequest, images: dict[tuple[int, int], ImageData]) -> list[Message]:
    """The request as :class:`Message` s, one per wire message (so indices match): ``developer`` as
    ``system``; tool and function output as ``assistant`` (untrusted content, like assistant turns)."""
    out: list[Message] = []
    for mi, message in enumerate(request.messages):
        role = _ROLES.get(message.role, message.role)
        parts: list[TextPart | ImagePart] = []
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


def upstream_body(
    body: dict[str, Any],
    request: ChatCompletionRequest,
    images: dict[tuple[int, int], ImageData],
    *,
    index: int,
    text: str | None,
) -> dict[str, Any]:
    """The client's ``body`` to send upstream: message ``index`` gets ``text`` when it is not ``None``;
    remote images become data URIs of the analysed bytes (the upstream does not fetch them again)."""
    out = dict(body)
    messages = list(body["messages"])
    for (mi, pi), image in images.items():
        part = request.messages[mi].content[pi]  # type: ignore[index]
        assert isinstance(part, ImageContentPart)
        if not part.image_url.url.startswith("data:"):
            message = dict(messages[mi])
            content = list(message["content"])
            raw = dict(content[pi])
            detail = part.image_url.detail
            raw["image_url"] = {"url": image.data_uri(), **({"detail": detail} if detail else {})}
            content[pi] = raw
            message["content"] = content
            messages[mi] = message
    if text is not None:
        messages[index] = replace_text(messages[index], text)
    out["messages"] = messages
    return out
