"""The SmolLM2 offline target: prompt format and spec (fast), real generation (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from image_drawing import to_image_data
from vlmguard.backends.evidence_adapter import EvidenceAdapterVLM
from vlmguard.backends.smollm2 import (
    DEFAULT_SYSTEM,
    SmolLM2VLM,
    _cut_at_stop,
    chatml,
    cpu_has_fast_bf16,
    gguf_path,
    resolve_dtype,
    smollm2_from_spec,
)
from vlmguard.backends.spec import load_backend
from vlmguard.errors import ConfigError, InputError
from vlmguard.perception.image_evidence import ImagePerceiver
from vlmguard.types import GenerateConfig, Message


def test_chatml_adds_default_system_and_opens_assistant_turn() -> None:
    prompt = chatml([Message.user("Hi")])
    assert prompt == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_chatml_keeps_given_system_and_history_and_prefix() -> None:
    msgs = [Message.system("Be brief."), Message.user("a"), Message.assistant("b"), Message.user("c")]
    prompt = chatml(msgs, prefix="Sure,")
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert DEFAULT_SYSTEM not in prompt
    assert "<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\nSure,")


def test_chatml_refuses_images() -> None:
    img = to_image_data(Image.new("RGB", (8, 8)))
    with pytest.raises(InputError):
        chatml([Message.user("what is this", img)])


def test_cut_at_stop() -> None:
    assert _cut_at_stop("abc<|im_end|>junk", ()) == ("abc", True)
    assert _cut_at_stop("one. two.", (" two",)) == ("one.", True)
    assert _cut_at_stop("plain", ()) == ("plain", False)


def test_spec_wraps_in_evidence_adapter_by_default_and_loads_nothing() -> None:
    vlm = load_backend("smollm2:")
    assert isinstance(vlm, EvidenceAdapterVLM)
    assert isinstance(vlm.inner, SmolLM2VLM) and vlm.inner._engine is None
    bare = smollm2_from_spec("default", {"evidence": "0", "max_new_tokens": "16", "threads": "1"})
    assert isinstance(bare, SmolLM2VLM) and bare.max_new_tokens == 16 and bare.threads == 1
    adapted = smollm2_from_spec("", {"evidence_nudity": "0"})
    assert isinstance(adapted, EvidenceAdapterVLM) and adapted.perceiver.use_nudity is False


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("other-model", {}),
        ("", {"max_new_tokens": "x"}),
        ("", {"temperature": "1"}),
        ("", {"engine": "onnx"}),
        ("", {"max_new_tokens": "0"}),
        ("", {"cache": "perhaps"}),
        ("", {"dtype": "int4"}),
    ],
)
def test_spec_errors(target: str, options: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        smollm2_from_spec(target, dict(options))


def test_dtype_resolution() -> None:
    assert resolve_dtype("float32") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    assert resolve_dtype("auto") == ("bfloat16" if cpu_has_fast_bf16() else "float32")
    assert SmolLM2VLM(dtype="float32").dtype == "float32"


def test_gguf_is_found_without_importing_the_package() -> None:
    pytest.importorskip("gguf")
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


@pytest.mark.slow
async def test_smollm2_really_generates_and_sees_images_as_text(tmp_path: Path) -> None:
    vlm = EvidenceAdapterVLM(
        SmolLM2VLM(max_new_tokens=24, cache_dir=tmp_path, engine="transformers"),
        ImagePerceiver(ocr=True, labels=False, nudity=False),
    )
    try:
        out = await vlm.generate(
            [Message.user("What is the capital of France? Answer in one word.")],
            GenerateConfig(max_tokens=24),
        )
        assert "paris" in out.text.lower()
        assert out.usage is not None and 0 < out.usage.completion_tokens <= 24
        assert out.finish_reason in ("stop", "length")
        img = to_image_data(Image.new("RGB", (64, 64), (255, 255, 255)))
        again = await vlm.generate([Message.user("Describe the image.", img)], GenerateConfig(max_tokens=8))
        assert again.text and again.usage is not None and again.usage.completion_tokens <= 8
        assert isinstance(vlm, EvidenceAdapterVLM)
        prefixed = await vlm.generate_with_prefix(  # type: ignore[attr-defined]
            [Message.user("Name a colour.")], "My favourite colour is", GenerateConfig(max_tokens=6)
        )
        assert prefixed.text and not prefixed.text.startswith("My favourite")
    finally:
        await vlm.aclose()
    # the converted model was kept and a second model loads from it
    kept = [p for p in tmp_path.iterdir() if (p / "config.json").is_file()]
    assert len(kept) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".smollm2-")]
    again = SmolLM2VLM(max_new_tokens=8, cache_dir=tmp_path, engine="transformers")
    try:
        out = await again.generate([Message.user("Say hello.")])
        assert out.text
    finally:
        await again.aclose()
