"""The tiny random VLM builder produces models that load through the Auto classes offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmguard.errors import ConfigError
from vlmguard.testing import build_tiny_vlm, chat_template


@pytest.mark.parametrize("fixture", ["tiny_idefics3", "tiny_llava"])
def test_tiny_vlm_loads_and_generates(fixture: str, request: pytest.FixtureRequest) -> None:
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path: Path = request.getfixturevalue(fixture)
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n")
    inputs = processor(text=[text], images=[[Image.new("RGB", (40, 30), (200, 0, 0))]], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert processor.tokenizer.convert_tokens_to_ids("<|im_end|>") == model.generation_config.eos_token_id


def test_tiny_builder_is_deterministic_and_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="idefics3"):
        build_tiny_vlm("gpt5", tmp_path / "x")
    assert "<image>" in chat_template("idefics3")
    assert "<|image_pad|>" in chat_template("qwen2_vl")
