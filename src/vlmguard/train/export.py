"""Make a trained rewriter servable: merge adapters, save model + processor, write the model card.

A folder written here loads with ``AutoModelForImageTextToText`` / ``AutoProcessor`` and therefore
with the ``hf:<folder>`` backend and ``vllm serve <folder>``; its generation config stops at the
chat template's end-of-turn token, so the rewriter's answer ends where the target ended in training.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlmguard.durable import atomic_write_text
from vlmguard.errors import ConfigError

MODEL_CARD = "README.md"


def end_of_turn_ids(processor: Any) -> list[int]:
    """Token ids that close an assistant turn in the processor's chat template (e.g. ``<|im_end|>``).

    Found by rendering a one-word assistant turn and taking the special tokens that follow the word.
    """
    tokenizer = processor.tokenizer
    marker = "zqxj"
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": marker}]},
    ]
    try:
        text = processor.apply_chat_template(messages, tokenize=False)
    except Exception:
        return []
    tail = str(text).rsplit(marker, 1)[-1]
    ids: list[int] = []
    special = set(tokenizer.all_special_ids)
    for token_id in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            ids.append(int(token_id))
            break
    return ids


def set_stop_tokens(model: Any, processor: Any) -> list[int]:
    """Make generation stop at the template's end-of-turn token as well as the tokenizer's EOS."""
    gen = model.generation_config
    current = gen.eos_token_id
    eos: list[int] = [] if current is None else [current] if isinstance(current, int) else list(current)
    for token_id in [*end_of_turn_ids(processor), processor.tokenizer.eos_token_id]:
        if token_id is not None and token_id not in eos:
            eos.append(int(token_id))
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    if gen.pad_token_id is None and processor.tokenizer.pad_token_id is not None:
        gen.pad_token_id = processor.tokenizer.pad_token_id
    return eos


def save_servable(model: Any, processor: Any, out_dir: str | Path) -> Path:
    """Save ``model`` (a plain transformers model) and ``processor`` so ``hf:<out_dir>`` loads them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_stop_tokens(model, processor)
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out


def merge_adapters(
    adapter_dir: str | Path, out_dir: str | Path, *, base_model: str | None = None, dtype: str = "auto"
) -> Path:
    """Fold the LoRA adapters in ``adapter_dir`` into their base model and save the result to ``out_dir``.

    ``base_model`` defaults to the one recorded in the adapter config. The processor is taken from
    ``adapter_dir`` (the trainer saves it there) or else from the base model.
    """
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    adapter = Path(adapter_dir)
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter} holds no LoRA adapter (adapter_config.json missing); nothing to merge")
    base = base_model or PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    if not base:
        raise ConfigError(f"{adapter}: the adapter does not record its base model; pass base_model")
    torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch_dtype)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    source = (
        adapter
        if (adapter / "processor_config.json").is_file() or (adapter / "preprocessor_config.json").is_file()
        else Path(base)
    )
    processor = AutoProcessor.from_pretrained(str(source))
    return save_servable(model, processor, out_dir)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def model_card(
    *,
    base_model: str,
    method: str,
    merged: bool,
    config: Mapping[str, Any],
    data: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
) -> str:
    """The model card (Markdown): base model, data, configuration and validation figures."""
    lines = [
        "---",
        f"base_model: {base_model}",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags: [vlmguard, safety, prompt-rewriting, sft]",
        "---",
        "",
        "# vlmguard rewriter",
        "",
        "A vision-language model fine-tuned to act as the vlmguard rewriter: it reads an image and a user's",
        "text, writes a risk analysis (textual, visual, cross-modal findings; categories; severity; a",
        "forward / reframe / refuse decision) and a rewritten prompt, in the format read by",
        "`vlmguard.rewriter.format.parse_rewriter_output`.",
        "",
        "## Use",
        "",
        "```bash",
        'vlmguard guard --rewriter hf:<this folder> --image photo.png --prompt "user prompt"',
        "vllm serve <this folder> --served-model-name rewriter   # then --rewriter openai:rewriter@http://localhost:8000/v1",
        "```",
        "",
        "## Training",
        "",
        f"- base model: `{base_model}`",
        f"- method: {method}" + (" (adapters merged into the base weights)" if merged else ""),
        "",
        "| data file | sha256 | rows kept | rows read | skipped | truncated |",
        "|---|---|---|---|---|---|",
    ]
    for report in data:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(dict(report.get("skipped", {})).items())) or "0"
        lines.append(
            f"| `{Path(str(report.get('file', ''))).name}` | `{str(report.get('sha256', ''))[:16]}` | "
            f"{report.get('rows_kept', 0)} | {report.get('rows_read', 0)} | {skipped} | "
            f"{report.get('truncated', 0)} |"
        )
    lines += ["", "## Results", "", "| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Configuration", "", "```yaml"]
    import yaml

    lines.append(str(yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)).rstrip())
    lines += ["```", ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, **kwargs: Any) -> Path:
    """Write :func:`model_card` to ``folder/README.md`` atomically."""
    path = Path(folder) / MODEL_CARD
    atomic_write_text(path, model_card(**kwargs))
    return path


def merge_run(run_dir: str | Path) -> Path:
    """Merge a finished LoRA run's adapters (``run_dir/model``) into ``run_dir/merged``, with a model card.

    The card is rebuilt from what the run folder recorded (``config.yaml``, ``data.json``, ``summary.json``).
    """
    import yaml

    run = Path(run_dir)
    config_file = run / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run} is not a training run folder (config.yaml missing)")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    data = (
        json.loads((run / "data.json").read_text(encoding="utf-8")) if (run / "data.json").is_file() else []
    )
    summary = (
        json.loads((run / "summary.json").read_text(encoding="utf-8"))
        if (run / "summary.json").is_file()
        else {}
    )
    merged = merge_adapters(run / "model", run / "merged", base_model=config.get("base_model"))
    keys = (
        "global_step",
        "epochs",
        "train_loss",
        "first_loss",
        "last_loss",
        "eval_loss",
        "train_runtime_s",
        "train_samples_per_second",
        "train_tokens_per_second",
    )
    write_model_card(
        merged,
        base_model=str(config.get("base_model", "")),
        method=str(config.get("method", "lora")),
        merged=True,
        config=config,
        data=data,
        metrics={k: summary[k] for k in keys if summary.get(k) is not None},
    )
    return merged
