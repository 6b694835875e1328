"""Shared fixtures: tiny images drawn in memory, text drawn in a real font, the real OCR engine (loaded
once, on first use), offline environment, paths to shared data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from image_drawing import draw_text, to_image_data
from vlmguard.testing.images import make_png
from vlmguard.types import ImageData

# Anything that reaches a model hub must fail fast, never hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def png_bytes() -> bytes:
    return make_png()


@pytest.fixture
def image_factory() -> Callable[..., bytes]:
    return make_png


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    path.write_bytes(make_png())
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def text_image() -> Callable[..., ImageData]:
    def make(lines: list[str], **kw: Any) -> ImageData:
        return to_image_data(draw_text(lines, **kw))

    return make


@pytest.fixture(scope="session")
def ocr_engine() -> Any:
    """The real RapidOCR engine, loaded once per test session (about half a second)."""
    pytest.importorskip("rapidocr_onnxruntime")
    from vlmguard.perception.ocr import OcrEngine

    engine = OcrEngine(threads=1)
    engine.load()
    return engine


@pytest.fixture(scope="session")
def ocr_perceiver(ocr_engine: Any) -> Any:
    """A perceiver with the real OCR only (labels and nudity off)."""
    from vlmguard.perception.image_evidence import ImagePerceiver

    return ImagePerceiver(ocr=True, labels=False, nudity=False, ocr_engine=ocr_engine)
