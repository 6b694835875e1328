"""The jobs of an evaluation run and the workers that run them: answer, judge, store one record each.

A :class:`Runner` takes jobs from a queue with ``concurrency`` workers. Every job ends in one
durable :class:`~vlmguard.eval.record.ResultRecord`: ``ok`` with its judgement, or ``error``
(backend error, timeout, failed judgement), so no sample is lost silently. A storage error (full
disk) stops the run instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmguard.appendlog import is_storage_error, storage_error
from vlmguard.backends.base import VLM
from vlmguard.defenses.base import Defense, DefenseResult
from vlmguard.errors import VLMGuardError
from vlmguard.eval.counting import CURRENT_COUNTER, CallCounter, CountingVLM
from vlmguard.eval.judges import Judge
from vlmguard.eval.judges.base import Judgement
from vlmguard.eval.record import ResultRecord
from vlmguard.eval.run_config import RunConfig
from vlmguard.eval.sample import Sample
from vlmguard.eval.store import ResultStore

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ResultRecord, int, int], None]
"""Called after each stored record with the record, the jobs done so far and the jobs planned."""


@dataclass
class Job:
    """One sample of one benchmark to answer through one defence and judge."""

    benchmark: str
    defense_spec: str
    defense: Defense
    sample: Sample
    attempt: int = 1


@dataclass
class Counts:
    """What the workers of a run have done so far."""

    completed: int = 0
    errors: int = 0
    judge_calls: int = 0
    done: int = 0
    total: int = 0


def _sample_fields(job: Job) -> dict[str, Any]:
    """The fields every result record of ``job`` shares, finished or failed."""
    sample = job.sample
    return {
        "benchmark": job.benchmark,
        "defense": job.defense_spec,
        "sample_id": sample.id,
        "category": sample.category.value if sample.category else None,
        "label": sample.label,
        "groups": sample.group_labels,
        "expected": sample.expected,
    }


def _error_record(job: Job, target: str, exc: BaseException, started: float) -> ResultRecord:
    kind = "TimeoutError" if isinstance(exc, asyncio.TimeoutError | TimeoutError) else type(exc).__name__
    message = str(exc) or kind
    return ResultRecord(
        **_sample_fields(job),
        status="error",
        error_type=kind,
        error=message,
        target=target,
        latency_s=time.perf_counter() - started,
        attempt=job.attempt,
        finished_at=time.time(),
    )


def _ok_record(
    job: Job, target: str, result: DefenseResult, judgement: Judgement, model_calls: int, latency: float
) -> ResultRecord:
    sample = job.sample
    sent_text = None
    if result.sent:
        last_user = next((m for m in reversed(result.sent) if m.role == "user"), None)
        if last_user is not None and last_user.text != sample.prompt:
            sent_text = last_user.text
    rewrite = result.rewrite or result.completion.rewrite
    return ResultRecord(
        **_sample_fields(job),
        status="ok",
        target=target,
        response=result.completion.text,
        defense_refused=result.refused,
        decision=rewrite.decision.value if rewrite is not None else None,
        sent_prompt=sent_text,
        target_calls=result.target_calls,
        extra_calls=result.extra_calls,
        model_calls=model_calls,
        latency_s=result.latency_s or latency,
        overhead_s=result.overhead_s,
        judgement=judgement,
        attempt=job.attempt,
        finished_at=time.time(),
    )


class Runner:
    """Runs the jobs of one run folder with a fixed number of workers."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        target: VLM,
        counter: CountingVLM,
        judge: Judge,
        defenses: dict[str, Defense],
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.target = target
        self.counter = counter
        self.judge = judge
        self.defenses = defenses
        self.progress = progress
        self.store = ResultStore(run_dir)
        self.counts = Counts()

    async def _one(self, job: Job) -> ResultRecord:
        started = time.perf_counter()
        counter = CallCounter()
        token = CURRENT_COUNTER.set(counter)
        target_name = self.target.name
        try:
            try:
                sample = job.sample
                # Images are read and decoded off the event loop; text-only samples need no thread.
                messages = (
                    await asyncio.to_thread(sample.messages) if sample.image_paths else sample.messages()
                )
                call = job.defense(messages, self.target, self.config.generate)
                result = await (
                    asyncio.wait_for(call, self.config.timeout_s) if self.config.timeout_s else call
                )
            except (VLMGuardError, asyncio.TimeoutError, TimeoutError) as exc:
                log.info(
                    "%s %s %s: %s: %s",
                    job.benchmark,
                    job.defense_spec,
                    job.sample.id,
                    type(exc).__name__,
                    exc,
                )
                return _error_record(job, target_name, exc, started)
            except Exception as exc:
                if is_storage_error(exc):  # e.g. the response cache on a full disk: stop the run
                    raise storage_error(self.run_dir, exc) from None
                log.warning(
                    "%s %s %s failed unexpectedly:\n%s",
                    job.benchmark,
                    job.defense_spec,
                    job.sample.id,
                    traceback.format_exc(),
                )
                return _error_record(job, target_name, exc, started)
            model_calls = counter.calls
            latency = time.perf_counter() - started
        finally:
            CURRENT_COUNTER.reset(token)
        try:
            judgement = await self.judge(job.sample, result.completion.text)
        except Exception as exc:  # a failed judgement is an error record, never a silent pass
            if is_storage_error(exc):
                raise storage_error(self.run_dir, exc) from None
            if not isinstance(exc, VLMGuardError):
                log.warning(
                    "judge failed on %s %s:\n%s", job.benchmark, job.sample.id, traceback.format_exc()
                )
            record = _error_record(job, target_name, exc, started)
            return record.model_copy(
                update={"error": f"judge failed: {exc}", "response": result.completion.text}
            )
        return _ok_record(job, target_name, result, judgement, model_calls, latency)

    async def _worker(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if self.store.error is not None:
                raise self.store.error
            record = await self._one(job)
            await self.store.append(record)  # on disk at the next group fsync; raises once a write failed
            self.counts.done += 1
            if record.status == "ok":
                self.counts.completed += 1
                if record.judgement is not None:
                    self.counts.judge_calls += record.judgement.calls
            else:
                self.counts.errors += 1
            if self.progress is not None:
                self.progress(record, self.counts.done, self.counts.total)

    async def run(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` to the end and drain the store (every record on disk when this returns)."""
        self.counts.total = len(jobs)
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        workers = [
            asyncio.create_task(self._worker(queue)) for _ in range(min(self.config.concurrency, len(jobs)))
        ]
        try:
            await asyncio.gather(*workers)
            await self.store.drain()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
