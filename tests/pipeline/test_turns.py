"""Finding the turns to judge: the last user turn, the window before it, turn numbers and images."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pipeline_fakes import FailingRewriter

from vlmguard.errors import InputError
from vlmguard.images import load_image
from vlmguard.pipeline import ConversationWindow, PipelineConfig, RequestPipeline, select_turns
from vlmguard.types import ImageData, Message


@pytest.fixture
def red(png_bytes: bytes) -> ImageData:
    return load_image(png_bytes)


@pytest.fixture
def blue(image_factory: Callable[..., bytes]) -> ImageData:
    return load_image(image_factory(20, 20, (0, 0, 255)))


def test_system_messages_are_not_turns_and_turns_are_numbered(red: ImageData) -> None:
    messages = [
        Message.system("sys"),
        Message.user("first", red),
        Message.assistant("reply"),
        Message.system("mid-conversation instructions"),
        Message.user("  last\u200b  "),
        Message.assistant("prefill after the last user turn"),
    ]
    request = select_turns(messages)
    assert request.index == 4 and request.turn == 2 and request.prompt == "last"
    history = [(t.role, t.text, t.index) for t in request.history]
    assert history == [("user", "first", 0), ("assistant", "reply", 1)]
    # the last turn has no image: the earlier turn's image is analysed with it, and not a second time
    assert request.images == (red,) and request.history[0].images == ()


def test_own_images_stay_with_their_turns(red: ImageData, blue: ImageData) -> None:
    request = select_turns([Message.user("a", red), Message.user("b", blue)])
    assert request.images == (blue,) and request.history[0].images == (red,)


def test_the_window_counts_turns_and_characters() -> None:
    messages = [Message.user(f"turn {i} " + "x" * 10) for i in range(6)] + [Message.user("last")]
    assert [t.index for t in select_turns(messages, window=ConversationWindow(max_turns=2)).history] == [4, 5]
    cut = select_turns(messages, window=ConversationWindow(max_turns=10, max_chars=25)).history
    # the most recent turn whole (17 characters), the one before cut to what is left (its start)
    assert [(t.index, t.text) for t in cut] == [(4, "turn 4 x"), (5, "turn 5 " + "x" * 10)]
    assert select_turns(messages, window=ConversationWindow(max_chars=0)).history == ()


@pytest.mark.parametrize(
    ("messages", "code", "param"),
    [
        ([Message.system("s"), Message.assistant("a")], "no_user_message", "messages"),
        ([Message.system("s"), Message.user(" \u200b ")], "empty_prompt", "messages.1.content"),
        ([Message.user("x" * 50)], "prompt_too_long", "messages.0.content"),
    ],
)
def test_bad_conversations_raise_typed_input_errors(messages: list[Message], code: str, param: str) -> None:
    with pytest.raises(InputError) as info:
        select_turns(messages, max_prompt_chars=20)
    assert info.value.code == code and info.value.param == param


async def test_the_rewriter_gets_history_only_when_there_is_one() -> None:
    rewriter = FailingRewriter("error")
    pipeline = RequestPipeline(rewriter, PipelineConfig(fail_policy="fail_open"))
    await pipeline.run([Message.user("alone")])
    await pipeline.run([Message.user("first"), Message.assistant("reply"), Message.user("second")])
    assert rewriter.calls == [("alone", 0, 0), ("second", 0, 2)]
