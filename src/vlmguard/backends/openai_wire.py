"""The OpenAI chat-completions wire format: messages and sampling fields out, answers and error
messages in. Shared by the HTTP backend (:mod:`vlmguard.backends.openai_compat`) and the in-process
llama.cpp backend, which speaks the same format."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from vlmguard.errors import BackendError
from vlmguard.types import GenerateConfig, ImagePart, Message, TextPart, Usage

if TYPE_CHECKING:
    import httpx

_MAX_ERROR_CHARS = 300


def message_to_wire(message: Message) -> dict[str, Any]:
    """One message in the chat-completions wire format.

    Text-only messages carry a plain string (the form every server accepts); messages with images
    carry a list of ``text`` and ``image_url`` parts in their original order.
    """
    if not any(isinstance(p, ImagePart) for p in message.content):
        return {"role": message.role, "content": message.text}
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image_url", "image_url": {"url": part.image.data_uri()}})
    return {"role": message.role, "content": parts}


def config_to_wire(config: GenerateConfig) -> dict[str, Any]:
    """Sampling fields of a request body. One answer is asked for (``n=1``) whatever ``config.n`` says."""
    body: dict[str, Any] = {
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "n": 1,
    }
    if config.stop:
        body["stop"] = list(config.stop)
    if config.seed is not None:
        body["seed"] = config.seed
    return body


def server_message(response: httpx.Response) -> str:
    """The error message in a response body, in the shapes servers use, shortened."""
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("type")
        elif isinstance(err, str):
            message = err
        message = message or data.get("message") or data.get("detail")
    if not message:
        message = text.strip() or response.reason_phrase or "no message"
    message = " ".join(str(message).split())
    return message if len(message) <= _MAX_ERROR_CHARS else message[:_MAX_ERROR_CHARS] + "..."


def parse_chat_response(data: Any, *, default_model: str) -> tuple[str, str, Usage | None, str | None]:
    """``(text, model, usage, finish_reason)`` from a chat-completions response body.

    Raises :class:`BackendError` naming what is missing or malformed.
    """
    if not isinstance(data, dict):
        raise BackendError(f"response is JSON but not an object ({type(data).__name__})")
    if "error" in data and "choices" not in data:
        raise BackendError(f"server returned an error: {data['error']}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BackendError("response has no choices")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise BackendError("response choice has no message")
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise BackendError(f"response message content is {type(content).__name__}, not text")
    usage: Usage | None = None
    raw_usage = data.get("usage")
    if isinstance(raw_usage, dict):
        try:
            usage = Usage(
                prompt_tokens=int(raw_usage.get("prompt_tokens") or 0),
                completion_tokens=int(raw_usage.get("completion_tokens") or 0),
            )
        except (TypeError, ValueError):
            usage = None
    model = data.get("model") if isinstance(data.get("model"), str) else default_model
    finish = first.get("finish_reason")
    return content, model or default_model, usage, finish if isinstance(finish, str) else None


__all__ = ["config_to_wire", "message_to_wire", "parse_chat_response", "server_message"]
