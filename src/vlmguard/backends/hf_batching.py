"""Micro-batching for a local model served in one worker thread.

Requests that arrive while a batch is generating wait in a queue; the next batch takes up to
``max_batch`` of them that share a generation config and hands them to the batch function in the
worker thread. A lone request runs at once, without waiting for company. Requests whose callers
cancelled them are dropped before their batch runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vlmguard.backends.hf_loading import first_line
from vlmguard.errors import BackendError, ConfigError
from vlmguard.types import Completion, GenerateConfig, Message

T = TypeVar("T")


@dataclass
class PendingRequest:
    """One generation request waiting for (or in) its batch."""

    messages: list[Message]
    config: GenerateConfig
    prefix: str
    """Text the assistant's answer starts with (continued, not repeated, by the model)."""
    future: asyncio.Future[Completion]
    queued: float = field(default_factory=time.perf_counter)

    def fail_threadsafe(self, error: BaseException) -> None:
        """Fail this request alone, from any thread (its event loop sets the exception)."""
        self.future.get_loop().call_soon_threadsafe(_fail, self.future, error)


BatchFunction = Callable[[list[PendingRequest]], list[Completion | None]]
"""Runs a batch in the worker thread: a completion per request, ``None`` for one it failed itself."""


class BatchQueue:
    """Requests queued for one worker thread and run in batches that share a generation config."""

    def __init__(self, run_batch: BatchFunction, *, max_batch: int, name: str) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.name = name
        """Names the model in error messages."""
        self.batch_sizes: list[int] = []
        """Size of every batch run so far (for monitoring and tests)."""
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[PendingRequest] = []
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _executor_(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="vlmguard-hf"
            )
        return self._executor

    async def submit(self, messages: Sequence[Message], config: GenerateConfig, prefix: str) -> Completion:
        """Queue one request and wait for its completion."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. another asyncio.run): start afresh
            self._loop, self._pending, self._worker = loop, [], None
        request = PendingRequest(list(messages), config, prefix, loop.create_future())
        self._pending.append(request)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await request.future

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the worker thread (between batches, never beside one)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor_(), fn, *args)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            config = self._pending[0].config
            batch = [r for r in self._pending if r.config == config][: self.max_batch]
            for request in batch:
                self._pending.remove(request)
            batch = [r for r in batch if not r.future.done()]  # drop requests their callers cancelled
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                results = await loop.run_in_executor(self._executor_(), self.run_batch, batch)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, BackendError | ConfigError)
                    else BackendError(f"{self.name}: generation failed: {first_line(exc)}")
                )
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            for request, completion in zip(batch, results, strict=True):
                if completion is not None and not request.future.done():
                    request.future.set_result(completion)

    def shutdown(self) -> None:
        """Stop the worker thread, cancelling what it has not started; a later call starts a new one."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _fail(future: asyncio.Future[Completion], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
