"""What the ``hf`` backend accepts and how it loads: architectures, the model folder check, and the
model with its processor (a hand-built Qwen2-VL prompt processor where transformers cannot build one).

torch and transformers are imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError

log = logging.getLogger(__name__)

TESTED_ARCHITECTURES: dict[str, str] = {
    "idefics3": "Idefics3 / SmolVLM",
    "smolvlm": "SmolVLM",
    "llava": "LLaVA",
    "qwen2_vl": "Qwen2-VL",
}
"""``model_type`` values this backend is tested with (the keys) and what they are."""

DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "bfloat16", "float16", "auto")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), else its type's name."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _supported_types() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return set(TESTED_ARCHITECTURES) | set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def check_model_dir(path: Path) -> str:
    """The ``model_type`` of the model in ``path``; :class:`ConfigError` when it cannot be served here."""
    config_file = path / "config.json"
    if not path.is_dir():
        raise ConfigError(f"hf model path {path} is not a directory")
    if not config_file.is_file():
        raise ConfigError(f"hf model directory {path} has no config.json (is it a saved transformers model?)")
    try:
        model_type = str(json.loads(config_file.read_text(encoding="utf-8")).get("model_type", ""))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read {config_file}: {exc}") from None
    if model_type in TESTED_ARCHITECTURES:
        return model_type
    if model_type and model_type in _supported_types():
        log.warning(
            "hf backend: architecture %r is untested here; tested: %s",
            model_type,
            ", ".join(TESTED_ARCHITECTURES),
        )
        return model_type
    tested = ", ".join(f"{k} ({v})" for k, v in TESTED_ARCHITECTURES.items())
    raise ConfigError(
        f"hf model {path} has architecture {model_type or 'unknown'!r}, which is not an image-text-to-text "
        f"model. Supported: {tested}, and other image-text-to-text architectures of transformers (untested)"
    )


def load_model_and_processor(path: str, device_name: str, dtype_name: str) -> tuple[Any, Any]:
    """The model at ``path`` on its device in eval mode, and its processor set up for left-padded batches.

    ``device_name``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``; ``dtype_name``: a torch dtype name or
    ``auto``. Raises :class:`ConfigError` when torch or transformers is missing, the device is not
    there, or the model, its processor or its chat template cannot be loaded.
    """
    try:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        hint = "pip install 'vlmguard[hf]'"
        raise ConfigError(f"the hf backend needs torch and transformers: {hint} ({exc})") from None
    device = device_name
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but torch sees no CUDA device")
    dtype: Any = "auto" if dtype_name == "auto" else getattr(torch, dtype_name)
    start = time.perf_counter()
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load hf model {path!r}: {first_line(exc)}") from None
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    try:
        processor = AutoProcessor.from_pretrained(path)
    except Exception as exc:
        if getattr(model.config, "model_type", "") != "qwen2_vl":
            raise ConfigError(f"cannot load the processor of {path!r}: {first_line(exc)}") from None
        # transformers' Qwen2-VL processor needs torchvision (for its video processor)
        from transformers import AutoImageProcessor, AutoTokenizer

        from vlmguard.backends.qwen2vl_prompt import Qwen2VLPromptProcessor

        log.info("Qwen2-VL processor unavailable (%s); building the prompt by hand", first_line(exc))
        processor = Qwen2VLPromptProcessor(
            AutoImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        )
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    templates = (getattr(processor, "chat_template", None), getattr(tokenizer, "chat_template", None))
    if not any(templates):
        raise ConfigError(f"hf model {path!r} has no chat template")
    log.info("loaded %s on %s in %.1fs", path, device, time.perf_counter() - start)
    return model, processor
