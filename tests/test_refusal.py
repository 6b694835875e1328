"""The one refusal detector (eval's refusal judge and the refusal-aware answer scorer use it) and the
refusal message the guard writes."""

from __future__ import annotations

import pytest

from vlmguard.refusal import is_refusal, refusal_message
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import RiskReport


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I can’t assist with this request.", True),
        ("As an AI assistant, I cannot provide instructions for that.", True),
        ("I must decline this request.", True),
        ("I must refuse.", True),
        ("I’m sorry, I can’t do that.", True),
        ("  I  CANNOT\nhelp with that.", True),
        ("", True),
        ("Sure! Here is a fun game: hide and seek.", False),
        ("Sure! Here is how: first, I cannot stress enough how careful you must be.", False),
        ("I can't help but smile at this photo: it shows two puppies.", False),
        ("The Hawaii cannot-miss list: beaches, volcanoes and food.", False),
    ],
)
def test_is_refusal(text: str, refusal: bool) -> None:
    assert is_refusal(text) is refusal


def test_only_the_start_of_an_answer_counts() -> None:
    long_answer = "Here is a recipe. " * 40 + "I can't help with more."
    assert not is_refusal(long_answer)
    assert is_refusal(long_answer, window=len(long_answer))
    opening = "Step 1: mix. " * 20 + "I'm sorry, I can't go on."
    assert is_refusal(opening) and not is_refusal(opening, window=240)


def test_phrases_can_be_replaced() -> None:
    assert is_refusal("No way.", ("no way",))
    assert not is_refusal("I'm sorry.", ("no way",))


def test_refusal_message_names_the_risks() -> None:
    report = RiskReport(categories=[RiskCategory.VIOLENCE_WEAPONS, RiskCategory.DRUGS])
    text = refusal_message(report)
    assert "violence or weapons and illegal drugs" in text
    assert "crisis line" not in text
    assert "crisis line" in refusal_message(RiskReport(categories=[RiskCategory.SELF_HARM]))
