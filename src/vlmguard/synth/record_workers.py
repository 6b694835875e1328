"""Running the unfinished stages of many records with a bounded number in flight.

Each record runs its stages in order; each finished stage's event is submitted to the store before
the next stage starts, and the record's events are durable before it counts as processed. An
unexpected exception in a stage marks the record failed (kind ``error``) and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from vlmguard.backends.base import VLM
from vlmguard.synth.progress import SynthProgress
from vlmguard.synth.records import SynthRecord
from vlmguard.synth.stage_common import Stage, failed
from vlmguard.synth.store import RecordStore, event_for

log = logging.getLogger(__name__)

ProgressHook = Callable[[SynthRecord], None]
"""Called with each record when its work in this run ends (done or failed)."""


async def run_record(
    record: SynthRecord, stages: Sequence[Stage], teacher: VLM, store: RecordStore
) -> SynthRecord:
    """Run the stages ``record`` has not finished, stopping at the first failure; returns the record."""
    record = record.model_copy(update={"failure": None})
    pending: list[asyncio.Future[None]] = []
    for stage in stages:
        if stage.name in record.finished:
            continue
        try:
            record = await stage(record, teacher)
        except Exception as exc:  # a bug or an unexpected library error: keep the run going, record it
            log.exception("record %s stage %s", record.id, stage.name.value)
            record = failed(record, stage.name, "error", f"{type(exc).__name__}: {exc}")
        # The next stage may start while this line is being synced: lines become durable in order,
        # so a crash loses at most the latest lines, and a stage whose line survives is never redone.
        pending.append(store.submit(event_for(record, stage.name, stage.fields)))
        if record.failure is not None:
            break
    await asyncio.gather(*pending)
    return record


async def run_records(
    todo: Sequence[SynthRecord],
    stages: Sequence[Stage],
    teacher: VLM | None,
    store: RecordStore,
    *,
    concurrency: int,
    total: int,
    already: int,
    progress: bool,
    on_record: ProgressHook | None,
) -> list[SynthRecord]:
    """Run every record of ``todo`` with ``concurrency`` in flight; returns them as they finished.

    ``total`` and ``already`` (records of the run, and those done before) size the progress bar.
    """
    queue: asyncio.Queue[SynthRecord] = asyncio.Queue()
    for record in todo:
        queue.put_nowait(record)
    finished: list[SynthRecord] = []
    bar = SynthProgress(total, already) if progress else None

    async def worker() -> None:
        while True:
            try:
                record = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            assert teacher is not None
            result = await run_record(record, stages, teacher, store)
            finished.append(result)
            if bar is not None:
                bar.advance(result)
            if on_record is not None:
                on_record(result)

    try:
        if bar is not None:
            bar.start()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(todo))))))
    finally:
        if bar is not None:
            bar.stop()
    return finished
