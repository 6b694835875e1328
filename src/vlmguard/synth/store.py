"""The append-only record store: every finished (record, stage) is one durable JSONL line.

A run folder holds::

    run.json        the run's configuration and template versions (written once, atomically)
    seeds.jsonl     the seeds, fixed at the first run (written once, atomically)
    records.jsonl   append-only events: one line per finished or failed (record, stage)
    images/         in-memory seed images (e.g. rendered typography), named by content hash
    .lock           held (flock) by the one process writing the run

An event is appended and ``fsync``-ed before the stage counts as finished, and writes from many
concurrent records are grouped into one ``fsync`` (group commit). On open, a torn last line (a
process killed mid-write, or a power loss) is detected, moved to ``records.jsonl.torn`` and cut
off, so the next append starts on a clean line. Folding the events over the seeds gives every
record exactly once with the stages it finished; a resumed run skips those stages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmguard.appendlog import FolderLock, FolderLocked, LogCorrupt, read_log
from vlmguard.errors import InputError
from vlmguard.synth.records import StageFailure, StageName, SynthRecord
from vlmguard.synth.seeds import Seed

log = logging.getLogger(__name__)

EVENT_VERSION = 1


class StoreError(InputError):
    """The store is corrupt beyond a torn last line, or locked by another process."""


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict) or "id" not in event or "stage" not in event:
        return None
    return event


def read_events(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """All events in ``path``. A torn or garbage last line is ignored (and cut off into ``<path>.torn``
    when ``repair``); an unreadable line anywhere else raises :class:`StoreError`.
    """
    try:
        return read_log(path, _parse_line, repair=repair)
    except LogCorrupt as exc:
        raise StoreError(f"{exc}; the store is corrupt") from None


def event_for(record: SynthRecord, stage: StageName, fields: Sequence[str]) -> dict[str, Any]:
    """The event that makes ``stage`` of ``record`` durable (its output, or its failure)."""
    ok = record.failure is None and stage in record.finished
    event: dict[str, Any] = {
        "v": EVENT_VERSION,
        "id": record.id,
        "stage": stage.value,
        "ok": ok,
        "calls": record.calls.get(stage.value, 0),
        "template": record.templates.get(stage.value),
        "model": record.models.get(stage.value),
        "pid": os.getpid(),
        "at": round(time.time(), 3),
    }
    if ok:
        event["data"] = {f: _dump(getattr(record, f)) for f in fields}
    else:
        assert record.failure is not None
        event["failure"] = record.failure.model_dump(mode="json")
    return event


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def fold(seeds: Sequence[Seed], events: Sequence[dict[str, Any]]) -> list[SynthRecord]:
    """Records (one per seed, in seed order) with every event applied in file order.

    Events of unknown record ids are ignored; a later success of a stage clears an earlier failure.
    """
    records = {s.id: SynthRecord.from_seed(s) for s in seeds}
    for event in events:
        record = records.get(event["id"])
        if record is None:
            continue
        try:
            stage = StageName(event["stage"])
        except ValueError:
            raise StoreError(f"event for {event['id']} has unknown stage {event['stage']!r}") from None
        calls = {**record.calls, stage.value: int(event.get("calls", 0))}
        try:
            if event.get("ok"):
                update: dict[str, Any] = dict(event.get("data") or {})
                record = SynthRecord.model_validate(
                    {
                        **record.model_dump(mode="json"),
                        **update,
                        "finished": [*(s.value for s in record.finished if s != stage), stage.value],
                        "failure": None,
                        "calls": calls,
                        "templates": {
                            **record.templates,
                            **({stage.value: event["template"]} if event.get("template") else {}),
                        },
                        "models": {
                            **record.models,
                            **({stage.value: event["model"]} if event.get("model") else {}),
                        },
                    }
                )
            else:
                failure = StageFailure.model_validate(event["failure"])
                record = record.model_copy(update={"failure": failure, "calls": calls})
        except (ValidationError, KeyError) as exc:
            raise StoreError(f"event for {event['id']} stage {stage.value} is invalid: {exc}") from None
        records[record.id] = record
    return [records[s.id] for s in seeds]


class RecordStore:
    """An append-only JSONL event log with durable, group-committed appends."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.appended = 0
        self.syncs = 0

    def open(self) -> list[dict[str, Any]]:
        """Repair a torn tail, open for appending and return the events already there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        events = read_events(self.path, repair=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return events

    def _write_durable(self, data: bytes) -> None:
        assert self._fd is not None, "store is not open"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.syncs += 1

    def append_now(self, event: dict[str, Any]) -> None:
        """Append one event and ``fsync`` before returning (synchronous)."""
        self._write_durable(_encode(event))
        self.appended += 1

    def submit(self, event: dict[str, Any]) -> asyncio.Future[None]:
        """Queue one event for writing; the future resolves once it is durable.

        Events are written in submission order, so when an event is durable every event submitted
        before it is too. A caller may therefore start its next step before the future resolves:
        a crash can only lose a suffix of the submitted events, never one in the middle.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((_encode(event), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def append(self, event: dict[str, Any]) -> None:
        """Append one event; returns once it is durable. Concurrent appends share one ``fsync``."""
        await asyncio.shield(self.submit(event))

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write_durable, b"".join(line for line, _ in batch))
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.appended += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def drain(self) -> None:
        """Wait until every pending append is durable."""
        while self._flusher is not None and not self._flusher.done():
            await self._flusher

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(read_events(self.path))


def _encode(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class RunLock(FolderLock):
    """An exclusive ``flock`` on ``<run>/.lock``: one writer per run; released when the process dies.

    A second writer gets a :class:`StoreError` naming the holder.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, what="synthesis process")

    def acquire(self) -> None:
        try:
            super().acquire()
        except FolderLocked as exc:
            raise StoreError(str(exc)) from None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self
