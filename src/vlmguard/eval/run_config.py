"""What defines an evaluation run (:class:`RunConfig`) and what one invocation did (:class:`EvalSummary`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.eval.benchmarks.base import BenchmarkOptions
from vlmguard.types import GenerateConfig

DEFAULT_GENERATE = GenerateConfig(max_tokens=256, temperature=0.0)
"""How the target answers unless a run says otherwise: greedy, up to 256 tokens."""


class BenchmarkSpec(BaseModel):
    """One benchmark of a run and its options."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    options: BenchmarkOptions


class RunConfig(BaseModel):
    """Everything that defines a run. Stored in the manifest; a resumed run must match its identity."""

    model_config = ConfigDict(extra="forbid")
    benchmarks: list[BenchmarkSpec]
    defenses: list[str] = Field(default_factory=lambda: ["none"])
    target: str = "smollm2:"
    judge: str = "offline"
    generate: GenerateConfig = DEFAULT_GENERATE
    concurrency: int = Field(4, ge=1, le=1024)
    retries: int = Field(2, ge=0, le=20)
    cache: Path | None = None
    """The response cache file; ``None``: ``<run>/cache.sqlite``."""
    use_cache: bool = True
    timeout_s: float | None = Field(None, gt=0)
    """Per-sample limit for the defended answer; a sample over it is recorded as an error."""
    retry_errors: bool = False
    """On resume, run again the samples whose record is an error (the new record replaces it)."""

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it continues."""
        return {"target": self.target, "judge": self.judge, "generate": self.generate.model_dump(mode="json")}


class EvalSummary(BaseModel):
    """What one invocation of :func:`~vlmguard.eval.runner.run_eval` did."""

    run_dir: Path
    planned: int
    already_done: int
    completed: int
    errors: int
    model_calls: int
    """Calls that reached the target backend in this invocation (cache hits excluded)."""
    judge_calls: int
    wall_s: float
    skipped_items: dict[str, int] = Field(default_factory=dict)
    """Benchmark items left out for incomplete data (missing images), per benchmark."""
