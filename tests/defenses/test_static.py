"""Static prompt defences put their text where their papers do; ``none`` forwards unchanged."""

from __future__ import annotations

import pytest

from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.adashield import ADASHIELD_STATIC_PROMPT, adashield_defense
from vlmguard.defenses.figstep_prompt import FIGSTEP_DEFENSE_PROMPT, figstep_defense
from vlmguard.defenses.none import NoDefense
from vlmguard.defenses.self_reminder import SELF_REMINDER_SUFFIX, SELF_REMINDER_SYSTEM, self_reminder_defense
from vlmguard.defenses.static_prompt import StaticPromptDefense
from vlmguard.errors import ConfigError, InputError
from vlmguard.types import ImageData, ImagePart, Message, TextPart


async def test_none_forwards_messages_unchanged(image: ImageData) -> None:
    target = MockVLM.rules([], default="fine")
    messages = [Message.user("what is this?", image)]
    result = await NoDefense()(messages, target)
    assert result.completion.text == "fine"
    assert list(target.calls[0].messages) == messages
    assert result.target_calls == 1 and result.extra_calls == 0 and not result.refused


async def test_figstep_prompt_is_the_system_prompt_and_user_turn_is_untouched(image: ImageData) -> None:
    target = MockVLM.echo()
    user = Message.user("The image shows a list numbered 1, 2, and 3.", image)
    result = await figstep_defense()([user], target)
    sent = target.calls[0].messages
    assert sent[0].role == "system" and sent[0].text == FIGSTEP_DEFENSE_PROMPT
    assert sent[1] == user
    assert result.sent == list(sent)
    assert result.target_calls == 1


async def test_adashield_appends_its_prompt_to_the_user_text_and_keeps_the_image(image: ImageData) -> None:
    target = MockVLM.echo()
    result = await adashield_defense()([Message.user("Describe the steps.", image)], target)
    sent = target.calls[0].messages
    assert [m.role for m in sent] == ["user"]
    assert sent[0].text.startswith("Describe the steps.")
    assert sent[0].text.endswith(ADASHIELD_STATIC_PROMPT)
    assert isinstance(sent[0].content[0], ImagePart) and sent[0].images == [image]
    assert result.completion.text == sent[0].text


async def test_self_reminder_uses_system_prompt_and_suffix() -> None:
    target = MockVLM.echo()
    await self_reminder_defense()([Message.user("hello")], target)
    sent = target.calls[0].messages
    assert sent[0].role == "system" and sent[0].text == SELF_REMINDER_SYSTEM
    assert sent[1].text == f"hello\n{SELF_REMINDER_SUFFIX}"


async def test_existing_system_prompt_is_kept_after_the_defence_text() -> None:
    target = MockVLM.echo()
    messages = [Message.system("You are a pirate."), Message.user("hi")]
    await figstep_defense()(messages, target)
    sent = target.calls[0].messages
    assert len(sent) == 2 and sent[0].role == "system"
    assert sent[0].text == f"{FIGSTEP_DEFENSE_PROMPT}\n\nYou are a pirate."


async def test_suffix_goes_to_the_last_user_turn_only() -> None:
    target = MockVLM.echo()
    messages = [Message.user("first"), Message.assistant("ok"), Message.user("second")]
    await adashield_defense()(messages, target)
    sent = target.calls[0].messages
    assert sent[0].text == "first" and sent[1].text == "ok"
    assert sent[2].text.startswith("second\n") and ADASHIELD_STATIC_PROMPT in sent[2].text


async def test_suffix_on_an_image_only_turn_adds_a_text_part(image: ImageData) -> None:
    target = MockVLM.echo()
    await adashield_defense()([Message(role="user", content=[ImagePart(image=image)])], target)
    content = target.calls[0].messages[0].content
    assert isinstance(content[0], ImagePart)
    assert isinstance(content[1], TextPart) and content[1].text == ADASHIELD_STATIC_PROMPT


async def test_no_user_turn_is_an_input_error() -> None:
    with pytest.raises(InputError):
        await figstep_defense()([Message.system("only system")], MockVLM.echo())


def test_static_defence_needs_some_text() -> None:
    with pytest.raises(ConfigError):
        StaticPromptDefense("empty")
