"""The model a training run trains: the base model loaded at the run's precision, and what of it trains.

:func:`load_model` loads the base model (4-bit quantised for QLoRA); :func:`apply_trainable` wraps
it in LoRA adapters or sets which full weights train (vision tower and projector frozen or not).
"""

from __future__ import annotations

from typing import Any

from vlmguard.errors import ConfigError
from vlmguard.train.config import SFTConfig
from vlmguard.train.families import VLMFamily

PRECISION_DTYPES: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
"""The torch dtype name of each precision."""


def _projector_module_names(model: Any, family: VLMFamily) -> list[str]:
    """Full names of the projector's submodules directly under the projector prefixes."""
    names = []
    for name, _ in model.named_modules():
        for prefix in family.projector:
            if prefix.endswith(".") and name == prefix[:-1]:
                names.append(name)
    return names


def apply_trainable(model: Any, config: SFTConfig, family: VLMFamily) -> Any:
    """Set what trains. Returns the model to train (a ``PeftModel`` for LoRA / QLoRA)."""
    if config.method == "full":
        for name, param in model.named_parameters():
            part = family.part_of(name)
            param.requires_grad = not (
                (part == "vision" and config.freeze_vision_tower)
                or (part == "projector" and not config.train_projector)
            )
        return model
    from peft import LoraConfig, get_peft_model

    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    targets: str | list[str] = (
        config.lora_target_modules
        if config.lora_target_modules
        else family.lora_target_regex(include_vision=not config.freeze_vision_tower)
    )
    if isinstance(targets, list) and len(targets) == 1 and any(c in targets[0] for c in "*\\|("):
        targets = targets[0]  # one regex
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        modules_to_save=_projector_module_names(model, family) if config.train_projector else None,
        task_type="CAUSAL_LM",
    )
    try:
        peft_model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"LoRA targets {targets!r} match no layer of the model: {exc}") from None
    if config.gradient_checkpointing:
        peft_model.enable_input_require_grads()
    return peft_model


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def load_model(config: SFTConfig, precision: str) -> Any:
    """The base model at ``precision`` (``bf16``, ``fp16``, ``fp32``); 4-bit NF4 for ``method=qlora``."""
    import torch
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": getattr(torch, PRECISION_DTYPES[precision])}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if config.method == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError(
                "method=qlora needs a CUDA GPU and bitsandbytes; use method=lora on this machine"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("method=qlora needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16,
        )
    try:
        return AutoModelForImageTextToText.from_pretrained(config.base_model, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load base model {config.base_model!r}: {exc}") from None
