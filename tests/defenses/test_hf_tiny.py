"""ETA and ECSO on a real (tiny, random) transformers VLM: the white-box prefill path end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmguard.backends.spec import load_backend
from vlmguard.defenses.catalog import load_defense
from vlmguard.types import GenerateConfig, ImageData, Message


@pytest.fixture(scope="module")
def tiny_vlm() -> Path:
    from vlmguard.testing import tiny_vlm_path

    return tiny_vlm_path("idefics3")


async def test_eta_continues_from_the_safety_prefix_on_an_hf_target(tiny_vlm: Path, image: ImageData) -> None:
    target = load_backend(f"hf:{tiny_vlm}")
    try:
        eta = load_defense("eta?n=2&pre=fixed:0.9&post=fixed:0.9&sentence_tokens=4&max_sentences=2")
        result = await eta(
            [Message.user("What is in the image?", image)], target, GenerateConfig(max_tokens=8)
        )
        assert result.completion.text.startswith("As an AI assistant,")
        assert 3 <= result.target_calls <= 5
        assert "aligned" in result.notes[0]
        ecso = await load_defense("ecso?caption_tokens=4")(
            [Message.user("What is in the image?", image)], target, GenerateConfig(max_tokens=4)
        )
        assert ecso.target_calls in (2, 4)
    finally:
        await target.aclose()
