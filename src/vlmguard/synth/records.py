"""A synthesis record: one seed and what each stage made of it."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.synth.seeds import Seed
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, RiskReport, Severity


class StageName(str, Enum):
    """The stages of a record, in the order they run."""

    RESPONSES = "responses"
    HINDSIGHT = "hindsight"
    CAUSAL = "causal"
    OPTIMIZE = "optimize"
    VERIFY = "verify"

    def __str__(self) -> str:
        return self.value


STAGE_ORDER: tuple[StageName, ...] = tuple(StageName)


def active_stages(verify: bool) -> tuple[StageName, ...]:
    """The stages a run goes through, in order (``verify`` only when the run verifies)."""
    return tuple(s for s in STAGE_ORDER if verify or s != StageName.VERIFY)


class RiskFeatures(BaseModel):
    """Stage 1's output F: what is harmful in the unsafe answer and which inputs led there."""

    harmful_content: str
    categories: list[RiskCategory] = Field(default_factory=list)
    severity: Severity = Severity.NONE
    textual_triggers: str = "none"
    visual_triggers: str = "none"
    safe_behaviour: str = ""

    def render(self) -> str:
        """The features as ``field: value`` lines (how stage 2 receives them)."""
        return "\n".join(
            [
                f"harmful_content: {self.harmful_content}",
                f"categories: {', '.join(c.value for c in self.categories) or 'none'}",
                f"severity: {self.severity.value}",
                f"textual_triggers: {self.textual_triggers}",
                f"visual_triggers: {self.visual_triggers}",
                f"safe_behaviour: {self.safe_behaviour or 'none'}",
            ]
        )


class TargetCheck(BaseModel):
    """Verification against one target: judge scores of the answers to x_T and to x_T'."""

    target: str
    judge: str
    safety_original: float
    safety_rewritten: float
    helpfulness_original: float
    helpfulness_rewritten: float
    kept: bool
    reason: str = ""


class Verification(BaseModel):
    """The verification stage's result: keep the row only when every target check keeps it."""

    checks: list[TargetCheck] = Field(default_factory=list)
    kept: bool
    reason: str = ""


FailureKind = Literal["parse", "teacher", "input", "config"]


class StageFailure(BaseModel):
    """Why a record stopped: the stage, the kind of failure, the reason and the last raw output."""

    stage: StageName
    kind: FailureKind
    reason: str
    attempts: int = 0
    raw_output: str | None = None


class SynthRecord(BaseModel):
    """A seed and every stage output so far. Built by folding the store's events over the seed."""

    model_config = ConfigDict(extra="forbid")

    id: str
    seed: Seed
    y_safe: str | None = None
    y_unsafe: str | None = None
    features: RiskFeatures | None = None
    report: RiskReport | None = None
    rewritten_prompt: str | None = None
    verification: Verification | None = None
    finished: list[StageName] = Field(default_factory=list)
    """Stages whose output is durable, in order."""
    failure: StageFailure | None = None
    calls: dict[str, int] = Field(default_factory=dict)
    """Model calls per stage (``hindsight``: 1, or more with parse retries)."""
    templates: dict[str, str] = Field(default_factory=dict)
    """Template id per stage (``synth-hindsight.v1``)."""
    models: dict[str, str] = Field(default_factory=dict)
    """Model name per stage."""

    @classmethod
    def from_seed(cls, seed: Seed) -> SynthRecord:
        return cls(id=seed.id, seed=seed, y_safe=seed.y_safe, y_unsafe=seed.y_unsafe)

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def decision(self) -> Decision | None:
        return self.report.decision if self.report else None

    def is_done(self, stages: tuple[StageName, ...]) -> bool:
        """True when every stage of ``stages`` is finished."""
        return all(s in self.finished for s in stages)

    @property
    def kept(self) -> bool:
        """Whether the row belongs in the export (verification, when it ran, kept it)."""
        return self.verification is None or self.verification.kept
