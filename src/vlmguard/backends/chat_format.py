"""Messages as chat-template dicts: the form transformers' ``apply_chat_template`` and TRL datasets take.

Each message becomes ``{"role": ..., "content": [...]}`` with ``{"type": "image"}`` placeholders where
its images are (the pixels travel separately) and ``{"type": "text", "text": ...}`` parts for text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlmguard.types import ImagePart, Message


def chat_template_message(message: Message) -> dict[str, Any]:
    """One message as a chat-template dict, its parts in order (image placeholders, text parts)."""
    content: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            content.append({"type": "image"})
        else:
            content.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": content}


def chat_template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as chat-template dicts, in order."""
    return [chat_template_message(m) for m in messages]
