"""Supervised fine-tuning of a rewriter: a thin layer over TRL's ``SFTTrainer`` and peft.

:func:`run_sft` does, in order: check the configuration against the hardware and the base model's
architecture, load and validate the data (skipping and counting bad rows), load the model, set
what trains (LoRA adapters or full weights; vision tower frozen or not), train with validation
loss and checkpoints, and save a servable model with a model card.

The run folder (``output_dir``) holds::

    config.yaml        the resolved configuration
    data.json          per data file: sha256, image hash, rows read / kept / skipped by reason / truncated
    metrics.jsonl      one line per log or evaluation: step, epoch, loss, eval_loss, learning rate ...
    summary.json       final figures: steps, train and validation loss, throughput, trainable parameters
    checkpoint-N/      Trainer checkpoints (optimizer, scheduler, RNG state): resume continues the step count
    model/             the trained adapter (LoRA) or full model (full), with processor and README.md
    merged/            with merge_adapters: base + adapters folded together, with processor and README.md
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.durable import atomic_write_json, atomic_write_text
from vlmguard.errors import ConfigError, InputError
from vlmguard.train.config import SFTConfig
from vlmguard.train.data import DataReport, SFTRow, apply_length_policy, load_rows
from vlmguard.train.export import (
    merge_adapters,
    save_servable,
    write_model_card,
)
from vlmguard.train.families import VLMFamily, family_for

log = logging.getLogger(__name__)

SHIPPED_DEEPSPEED = ("zero2", "zero3")


class RunSummary(BaseModel):
    """Final figures of a run (also written to ``summary.json``)."""

    output_dir: str
    family: str
    method: str
    precision: str
    device: str
    global_step: int
    epochs: float
    train_loss: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    eval_loss: float | None = None
    train_runtime_s: float = 0.0
    train_samples_per_second: float | None = None
    train_tokens_per_second: float | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    resumed_from: str | None = None
    model_dir: str
    merged_dir: str | None = None
    data: list[DataReport] = Field(default_factory=list)

    @property
    def servable_dir(self) -> str:
        """The folder to serve: the merged model, else the full model (an adapter folder needs its base)."""
        return self.merged_dir or self.model_dir


# ---------------------------------------------------------------------------------------------- checks


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


def check_output_dir(config: SFTConfig, checkpoint: str | None) -> None:
    """Refuse to start a fresh run over an earlier one unless asked to (nothing is lost by accident)."""
    out = Path(config.output_dir)
    if checkpoint is None and not config.overwrite and out.is_dir() and any(out.glob("checkpoint-*")):
        raise ConfigError(
            f"{out} already holds checkpoints of an earlier run; set resume=true to continue it, "
            "overwrite=true to start over, or choose another output_dir"
        )


def load_processor(base_model: str, model_type: str) -> Any:
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


# ---------------------------------------------------------------------------------------------- model


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
    import torch
    from transformers import AutoModelForImageTextToText

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    kwargs: dict[str, Any] = {"dtype": dtype}
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


# ---------------------------------------------------------------------------------------------- data


def rows_to_dataset(rows: Sequence[SFTRow]) -> Any:
    """A ``datasets.Dataset`` of rows: image paths, and messages as JSON text (the collator decodes both)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "images": [list(r.images) for r in rows],
            "messages": [json.dumps(r.messages, ensure_ascii=False) for r in rows],
        }
    )


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


# ---------------------------------------------------------------------------------------------- metrics


