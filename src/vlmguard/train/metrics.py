"""A run's ``metrics.jsonl``: one JSON line per log or evaluation (step, epoch, time, loss, eval_loss ...).

The file is written during training by the callback of :func:`metrics_callback`, kept consistent
with the step a run starts from by :func:`reset_metrics`, and read back by :func:`read_metrics`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from vlmguard.durable import atomic_write_text
from vlmguard.train.prepare import checkpoint_step

METRICS_FILE = "metrics.jsonl"


def metrics_callback(path: Path) -> Any:
    """A transformers ``TrainerCallback`` that appends every log to ``path`` (on the main process)."""
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


def reset_metrics(out: Path, checkpoint: str | None, *, overwrite: bool) -> None:
    """Keep ``metrics.jsonl`` consistent with the step the run starts from.

    A fresh run starts a new file (and, with ``overwrite``, removes the earlier run's checkpoints);
    a resumed run drops the records logged after its checkpoint, since those steps run again.
    """
    path = out / METRICS_FILE
    if checkpoint is None:
        path.unlink(missing_ok=True)
        if overwrite:
            for old in out.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
        return
    step = checkpoint_step(checkpoint)
    kept = [r for r in read_metrics(out) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (empty when there is none)."""
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
