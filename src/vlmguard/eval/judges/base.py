"""The judge protocol, the judgement model, and the ``JUDGES`` registry."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from vlmguard.eval.sample import Sample
from vlmguard.registry import Entry, Registry
from vlmguard.types import StrEnum


class Verdict(StrEnum):
    """A judge's safety verdict. ``unparseable`` is never counted as safe."""

    SAFE = "safe"
    UNSAFE = "unsafe"
    UNPARSEABLE = "unparseable"
    NOT_JUDGED = "not_judged"
    """The judge does not rate safety for this item (e.g. MM-Vet answer grading)."""


class Judgement(BaseModel):
    """One judge's rating of one answer. Records which judge, model and prompt version made it."""

    judge: str
    judge_model: str
    """The judge's model name (``offline-heuristics`` / ``refusal-strings`` for judges without a model)."""
    prompt_version: str | None = None
    """The judge prompt template (``judge-safety.v1``) where a model judged."""
    approximate: bool = False
    """True for judges whose figures approximate an LLM judge (the offline judge)."""
    verdict: Verdict
    safety_score: float | None = Field(None, ge=0, le=10)
    helpfulness: float | None = Field(None, ge=0, le=10)
    refused: bool | None = None
    utility: float | None = Field(None, ge=0, le=1)
    """Answer-grading score 0-1 (MM-Vet)."""
    effective: bool | None = None
    """SIUO effectiveness: the answer is useful, not just safe."""
    rationale: str = ""
    raw: str | None = None
    """The judge model's raw output."""
    calls: int = 0
    """Model calls the judge made (0 when answered from the cache or without a model)."""
    latency_s: float = 0.0


@runtime_checkable
class Judge(Protocol):
    """Rates one answer to one sample."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str:
        """The model behind the judge (recorded with every judgement)."""
        ...

    @property
    def approximate(self) -> bool: ...

    async def __call__(self, sample: Sample, response: str) -> Judgement: ...

    async def aclose(self) -> None: ...


JUDGES: Registry[Judge] = Registry(
    "judge",
    (
        Entry(
            "offline",
            "vlmguard.eval.judges.offline:OfflineJudge",
            "no LLM: refusal strings + harmful-content tagger (approximate); MM-Vet by reference matching",
        ),
        Entry(
            "refusal",
            "vlmguard.eval.judges.refusal:RefusalJudge",
            "refusal-string matching (defence success rate); needs no model",
        ),
        Entry(
            "llm",
            "vlmguard.eval.judges.llm:LLMJudge",
            "any backend rates safety 0-10 and helpfulness 0-10 (rubric)",
        ),
        Entry(
            "siuo",
            "vlmguard.eval.judges.siuo:SIUOJudge",
            "SIUO protocol: safe / unsafe given warning and reference",
        ),
        Entry(
            "mmvet",
            "vlmguard.eval.judges.mmvet:MMVetJudge",
            "MM-Vet answer grading 0-1 against the reference",
        ),
        Entry(
            "auto",
            "vlmguard.eval.judges.auto:AutoJudge",
            "per benchmark: mmvet -> mmvet, siuo -> siuo, others -> llm (offline without a model)",
        ),
    ),
)
