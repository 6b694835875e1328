"""Supported architectures: where each keeps its vision tower and projector; what LoRA and freezing train."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmguard.errors import ConfigError
from vlmguard.train.config import load_sft_config
from vlmguard.train.families import FAMILIES, family_for, supported_model_types

torch = pytest.importorskip("torch")


def test_unsupported_architecture_lists_supported_ones() -> None:
    with pytest.raises(ConfigError) as info:
        family_for("paligemma")
    message = str(info.value)
    assert "'paligemma'" in message
    for model_type in ("qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "llava", "llava_next"):
        assert model_type in message
    assert set(supported_model_types()) == {t for f in FAMILIES for t in f.model_types}


def test_part_of_sees_through_peft_prefixes() -> None:
    qwen = family_for("qwen2_5_vl")
    assert qwen.part_of("model.visual.blocks.0.attn.qkv.weight") == "vision"
    assert qwen.part_of("model.visual.merger.mlp.0.weight") == "projector"
    assert qwen.part_of("base_model.model.model.visual.merger.mlp.0.weight") == "projector"
    assert qwen.part_of("model.language_model.layers.0.mlp.up_proj.weight") == "language"
    assert family_for("llava_next").part_of("model.image_newline") == "projector"


def _tiny_model(kind: str, tmp_path: Path) -> tuple[Path, object]:
    from transformers import AutoModelForImageTextToText

    from vlmguard.testing.tiny import build_tiny_vlm

    path = build_tiny_vlm(kind, tmp_path / kind)
    return path, AutoModelForImageTextToText.from_pretrained(str(path))


@pytest.mark.parametrize("kind", ["idefics3", "llava", "qwen2_vl"])
def test_full_finetune_freezes_exactly_the_vision_tower(kind: str, tmp_path: Path) -> None:
    from vlmguard.train.model import apply_trainable

    path, model = _tiny_model(kind, tmp_path)
    family = family_for(model.config.model_type)  # type: ignore[attr-defined]
    config = load_sft_config(None, [f"base_model={path}", "train_file=t.jsonl", "method=full"], environ={})
    apply_trainable(model, config, family)
    parts: dict[str, set[bool]] = {}
    for name, param in model.named_parameters():  # type: ignore[attr-defined]
        parts.setdefault(family.part_of(name), set()).add(param.requires_grad)
    assert parts == {"vision": {False}, "projector": {True}, "language": {True}}
    config = config.model_copy(update={"freeze_vision_tower": False, "train_projector": False})
    apply_trainable(model, config, family)
    parts = {}
    for name, param in model.named_parameters():  # type: ignore[attr-defined]
        parts.setdefault(family.part_of(name), set()).add(param.requires_grad)
    assert parts == {"vision": {True}, "projector": {False}, "language": {True}}


@pytest.mark.parametrize("kind", ["idefics3", "llava", "qwen2_vl"])
def test_lora_adapts_the_language_model_only(kind: str, tmp_path: Path) -> None:
    from vlmguard.train.model import apply_trainable

    path, model = _tiny_model(kind, tmp_path)
    family = family_for(model.config.model_type)  # type: ignore[attr-defined]
    config = load_sft_config(None, [f"base_model={path}", "train_file=t.jsonl", "lora_r=4"], environ={})
    peft_model = apply_trainable(model, config, family)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    assert lora and all(family.part_of(n) == "language" for n in lora)
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    others = [n for n in trainable if "lora_" not in n]
    assert others and all(family.part_of(n) == "projector" for n in others)  # projector: modules_to_save
    # with the tower unfrozen, it gets adapters too
    _, model = _tiny_model(kind, tmp_path / "again")
    unfrozen = apply_trainable(model, config.model_copy(update={"freeze_vision_tower": False}), family)
    vision_lora = [
        n
        for n, p in unfrozen.named_parameters()
        if p.requires_grad and "lora_" in n and family.part_of(n) == "vision"
    ]
    assert vision_lora


def test_qwen2_vl_training_is_blocked_without_torchvision(tmp_path: Path, write_rows: object) -> None:
    """Qwen2-VL's processor needs torchvision; without it the run stops with a clear error."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the Qwen2-VL processor loads")
    from vlmguard.train.trainer import run_sft

    path, _ = _tiny_model("qwen2_vl", tmp_path)
    train = write_rows(n=1)  # type: ignore[operator]
    config = load_sft_config(
        None, [f"base_model={path}", f"train_file={train}", f"output_dir={tmp_path / 'run'}"], environ={}
    )
    with pytest.raises(ConfigError, match="torchvision"):
        run_sft(config)
