"""Small edits of a conversation that defences make: add a system prompt, a suffix, drop images."""

from __future__ import annotations

from collections.abc import Sequence

from vlmguard.backends.base import last_user_index
from vlmguard.errors import InputError
from vlmguard.types import ImageData, ImagePart, Message, Part, TextPart

IMAGE_PLACEHOLDER = "[image omitted]"


def user_turn(messages: Sequence[Message]) -> tuple[int, Message]:
    """Index and message of the last user turn; :class:`InputError` when there is none."""
    try:
        index = last_user_index(messages)
    except ValueError:
        raise InputError("the conversation has no user message") from None
    return index, messages[index]


def with_system_prompt(messages: Sequence[Message], text: str) -> list[Message]:
    """``messages`` with ``text`` as the system prompt.

    When the conversation already starts with a system message, ``text`` goes first and the
    existing system text follows it in the same message (many chat templates accept only one
    system message, at the start); otherwise a new system message is put first.
    """
    if messages and messages[0].role == "system":
        first = messages[0]
        merged = f"{text}\n\n{first.text}" if first.text.strip() else text
        return [Message.system(merged), *messages[1:]]
    return [Message.system(text), *messages]


def append_text(message: Message, suffix: str, *, separator: str = "\n") -> Message:
    """``message`` with ``suffix`` appended to its last text part (images stay where they are)."""
    parts: list[Part] = list(message.content)
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if isinstance(part, TextPart):
            joined = f"{part.text}{separator}{suffix}" if part.text else suffix
            parts[i] = TextPart(text=joined)
            return Message(role=message.role, content=parts)
    parts.append(TextPart(text=suffix))
    return Message(role=message.role, content=parts)


def with_user_suffix(messages: Sequence[Message], suffix: str) -> list[Message]:
    """``messages`` with ``suffix`` appended to the text of the last user turn."""
    index, last = user_turn(messages)
    return [*messages[:index], append_text(last, suffix), *messages[index + 1 :]]


def without_images(message: Message) -> Message:
    """``message`` with its images removed; a message that had only images gets a placeholder text."""
    parts: list[Part] = [p for p in message.content if not isinstance(p, ImagePart)]
    if not parts:
        parts = [TextPart(text=IMAGE_PLACEHOLDER)]
    return Message(role=message.role, content=parts)


def turn_images(messages: Sequence[Message], index: int) -> list[ImageData]:
    """The images of the user turn at ``index``, or of the latest earlier user turn that has some."""
    own = messages[index].images
    if own:
        return own
    for message in reversed(messages[:index]):
        if message.role == "user" and message.images:
            return message.images
    return []
