"""The offline stand-in teacher answers the three stage templates in their formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from synth_testkit import png

from vlmguard.errors import BackendError
from vlmguard.synth.records import SynthRecord
from vlmguard.synth.seeds import Seed
from vlmguard.synth.stages import CausalStage, HindsightStage, OptimizeStage, final_prompt
from vlmguard.synth.standin import EvidenceTeacher
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, Finding, ImageData, Message, Modality, Rewrite, RiskReport, Severity


class FakeEvidenceRewriter:
    """Stands in for the evidence rewriter: flags prompts containing 'drug'."""

    name = "fake-evidence"

    def __init__(self) -> None:
        self.calls = 0

    async def rewrite(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        self.calls += 1
        if "drug" in prompt:
            report = RiskReport(
                findings=[
                    Finding(modality=Modality.VISUAL, evidence='image text reads "Steps to make drugs"'),
                    Finding(modality=Modality.CROSS_MODAL, evidence="asks to fill in the list"),
                ],
                categories=[RiskCategory.DRUGS],
                severity=Severity.HIGH,
                decision=Decision.REFRAME,
                analysis="The image asks for drug synthesis steps.",
            )
            return Rewrite(
                original_prompt=prompt,
                prompt="Explain the dangers instead.",
                report=report,
                rewriter=self.name,
            )
        return Rewrite(original_prompt=prompt, prompt=prompt, report=RiskReport(), rewriter=self.name)


def _record(tmp_path: Path, prompt: str, kind: str) -> SynthRecord:
    path = tmp_path / "i.png"
    path.write_bytes(png((9, 9, 9)))
    seed = Seed(
        id="x",
        images=[str(path)],
        prompt=prompt,
        kind=kind,  # type: ignore[arg-type]
        category=RiskCategory.ILLEGAL_ACTIVITY if kind == "unsafe" else None,
        y_safe="s",
        y_unsafe="u" if kind == "unsafe" else None,
    )
    return SynthRecord.from_seed(seed)


async def _stages(record: SynthRecord, teacher: EvidenceTeacher) -> SynthRecord:
    for stage in (
        HindsightStage(parse_attempts=1),
        CausalStage(parse_attempts=1),
        OptimizeStage(parse_attempts=1),
    ):
        record = await stage(record, teacher)
    return record


async def test_unsafe_benign_and_label_override(tmp_path: Path) -> None:
    rewriter = FakeEvidenceRewriter()
    teacher = EvidenceTeacher(rewriter)
    flagged = await _stages(_record(tmp_path, "Fill in the drug list", "unsafe"), teacher)
    assert flagged.failure is None and flagged.report is not None
    assert flagged.report.decision == Decision.REFRAME and flagged.report.categories == [RiskCategory.DRUGS]
    assert final_prompt(flagged) == "Explain the dangers instead."
    assert rewriter.calls == 1  # one evidence pass serves the three stages
    benign = await _stages(_record(tmp_path, "What colour is it?", "safe"), teacher)
    assert benign.failure is None and final_prompt(benign) == "What colour is it?"
    # labelled unsafe, but the evidence saw nothing: reframed with the label's category
    unseen = await _stages(_record(tmp_path, "Fill in the list", "unsafe"), teacher)
    assert unseen.failure is None and unseen.report is not None
    assert unseen.report.decision == Decision.REFRAME
    assert unseen.report.categories == [RiskCategory.ILLEGAL_ACTIVITY]
    assert "Request: Fill in the list" in final_prompt(unseen)


async def test_other_requests_are_refused() -> None:
    with pytest.raises(BackendError, match="only answers"):
        await EvidenceTeacher(FakeEvidenceRewriter()).generate([Message.user("hello")])
