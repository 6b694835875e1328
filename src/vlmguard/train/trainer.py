"""Supervised fine-tuning of a rewriter: a thin layer over TRL's ``SFTTrainer`` and peft.

:func:`run_sft` does, in order: check the configuration against the hardware and the base model's
architecture, load and validate the data (skipping and counting bad rows), load the model, set
what trains (LoRA adapters or full weights; vision tower frozen or not), train with validation
loss and checkpoints, and save a servable model with a model card. The checks and the data live in
:mod:`~vlmguard.train.prepare`, the model in :mod:`~vlmguard.train.model`, what TRL is handed in
:mod:`~vlmguard.train.trl_setup` and the metrics file in :mod:`~vlmguard.train.metrics`.

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

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.durable import atomic_write_json, atomic_write_text
from vlmguard.errors import ConfigError
from vlmguard.train.config import SFTConfig
from vlmguard.train.data import DataReport
from vlmguard.train.export import merge_adapters, save_servable, write_model_card
from vlmguard.train.metrics import METRICS_FILE, metrics_callback, reset_metrics
from vlmguard.train.model import PRECISION_DTYPES, apply_trainable, load_model, parameter_counts
from vlmguard.train.prepare import checkpoint_step, prepare_run
from vlmguard.train.trl_setup import build_training_args, rows_to_dataset, trainer_class

log = logging.getLogger(__name__)


class TrainSummary(BaseModel):
    """Final figures of a training run (also written to ``summary.json``)."""

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


def run_sft(
    config: SFTConfig,
    *,
    callbacks: Sequence[Any] = (),
    on_data: Callable[[list[DataReport]], None] | None = None,
) -> TrainSummary:
    """Train a rewriter as ``config`` says; returns the run's summary (also in ``summary.json``)."""
    import torch

    prepared = prepare_run(config)
    checkpoint, precision, reports = prepared.checkpoint, prepared.precision, prepared.reports
    if on_data is not None:
        on_data(reports)

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    reset_metrics(out, checkpoint, overwrite=config.overwrite)
    atomic_write_text(out / "config.yaml", config.to_yaml())
    atomic_write_json(out / "data.json", [r.model_dump() for r in reports])

    torch.manual_seed(config.seed)
    model = apply_trainable(load_model(config, precision), config, prepared.family)
    trainable, total = parameter_counts(model)
    if trainable == 0:
        raise ConfigError("nothing to train: every parameter is frozen")
    log.info("training %s/%s parameters (%s, %s)", trainable, total, config.method, precision)

    tokens_per_row = (reports[0].prompt_tokens + reports[0].target_tokens) / max(1, reports[0].rows_kept)
    val_rows = prepared.validation
    args = build_training_args(config, precision, has_eval=bool(val_rows))
    trainer = trainer_class()(
        model=model,
        args=args,
        data_collator=prepared.collator,
        train_dataset=rows_to_dataset(prepared.train),
        eval_dataset=rows_to_dataset(val_rows) if val_rows else None,
        processing_class=prepared.processor,
        callbacks=[metrics_callback(out / METRICS_FILE), *callbacks],
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started
    eval_loss = _final_eval_loss(trainer) if val_rows else None

    state = trainer.state
    losses = [float(h["loss"]) for h in state.log_history if "loss" in h]
    steps_run = state.global_step - checkpoint_step(checkpoint)
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

    model_dir, merged_dir = _save_trained(config, trainer.model, prepared.processor, out, precision)
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

    summary = TrainSummary(
        output_dir=str(out),
        family=prepared.family.name,
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


def _final_eval_loss(trainer: Any) -> float:
    """The validation loss at the last step: logged there already, else evaluated now."""
    final = [
        h
        for h in trainer.state.log_history
        if "eval_loss" in h and h.get("step") == trainer.state.global_step
    ]
    return float(final[-1]["eval_loss"]) if final else float(trainer.evaluate()["eval_loss"])


def _save_trained(
    config: SFTConfig, trained: Any, processor: Any, out: Path, precision: str
) -> tuple[Path, Path | None]:
    """Save the trained model (``model/``) and, if asked, the merged one (``merged/``); return both."""
    model_dir = out / "model"
    merged_dir: Path | None = None
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
                dtype=PRECISION_DTYPES[precision],
            )
    return model_dir, merged_dir
