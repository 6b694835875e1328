"""OCR: line grouping, reading order, and the real RapidOCR engine on text drawn with a real font."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from image_drawing import draw_text
from vlmguard.errors import ConfigError
from vlmguard.perception.ocr import MAX_SIDE, MIN_SIDE, OcrEngine, _fit, group_lines, within_budget


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_group_lines_merges_words_on_one_line_in_reading_order() -> None:
    words = [
        (0.50, 0.11, 0.70, 0.19, "world", 0.9),
        (0.10, 0.10, 0.40, 0.20, "hello", 0.8),
        (0.10, 0.50, 0.30, 0.60, "second", 1.0),
    ]
    lines = group_lines(words)
    assert [t for t, _, _ in lines] == ["hello world", "second"]
    _, score, box = lines[0]
    assert abs(score - 0.85) < 1e-9
    assert box == (0.10, 0.10, 0.70, 0.20)


def test_group_lines_keeps_separate_lines_apart() -> None:
    words = [(0.1, 0.30, 0.5, 0.40, "b", 1.0), (0.1, 0.10, 0.5, 0.20, "a", 1.0)]
    assert [t for t, _, _ in group_lines(words)] == ["a", "b"]
    assert group_lines([]) == []


def test_fit_downscales_huge_and_upscales_tiny() -> None:
    assert max(_fit(Image.new("RGB", (4000, 1000))).size) == MAX_SIDE
    assert min(_fit(Image.new("RGB", (10, 8))).size) >= MIN_SIDE
    same = Image.new("RGB", (300, 200))
    assert _fit(same) is same


def test_reads_drawn_text_exactly(ocr_engine: Any) -> None:
    img = draw_text(["How to make a cake", "Steps 1. 2. 3."])
    lines = ocr_engine.read(img).lines
    assert [_norm(line.text) for line in lines] == ["how to make a cake", "steps 1. 2. 3."]
    for line in lines:
        x0, y0, x1, y1 = line.box
        assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
        assert line.score > 0.5
    assert lines[0].box[1] < lines[1].box[1]


def test_boxes_are_read_in_order_until_the_budget_is_spent() -> None:
    # width at the recogniser's height: 48 * w / h
    assert within_budget([(48, 100), (24, 100), (48, 300)], 600) == 3
    assert within_budget([(48, 100), (24, 100), (48, 300)], 400) == 2
    assert within_budget([(48, 1000)], 999) == 0
    assert within_budget([], 1) == 0
    with pytest.raises(ConfigError):
        OcrEngine(budget=0)


def test_a_page_over_the_budget_reads_its_first_lines_and_counts_the_rest(ocr_engine: Any) -> None:
    img = draw_text(
        ["How to make a cake", "Buy flour and eggs", "Mix them well", "Bake for an hour"], size=(640, 300)
    )
    full = ocr_engine.read(img)
    assert len(full.lines) == 4 and full.unread == 0
    part = ocr_engine.read(img, 900)
    assert 1 <= len(part.lines) < 4 and part.unread == 4 - len(part.lines)
    assert [line.text for line in part.lines] == [line.text for line in full.lines[: len(part.lines)]]


def test_no_text_gives_no_lines(ocr_engine: Any) -> None:
    reading = ocr_engine.read(Image.new("RGB", (320, 240), (40, 120, 200)))
    assert reading.lines == [] and reading.unread == 0


def test_upside_down_text_is_read_through_the_angle_classifier(ocr_engine: Any) -> None:
    img = draw_text(["Forward this message"], size=(600, 100), rotate=180)
    text = " ".join(line.text for line in ocr_engine.read(img).lines)
    assert _norm(text) == "forward this message"


def test_vertical_text_is_read(ocr_engine: Any) -> None:
    img = draw_text(["Hello world"], size=(400, 100), rotate=90)
    text = " ".join(line.text for line in ocr_engine.read(img).lines)
    assert "hello" in _norm(text)


def test_huge_text_is_read(ocr_engine: Any) -> None:
    img = draw_text(["BOMB"], size=(1800, 700), font_size=400)
    text = " ".join(line.text for line in ocr_engine.read(img).lines)
    assert _norm(text) == "bomb"
