"""Durable, append-only JSONL results and the run manifest.

Every record is written as one line, flushed and ``fsync``-ed before the sample counts as done
(concurrent writers are batched into one ``fsync``: group commit). A run killed mid-write leaves
at most one partial last line, and a damaged disk may leave a garbage one; :meth:`ResultStore.open`
sets either aside (:func:`vlmguard.appendlog.read_log`), and resuming skips every sample that
already has a record, so a restarted run ends with every sample judged exactly once. A failed
write stops the run with a :class:`~vlmguard.appendlog.StorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmguard.appendlog import StorageError, read_log, storage_error
from vlmguard.durable import atomic_write_json
from vlmguard.errors import InputError
from vlmguard.eval.record import ResultRecord

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the run's ``manifest.json`` atomically."""
    atomic_write_json(run_dir / MANIFEST_FILE, manifest, sort_keys=True)


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or ``None`` when there is none yet."""
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object")
    return data


def _parse_record(line: bytes) -> ResultRecord | None:
    try:
        return ResultRecord.model_validate_json(line)
    except ValidationError:
        return None


def read_records(path: Path, *, repair: bool = False) -> list[ResultRecord]:
    """All complete records of a results file, in order.

    A torn or garbage last line is ignored (and, with ``repair``, set aside into
    ``results.jsonl.torn``); an unreadable line before it raises :class:`LogCorrupt`.
    """
    if not path.is_file():
        return []
    return read_log(path, _parse_record, repair=repair)


def latest_records(records: list[ResultRecord]) -> dict[str, ResultRecord]:
    """One record per key: the last one written (a retried error is replaced by its retry)."""
    latest: dict[str, ResultRecord] = {}
    for record in records:
        latest[record.key] = record
    return latest


class ResultStore:
    """The append-only results file of one run.

    Appends are group-committed by one writer task. The first write that fails (a full disk, an
    I/O error) is kept as :attr:`error`, a :class:`StorageError`: every pending and later append
    fails with it, so the run stops instead of judging samples it cannot store. Lines already
    synced stay; a partial line the failure left behind is set aside by the next :meth:`open`.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / RESULTS_FILE
        self._fd: int | None = None
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self.error: StorageError | None = None

    def open(self) -> dict[str, ResultRecord]:
        """Open for appending (setting aside a torn or garbage last line); the records already there."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        existing = latest_records(read_records(self.path, repair=True))
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(self.path, exc) from None
        return existing

    def _write_durable(self, data: bytes) -> None:
        if self._fd is None:
            raise RuntimeError("store is not open")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def _check(self) -> None:
        if self._fd is None:
            raise RuntimeError("store is not open")
        if self.error is not None:
            raise self.error

    def append_sync(self, record: ResultRecord) -> None:
        """Write one record durably (written and synced) before returning."""
        self._check()
        try:
            self._write_durable(record.model_dump_json().encode("utf-8") + b"\n")
        except OSError as exc:
            self.error = storage_error(self.path, exc)
            raise self.error from None

    async def append(self, record: ResultRecord) -> asyncio.Future[None]:
        """Queue one record for a durable write and return a future that resolves once it is on disk.

        Records queued while an ``fsync`` runs are written and synced together by the next one (group
        commit), so many samples in flight do not wait on one ``fsync`` each. A record that is not yet
        on disk when the process dies is simply absent, and its sample runs again on resume. Raises
        :class:`StorageError` once a write has failed.
        """
        self._check()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_loop())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((record.model_dump_json().encode("utf-8") + b"\n", future))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self.error is None:
                try:
                    await asyncio.to_thread(self._write_durable, b"".join(line for line, _ in batch))
                except OSError as exc:
                    self.error = storage_error(self.path, exc)
            for _, future in batch:
                if future.done():
                    continue
                if self.error is not None:
                    future.set_exception(self.error)
                    future.exception()  # retrieved here: the error is reported once, by the run
                else:
                    future.set_result(None)

    async def drain(self) -> None:
        """Wait until every queued record is on disk (raises :class:`StorageError` when one cannot be)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        """Stop the writer and close the file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self.drain()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
            self._queue = None
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
