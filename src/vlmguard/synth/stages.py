"""The three reasoning stages, each ``Stage(record, teacher) -> record`` (see :mod:`.teacher_stage`).

1. :class:`HindsightStage`: compare Y_safe with Y_unsafe -> risk features F.
2. :class:`CausalStage`: textual, visual and cross-modal triggers from F -> risk report A.
3. :class:`OptimizeStage`: from A, the rewritten prompt x_T'.

Response collection, which comes before them, is :class:`vlmguard.synth.responses.ResponseStage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlmguard.errors import ParseError
from vlmguard.rewriter.format import format_rewriter_output, parse_rewriter_output
from vlmguard.synth.parsing import (
    STAGE_MARKERS,
    parse_rewritten_prompt,
    parse_risk_features,
    parse_risk_report,
)
from vlmguard.synth.records import StageName, SynthRecord
from vlmguard.synth.stage_common import untrusted
from vlmguard.synth.teacher_stage import TeacherStage, base_values
from vlmguard.text import neutralize
from vlmguard.types import Decision, ImageData, RiskReport, Severity


class HindsightStage(TeacherStage):
    """Stage 1: compare the safe and the unsafe answer and extract the risk features F."""

    name: StageName = StageName.HINDSIGHT
    template_name = "synth-hindsight"
    fields: tuple[str, ...] = ("features",)
    format_hint = (
        "<risk_features>\nharmful_content: ...\ncategories: ...\nseverity: ...\ntextual_triggers: ...\n"
        "visual_triggers: ...\nsafe_behaviour: ...\n</risk_features>"
    )

    def values(self, record: SynthRecord, images: Sequence[ImageData]) -> dict[str, str]:
        unsafe_empty = "(none: the request is benign)" if record.seed.kind == "safe" else "(none)"
        return {
            **base_values(record, images),
            "y_safe": untrusted(record.y_safe),
            "y_unsafe": untrusted(record.y_unsafe, unsafe_empty),
        }

    def parse(self, text: str, record: SynthRecord) -> dict[str, Any]:
        return {"features": parse_risk_features(text)}


class CausalStage(TeacherStage):
    """Stage 2: from F, the textual, visual and cross-modal analysis ending in the risk report A."""

    name: StageName = StageName.CAUSAL
    template_name = "synth-causal"
    fields: tuple[str, ...] = ("report",)
    format_hint = (
        "<risk_report>\ntextual: ...\nvisual: ...\ncross_modal: ...\ncategories: ...\nseverity: ...\n"
        "decision: forward|reframe|refuse\nreasoning: ...\n</risk_report>"
    )

    def values(self, record: SynthRecord, images: Sequence[ImageData]) -> dict[str, str]:
        features = record.features.render() if record.features else "(none)"
        return {**base_values(record, images), "features": neutralize(features, STAGE_MARKERS)}

    def parse(self, text: str, record: SynthRecord) -> dict[str, Any]:
        report = parse_risk_report(text)
        if record.seed.kind == "safe" and report.decision != Decision.FORWARD:
            raise ParseError(
                "the request is labelled benign, so the decision must be forward, "
                f"not {report.decision.value}"
            )
        if record.seed.kind == "unsafe":
            if report.decision == Decision.FORWARD:
                raise ParseError("the request is labelled unsafe, so the decision cannot be forward")
            if report.severity == Severity.NONE:
                raise ParseError("the request is labelled unsafe, so the severity cannot be none")
            if not report.findings:
                raise ParseError(
                    "an unsafe request needs at least one textual, visual or cross_modal finding"
                )
        return {"report": report}


def render_report(report: RiskReport) -> str:
    """A report as the ``field: value`` lines stage 3 receives."""
    text = format_rewriter_output(report, "")
    return text.split("<analysis>\n", 1)[1].split("\n</analysis>", 1)[0]


def final_prompt(record: SynthRecord) -> str:
    """The prompt the rewriter is trained to emit: the user's own for forward, empty for refuse."""
    if record.report is None:
        raise ValueError(f"record {record.id} has no risk report")
    if record.report.decision == Decision.FORWARD:
        return record.seed.prompt
    if record.report.decision == Decision.REFUSE:
        return ""
    return record.rewritten_prompt or ""


class OptimizeStage(TeacherStage):
    """Stage 3: from the report A, the rewritten prompt x_T' (identity for benign requests)."""

    name: StageName = StageName.OPTIMIZE
    template_name = "synth-optimize"
    fields: tuple[str, ...] = ("rewritten_prompt",)
    format_hint = "<rewritten_prompt>\n...\n</rewritten_prompt>"

    def values(self, record: SynthRecord, images: Sequence[ImageData]) -> dict[str, str]:
        if record.report is None:
            raise ValueError(f"record {record.id} reached stage 3 without a risk report")
        return {
            **base_values(record, images),
            "decision": record.report.decision.value,
            "report": neutralize(render_report(record.report), STAGE_MARKERS),
        }

    def parse(self, text: str, record: SynthRecord) -> dict[str, Any]:
        assert record.report is not None
        prompt = parse_rewritten_prompt(text)
        decision = record.report.decision
        if decision == Decision.REFUSE:
            prompt = ""
        elif not prompt:
            raise ParseError(f"the decision is {decision.value} but the rewritten prompt is empty")
        elif decision == Decision.REFRAME and " ".join(prompt.split()) == " ".join(
            record.seed.prompt.split()
        ):
            raise ParseError(
                "the decision is reframe but the rewritten prompt repeats the user's prompt unchanged"
            )
        candidate = record.model_copy(update={"rewritten_prompt": prompt})
        target = format_rewriter_output(record.report, final_prompt(candidate))
        try:
            parsed_report, _ = parse_rewriter_output(target)
        except ParseError as exc:
            raise ParseError(f"the rewrite does not fit the rewriter format: {exc}") from None
        if parsed_report.decision != decision:
            raise ParseError("the rewrite changes the decision when read back")
        return {"rewritten_prompt": prompt}
