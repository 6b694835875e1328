"""ETA: evaluate (post-check answer, pre-check image), then safety prefix + sentence-level best-of-N."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vlmguard.backends.cache import CachedVLM
from vlmguard.backends.limit import ConcurrencyLimitedVLM
from vlmguard.backends.mock import MockVLM
from vlmguard.backends.retry import RetryingVLM
from vlmguard.defenses.eta import SAFETY_PREFIX, ETADefense, find_prefill_target, first_sentence
from vlmguard.defenses.scorers import FixedImageScorer, FunctionTextScorer, LexicalRelevance, NoRelevance
from vlmguard.errors import UnsupportedError
from vlmguard.types import Completion, GenerateConfig, ImageData, Message, Usage

HARMFUL = "Here is how to build a weapon."


def harm(text: str) -> float:
    return 0.9 if "weapon" in text else 0.05


def continuation(prefix: str, seed: int) -> tuple[str, str]:
    """Step 1 offers three sentences (by seed); after the safe one, the model ends its answer."""
    if "safely." in prefix or "help with that." in prefix:
        return " Done.", "stop"
    options = [
        "Here is how to build a weapon. Step one.",
        "I cannot help with that. Anything else?",
        "Let me explain the picture safely. Then more.",
    ]
    return options[seed % 3], "length"


def eta(**kwargs: Any) -> ETADefense:
    defaults: dict[str, Any] = {
        "pre": FixedImageScorer(0.9),
        "post": FunctionTextScorer(harm),
        "relevance": LexicalRelevance(),
        "n": 3,
    }
    defaults.update(kwargs)
    return ETADefense(**defaults)


async def test_aligns_with_prefix_and_keeps_the_best_scored_sentence(
    prefill_mock: Any, image: ImageData
) -> None:
    target = prefill_mock(HARMFUL, continuation)
    result = await eta()([Message.user("Explain the picture", image)], target)
    assert result.completion.text == f"{SAFETY_PREFIX}Let me explain the picture safely. Done."
    assert [p for p, _, _ in target.prefix_calls] == [SAFETY_PREFIX.rstrip()] * 3 + [
        f"{SAFETY_PREFIX}Let me explain the picture safely."
    ] * 3
    seeds = [cfg.seed for _, cfg, _ in target.prefix_calls]
    assert seeds == [0, 1, 2, 3, 4, 5]
    assert all(cfg.temperature == pytest.approx(0.8) for _, cfg, _ in target.prefix_calls)
    assert all(msgs[-1].images == [image] for _, _, msgs in target.prefix_calls)
    assert result.target_calls == 7 and len(target.calls) == 1
    assert result.completion.finish_reason == "stop"
    assert "aligned" in result.notes[0] and "best-of-3" in result.notes[0]


async def test_harm_term_beats_relevance(prefill_mock: Any, image: ImageData) -> None:
    """The harmful candidate shares the most words with the query but loses on harm."""
    target = prefill_mock(HARMFUL, continuation)
    result = await eta(relevance=NoRelevance())([Message.user("how to build a weapon", image)], target)
    assert "weapon" not in result.completion.text
    assert result.completion.text.startswith(SAFETY_PREFIX + "I cannot help with that.")


async def test_safe_answer_is_kept_without_pre_check(prefill_mock: Any, image: ImageData) -> None:
    target = prefill_mock("A harmless caption.", continuation)
    calls: list[ImageData] = []

    class CountingImageScorer(FixedImageScorer):
        async def score(self, image: ImageData, *, query: str = "") -> float:
            calls.append(image)
            return 1.0

    result = await eta(pre=CountingImageScorer(1.0))([Message.user("q", image)], target)
    assert result.completion.text == "A harmless caption."
    assert target.prefix_calls == [] and calls == []
    assert result.target_calls == 1


async def test_both_checks_must_flag_in_and_mode(prefill_mock: Any, image: ImageData) -> None:
    target = prefill_mock(HARMFUL, continuation)
    kept = await eta(pre=FixedImageScorer(0.2))([Message.user("q", image)], target)
    assert kept.completion.text == HARMFUL and target.prefix_calls == []
    assert "pre 0.20 < 0.50" in kept.notes[0]
    aligned = await eta(pre=FixedImageScorer(0.2), mode="or")([Message.user("q", image)], target)
    assert aligned.completion.text.startswith(SAFETY_PREFIX)


async def test_without_an_image_the_post_check_decides(prefill_mock: Any) -> None:
    target = prefill_mock(HARMFUL, continuation)
    result = await eta(pre=FixedImageScorer(0.0))([Message.user("tell me")], target)
    assert result.completion.text.startswith(SAFETY_PREFIX)
    assert "no image to pre-check" in result.notes[0]


async def test_black_box_target_is_unsupported_with_a_clear_message(image: ImageData) -> None:
    target = MockVLM.echo()
    with pytest.raises(UnsupportedError, match=r"white-box.*'hf:'"):
        await eta()([Message.user("q", image)], target)
    assert target.calls == []


async def test_prefill_target_is_found_through_wrappers(
    prefill_mock: Any, tmp_path: Path, image: ImageData
) -> None:
    inner = prefill_mock(HARMFUL, continuation)
    wrapped = CachedVLM(RetryingVLM(ConcurrencyLimitedVLM(inner, 2), attempts=2), tmp_path / "cache.sqlite")
    assert find_prefill_target(wrapped) is inner
    assert find_prefill_target(MockVLM.echo()) is None
    result = await eta()([Message.user("Explain the picture", image)], wrapped)
    assert result.completion.text.endswith("safely. Done.")
    assert wrapped.misses == 1
    await wrapped.aclose()


async def test_a_repeated_run_through_a_response_cache_makes_no_model_calls(
    prefill_mock: Any, tmp_path: Path, image: ImageData
) -> None:
    inner = prefill_mock(HARMFUL, continuation)
    messages = [Message.user("Explain the picture", image)]
    first_target = CachedVLM(inner, tmp_path / "cache.sqlite")
    first = await eta()(messages, first_target)
    await first_target.aclose()
    assert first.completion.calls == 7 and len(inner.prefix_calls) == 6
    again_target = CachedVLM(inner, tmp_path / "cache.sqlite")
    again = await eta()(messages, again_target)
    await again_target.aclose()
    assert again.completion.text == first.completion.text
    assert again.completion.calls == 0
    assert len(inner.prefix_calls) == 6 and len(inner.calls) == 1


async def test_token_budget_ends_the_search(prefill_mock: Any) -> None:
    target = prefill_mock(HARMFUL, lambda prefix, seed: (" One more sentence. And more.", "length"))
    config = GenerateConfig(max_tokens=7)
    result = await eta(n=2)([Message.user("q")], target, config)
    assert result.completion.finish_reason == "length"
    assert result.completion.text == SAFETY_PREFIX.rstrip() + " One more sentence." * 3
    assert all(cfg.max_tokens <= 7 for _, cfg, _ in target.prefix_calls)


async def test_an_empty_prefix_adds_no_space(prefill_mock: Any) -> None:
    target = prefill_mock(HARMFUL, lambda prefix, seed: ("Fine.", "stop"))
    result = await eta(n=1, prefix="")([Message.user("q")], target)
    assert result.completion.text == "Fine."


async def test_max_sentences_caps_the_search(prefill_mock: Any) -> None:
    target = prefill_mock(HARMFUL, lambda prefix, seed: (" Again. More.", "length"))
    result = await eta(n=1, max_sentences=2)([Message.user("q")], target)
    assert result.completion.text == "As an AI assistant, Again. Again."
    assert len(target.prefix_calls) == 2


def _completion(text: str, finish: str = "length", tokens: int | None = None) -> Completion:
    usage = Usage(completion_tokens=tokens) if tokens is not None else None
    return Completion(text=text, model="m", finish_reason=finish, usage=usage)


@pytest.mark.parametrize(
    ("text", "finish", "sentence", "ends"),
    [
        (" First one. Second one.", "length", " First one.", False),
        (" First one. Second one.", "stop", " First one.", False),
        (" Only one.", "stop", " Only one.", True),
        (" Only one.", "length", " Only one.", False),
        (" 1. Mix the flour. 2. Bake.", "length", " 1. Mix the flour.", False),
        (" A list:\n- item", "length", " A list:\n", False),
        (' He said "stop." Then left.', "length", ' He said "stop."', False),
        ("", "stop", "", True),
    ],
)
def test_first_sentence(text: str, finish: str, sentence: str, ends: bool) -> None:
    candidate = first_sentence(_completion(text, finish))
    assert (candidate.sentence, candidate.ends) == (sentence, ends)


def test_first_sentence_tokens_are_proportional_to_usage() -> None:
    candidate = first_sentence(_completion("aaaa. bbbb.", tokens=10))
    assert candidate.tokens == 5
