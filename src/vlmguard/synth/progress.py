"""The progress bar of a synthesis run: records done of total, failures, rate (records/s) and ETA."""

from __future__ import annotations

import time

from vlmguard.synth.records import SynthRecord


class SynthProgress:
    """A rich progress bar over a run's records; :meth:`advance` once per finished record."""

    def __init__(self, total: int, already: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]synth[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task("", total=total, completed=already, rate="- rec/s")
        self.failed = 0
        self.start_t = time.perf_counter()
        self.count = 0

    def start(self) -> None:
        """Show the bar."""
        self.progress.start()

    def stop(self) -> None:
        """Stop refreshing the bar (it stays on screen)."""
        self.progress.stop()

    def advance(self, record: SynthRecord) -> None:
        """Count one finished (or failed) record."""
        self.count += 1
        if record.failure is not None:
            self.failed += 1
        elapsed = max(1e-9, time.perf_counter() - self.start_t)
        self.progress.update(
            self.task,
            advance=1,
            description=f"failed {self.failed}",
            rate=f"{self.count / elapsed:.2f} rec/s",
        )
