"""What a training run checks and loads before the model: resume point, output folder, hardware, data.

:func:`prepare_run` runs the checks cheapest first, so a bad configuration fails before any data or
model is read, and returns a :class:`PreparedRun`. ``vlmguard train --dry-run`` stops there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError, InputError
from vlmguard.train.config import SFTConfig
from vlmguard.train.data import DataReport, SFTRow, apply_length_policy, load_rows
from vlmguard.train.families import VLMFamily, family_for

log = logging.getLogger(__name__)

SHIPPED_DEEPSPEED = ("zero2", "zero3")
"""DeepSpeed configurations shipped in ``vlmguard.configs/deepspeed``, by name."""


@dataclass(kw_only=True)
class PreparedRun:
    """Everything checked and loaded before the model: hardware, architecture, processor, data."""

    checkpoint: str | None
    """The checkpoint to resume from; ``None`` for a fresh run."""
    precision: str
    """``bf16``, ``fp16`` or ``fp32``."""
    family: VLMFamily
    processor: Any
    collator: Any
    train: list[SFTRow]
    validation: list[SFTRow] | None
    reports: list[DataReport]
    """One report per data file: training first, then validation."""


def resolve_precision(config: SFTConfig) -> str:
    """``bf16``, ``fp16`` or ``fp32``; bf16/fp16 where the hardware has them, else a :class:`ConfigError`."""
    import torch

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if config.precision == "auto":
        return "bf16" if bf16_ok else "fp32"
    if config.precision == "bf16" and not bf16_ok:
        raise ConfigError(
            "precision=bf16 needs a GPU with bf16 support (none found); use precision=auto or fp32"
        )
    if config.precision == "fp16" and not cuda:
        raise ConfigError("precision=fp16 needs a CUDA GPU (none found); use precision=auto or fp32")
    return config.precision


def resolve_deepspeed(value: str | None) -> str | None:
    """A DeepSpeed JSON path; ``zero2`` / ``zero3`` name the configs shipped in ``vlmguard.configs``."""
    if value is None:
        return None
    if value in SHIPPED_DEEPSPEED:
        from importlib import resources

        return str(resources.files("vlmguard.configs").joinpath("deepspeed", f"{value}.json"))
    if not Path(value).is_file():
        raise ConfigError(f"deepspeed config not found: {value} (or use 'zero2' / 'zero3')")
    return value


def base_model_type(base_model: str) -> str:
    """``config.model_type`` of the base model (local folder or cached hub id)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the base model's config at {base_model!r}: {exc}") from None
    return str(config.model_type)


def find_checkpoint(config: SFTConfig) -> str | None:
    """The checkpoint to resume from, or ``None`` for a fresh run."""
    if config.resume is False:
        return None
    if config.resume is True or (
        isinstance(config.resume, str) and config.resume.lower() in ("true", "latest")
    ):
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(config.output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise ConfigError(f"resume=true but {out} holds no checkpoint-N folder")
        return str(last)
    path = Path(str(config.resume))
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(
            f"resume checkpoint {path} is not a Trainer checkpoint (trainer_state.json missing)"
        )
    return str(path)


def checkpoint_step(checkpoint: str | None) -> int:
    """The step a checkpoint folder (``checkpoint-N``) was saved at; 0 for none or an unnumbered one."""
    if checkpoint is None:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def check_output_dir(config: SFTConfig, checkpoint: str | None) -> None:
    """Refuse to start a fresh run over an earlier one unless asked to (nothing is lost by accident)."""
    out = Path(config.output_dir)
    if checkpoint is None and not config.overwrite and out.is_dir() and any(out.glob("checkpoint-*")):
        raise ConfigError(
            f"{out} already holds checkpoints of an earlier run; set resume=true to continue it, "
            "overwrite=true to start over, or choose another output_dir"
        )


def load_processor(base_model: str, model_type: str) -> Any:
    """The base model's ``AutoProcessor``; a :class:`ConfigError` (with a hint) when it cannot load."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(base_model)
    except ImportError as exc:
        hint = (
            " (Qwen2-VL's processor needs torchvision: pip install torchvision)"
            if "qwen" in model_type
            else ""
        )
        raise ConfigError(f"cannot load the processor of {base_model}: {exc}{hint}") from None


def prepare_data(
    config: SFTConfig, collator: Any
) -> tuple[list[SFTRow], list[SFTRow] | None, list[DataReport]]:
    """Load, validate and length-check the training (and validation) rows."""
    reports: list[DataReport] = []
    splits: list[list[SFTRow] | None] = []
    for path in (config.train_file, config.validation_file):
        if path is None:
            splits.append(None)
            continue
        rows, report = load_rows(
            path,
            images_root=config.images_root,
            check_target_format=config.check_target_format,
            bad_rows=config.bad_rows,
        )
        rows = apply_length_policy(
            rows, report, collator.measure, max_length=config.max_length, policy=config.overlong
        )
        if config.bad_rows == "error" and report.rows_skipped:
            raise InputError(f"{report.file}: {report.problems[0] if report.problems else report.summary()}")
        log.info("%s", report.summary())
        reports.append(report)
        splits.append(rows)
    train = splits[0]
    assert train is not None
    return train, splits[1], reports


def prepare_run(config: SFTConfig) -> PreparedRun:
    """Check the configuration (resume, output folder, precision, architecture, DeepSpeed) and load the data.

    Cheap checks come first, so a bad configuration fails before any data or model is read.
    """
    from vlmguard.train.collator import RewriterCollator

    checkpoint = find_checkpoint(config)
    check_output_dir(config, checkpoint)
    precision = resolve_precision(config)
    resolve_deepspeed(config.deepspeed)
    model_type = base_model_type(config.base_model)
    family = family_for(model_type)
    processor = load_processor(config.base_model, model_type)
    collator = RewriterCollator(processor, max_length=config.max_length, image_max_side=config.image_max_side)
    train_rows, val_rows, reports = prepare_data(config, collator)
    return PreparedRun(
        checkpoint=checkpoint,
        precision=precision,
        family=family,
        processor=processor,
        collator=collator,
        train=train_rows,
        validation=val_rows,
        reports=reports,
    )