def _metrics_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):  # type: ignore[misc]
        """Appends every log (train loss, eval loss, learning rate) to ``metrics.jsonl``."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if not logs or not state.is_world_process_zero:
                return
            record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=float) + "\n")
                fh.flush()

    return MetricsFile()


def _reset_metrics(out: Path, checkpoint: str | None, *, overwrite: bool) -> None:
    """Keep ``metrics.jsonl`` consistent with the step the run starts from.

    A fresh run starts a new file (and, with ``overwrite``, removes the earlier run's checkpoints);
    a resumed run drops the records logged after its checkpoint, since those steps run again.
    """
    import shutil

    path = out / "metrics.jsonl"
    if checkpoint is None:
        path.unlink(missing_ok=True)
        if overwrite:
            for old in out.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
        return
    step = _checkpoint_step(checkpoint)
    kept = [r for r in read_metrics(out) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (empty when there is none)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- run


def _trainer_class() -> Any:
    """TRL's ``SFTTrainer``, computing the loss the plain transformers way on CPU.

    TRL scores tokens with a chunked, fused LM-head kernel that saves GPU memory; without Triton
    (on CPU) it scores every position with several extra statistics and is several times slower
    than the model's own loss, which is what the CPU path uses instead. On GPUs nothing changes.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class RewriterSFTTrainer(SFTTrainer):  # type: ignore[misc]
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if self.args.device.type == "cpu":
                return Trainer.compute_loss(
                    self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
                )
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return RewriterSFTTrainer


def build_training_args(config: SFTConfig, precision: str, has_eval: bool) -> Any:
    """TRL's ``SFTConfig`` for this run."""
    import torch
    from trl import SFTConfig as TRLSFTConfig

    eval_strategy = "no"
    if has_eval:
        eval_strategy = "steps" if config.eval_steps else "epoch"
    return TRLSFTConfig(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.resolved_eval_batch_size(),
        gradient_accumulation_steps=config.grad_accumulation,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=config.eval_steps if eval_strategy == "steps" else None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        deepspeed=resolve_deepspeed(config.deepspeed),
        dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,  # the collator and the data layer enforce max_length
        report_to=config.report_to or "none",
        disable_tqdm=True,
    )


class PreparedRun:
    """Everything checked and loaded before the model: hardware, architecture, processor, data."""

    def __init__(
        self,
        *,
        checkpoint: str | None,
        precision: str,
        family: VLMFamily,
        processor: Any,
        collator: Any,
        train: list[SFTRow],
        validation: list[SFTRow] | None,
        reports: list[DataReport],
    ) -> None:
        self.checkpoint = checkpoint
        self.precision = precision
        self.family = family
        self.processor = processor
        self.collator = collator
        self.train = train
        self.validation = validation
        self.reports = reports


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


def run_sft(
    config: SFTConfig,
    *,
    callbacks: Sequence[Any] = (),
    on_data: Callable[[list[DataReport]], None] | None = None,
) -> RunSummary:
    """Train a rewriter as ``config`` says; returns the run's summary (also in ``summary.json``)."""
    import torch

    prepared = prepare_run(config)
    checkpoint, precision, family, processor = (
        prepared.checkpoint,
        prepared.precision,
        prepared.family,
        prepared.processor,
    )
    collator, train_rows, val_rows, reports = (
        prepared.collator,
        prepared.train,
        prepared.validation,
        prepared.reports,
    )
    if on_data is not None:
        on_data(reports)

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _reset_metrics(out, checkpoint, overwrite=config.overwrite)
    atomic_write_text(out / "config.yaml", config.to_yaml())
    atomic_write_json(out / "data.json", [r.model_dump() for r in reports])

    torch.manual_seed(config.seed)
    model = apply_trainable(load_model(config, precision), config, family)
    trainable, total = parameter_counts(model)
    if trainable == 0:
        raise ConfigError("nothing to train: every parameter is frozen")
    log.info("training %s/%s parameters (%s, %s)", trainable, total, config.method, precision)

    tokens_per_row = (reports[0].prompt_tokens + reports[0].target_tokens) / max(1, reports[0].rows_kept)
    args = build_training_args(config, precision, has_eval=bool(val_rows))
    trainer = _trainer_class()(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=rows_to_dataset(train_rows),
        eval_dataset=rows_to_dataset(val_rows) if val_rows else None,
        processing_class=processor,
        callbacks=[_metrics_callback(out / "metrics.jsonl"), *callbacks],
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started
    eval_loss: float | None = None
    if val_rows:
        final = [
            h
            for h in trainer.state.log_history
            if "eval_loss" in h and h.get("step") == trainer.state.global_step
        ]
        eval_loss = float(final[-1]["eval_loss"]) if final else float(trainer.evaluate()["eval_loss"])

    state = trainer.state
    losses = [float(h["loss"]) for h in state.log_history if "loss" in h]
    steps_run = state.global_step - (_checkpoint_step(checkpoint) if checkpoint else 0)
    rows_seen = steps_run * config.batch_size * config.grad_accumulation * max(1, args.world_size)
    summary_metrics: dict[str, Any] = {
        "global_step": state.global_step,
        "epochs": float(state.epoch or 0.0),
        "train_loss": float(result.training_loss) if result.training_loss is not None else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "eval_loss": eval_loss,
        "train_runtime_s": runtime,
        "train_samples_per_second": rows_seen / runtime if runtime > 0 else None,
        "train_tokens_per_second": rows_seen * tokens_per_row / runtime if runtime > 0 else None,
    }

    model_dir = out / "model"
    merged_dir: Path | None = None
    trained: Any = trainer.model
    if config.method == "full":
        save_servable(trained, processor, model_dir)
    else:
        trained.save_pretrained(str(model_dir))
        processor.save_pretrained(str(model_dir))
        if config.merge_adapters:
            merged_dir = out / "merged"
            merge_adapters(
                model_dir,
                merged_dir,
                base_model=config.base_model,
                dtype={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision],
            )
    card = {
        "base_model": config.base_model,
        "method": config.method,
        "config": config.model_dump(mode="json"),
        "data": [r.model_dump() for r in reports],
        "metrics": {k: v for k, v in summary_metrics.items() if v is not None},
    }
    write_model_card(model_dir, merged=False, **card)
    if merged_dir is not None:
        write_model_card(merged_dir, merged=True, **card)

    summary = RunSummary(
        output_dir=str(out),
        family=family.name,
        method=config.method,
        precision=precision,
        device="cuda" if torch.cuda.is_available() else "cpu",
        trainable_parameters=trainable,
        total_parameters=total,
        resumed_from=checkpoint,
        model_dir=str(model_dir),
        merged_dir=str(merged_dir) if merged_dir else None,
        data=reports,
        **summary_metrics,
    )
    atomic_write_json(out / "summary.json", summary.model_dump())
    return summary


def _checkpoint_step(checkpoint: str) -> int:
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0
