"""Rewriters that fail in each way the fail policy covers, and an evidence rewriter over fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from vlmguard.errors import BackendUnavailable
from vlmguard.rewriter.evidence import EvidenceRewriter
from vlmguard.rewriter.fallback import fallback_rewrite
from vlmguard.testing.evidence_fakes import FakeInjection, FakePerceiver, FakeRiskModel
from vlmguard.types import Decision, ImageData, Rewrite, RiskReport, Severity, Turn

SECRET = "sk-rewriter-secret-123"


class FailingRewriter:
    """A rewriter that fails with ``kind``: ``error`` (a plain exception), ``backend`` (a backend
    error), ``timeout`` (never answers), ``unusable`` (its own fallback: unparseable output) or
    ``empty`` (a reframe without a prompt). Records its calls."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[tuple[str, int, int]] = []

    @property
    def name(self) -> str:
        return f"failing-{self.kind}"

    async def rewrite(
        self, prompt: str, images: Sequence[ImageData] = (), history: Sequence[Turn] = ()
    ) -> Rewrite:
        self.calls.append((prompt, len(images), len(history)))
        if self.kind == "error":
            raise RuntimeError(f"internal failure with {SECRET}")
        if self.kind == "backend":
            raise BackendUnavailable("rewriter backend down")
        if self.kind == "timeout":
            await asyncio.Event().wait()
        if self.kind == "unusable":
            return fallback_rewrite(
                prompt,
                "fail_open",
                rewriter=self.name,
                error="unparseable rewriter output: no block",
                raw_output="garbage",
                model_calls=1,
            )
        report = RiskReport(decision=Decision.REFRAME, severity=Severity.MEDIUM)
        return Rewrite(original_prompt=prompt, prompt="  ", report=report, rewriter=self.name)


FAILURES = ["error", "backend", "timeout", "unusable", "empty"]
REASONS = {
    "error": "RuntimeError",
    "backend": "BackendUnavailable",
    "timeout": "did not answer within",
    "unusable": "unparseable",
    "empty": "without a rewritten prompt",
}


def evidence_rewriter() -> EvidenceRewriter:
    """The evidence rewriter over a keyword risk model, a scripted perceiver and the lexical injection
    detector (no model loads)."""
    return EvidenceRewriter(perceiver=FakePerceiver(), risk_model=FakeRiskModel(), injection=FakeInjection())
