"""What a run hands TRL: the ``SFTTrainer`` class, its ``SFTConfig`` arguments and the datasets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from vlmguard.train.config import SFTConfig
from vlmguard.train.data import SFTRow
from vlmguard.train.prepare import resolve_deepspeed


def rows_to_dataset(rows: Sequence[SFTRow]) -> Any:
    """A ``datasets.Dataset`` of rows: image paths, and messages as JSON text (the collator decodes both)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "images": [list(r.images) for r in rows],
            "messages": [json.dumps(r.messages, ensure_ascii=False) for r in rows],
        }
    )


def trainer_class() -> Any:
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
