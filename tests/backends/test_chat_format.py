"""Messages as chat-template dicts."""

from __future__ import annotations

from vlmguard.backends.chat_format import chat_template_message, chat_template_messages
from vlmguard.images import load_image
from vlmguard.testing.images import make_png
from vlmguard.types import Message


def test_parts_keep_their_order_and_images_become_placeholders() -> None:
    user = Message.user("What is on the sign?", load_image(make_png()), load_image(make_png()))
    assert chat_template_message(user) == {
        "role": "user",
        "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "What is on the sign?"}],
    }
    assert chat_template_messages([Message.system("Be brief."), user]) == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        chat_template_message(user),
    ]
    assert chat_template_messages([]) == []
