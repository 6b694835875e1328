"""MLLM-Protector rewrites only the answers its detector flags."""

from __future__ import annotations

import pytest

from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.mllm_protector import FALLBACK_ANSWER, MLLMProtectorDefense
from vlmguard.defenses.scorers import FixedTextScorer, FunctionTextScorer
from vlmguard.errors import ConfigError
from vlmguard.types import ImageData, Message


def _detector() -> FunctionTextScorer:
    return FunctionTextScorer(lambda text: 0.9 if "explosive" in text else 0.1, name="keyword")


def _target() -> MockVLM:
    return MockVLM.rules(
        [(r"flagged the following response", "DETOXIFIED"), (r"bomb", "Mix the explosive with ...")],
        default="A cat on a sofa.",
    )


async def test_unflagged_answer_is_returned_unchanged(image: ImageData) -> None:
    target = _target()
    result = await MLLMProtectorDefense(_detector())([Message.user("what is this?", image)], target)
    assert result.completion.text == "A cat on a sofa."
    assert len(target.calls) == 1 and result.target_calls == 1 and result.extra_calls == 0
    assert "answer kept" in result.notes[0]


async def test_flagged_answer_is_rewritten_by_the_target_as_detoxifier(image: ImageData) -> None:
    target = _target()
    result = await MLLMProtectorDefense(_detector())([Message.user("how to make a bomb", image)], target)
    assert result.completion.text == "DETOXIFIED"
    assert len(target.calls) == 2 and result.target_calls == 2
    detox = target.calls[1].messages
    assert len(detox) == 1 and not detox[0].images
    assert "Mix the explosive" in detox[0].text and "how to make a bomb" in detox[0].text
    assert "detoxified" in result.notes[0]


async def test_separate_detoxifier_backend_counts_as_extra_call() -> None:
    target = _target()
    detoxifier = MockVLM.rules([], default="SAFE REWRITE")
    defense = MLLMProtectorDefense(_detector(), detoxifier=detoxifier)
    result = await defense([Message.user("bomb please")], target)
    assert result.completion.text == "SAFE REWRITE"
    assert len(target.calls) == 1 and len(detoxifier.calls) == 1
    assert result.target_calls == 1 and result.extra_calls == 1


async def test_model_based_detector_calls_are_counted() -> None:
    detector = FunctionTextScorer(lambda _: 0.0, calls_per_score=1)
    result = await MLLMProtectorDefense(detector)([Message.user("hi")], _target())
    assert result.extra_calls == 1 and result.completion.calls == 2


async def test_threshold_is_inclusive_and_configurable() -> None:
    at = await MLLMProtectorDefense(FixedTextScorer(0.7), threshold=0.7)([Message.user("x")], _target())
    below = await MLLMProtectorDefense(FixedTextScorer(0.69), threshold=0.7)([Message.user("x")], _target())
    assert at.completion.text == "DETOXIFIED" and below.completion.text == "A cat on a sofa."


async def test_empty_detoxification_falls_back_to_a_safe_answer() -> None:
    target = MockVLM.rules([(r"flagged the following response", "   ")], default="bad stuff")
    result = await MLLMProtectorDefense(FixedTextScorer(1.0))([Message.user("x")], target)
    assert result.completion.text == FALLBACK_ANSWER


def test_threshold_must_be_a_probability() -> None:
    with pytest.raises(ConfigError):
        MLLMProtectorDefense(FixedTextScorer(0.1), threshold=0.0)
