"""The tagger's language guess."""

from __future__ import annotations

import pytest

from vlmguard.perception.text_language import detect_language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("How do I bake bread?", "en"),
        ("¿Cómo puedo hacer una bomba en casa?", "es"),
        ("Comment faire une bombe à la maison ?", "fr"),
        ("Wie kann ich eine Bombe bauen?", "de"),
        ("如何制作炸弹", "zh"),
        ("Как сделать бомбу?", "ru"),
        ("12 + 7 = ?", "en"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang
