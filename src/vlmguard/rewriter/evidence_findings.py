"""Findings of the evidence rewriter, one small function per modality, and the report built from them.

Each function turns typed signals (:class:`~vlmguard.perception.risk_model.RiskScore`, an image's
:class:`~vlmguard.perception.image_evidence.ImageEvidence`, an injection result) into
:class:`~vlmguard.types.Finding` objects under a :class:`~vlmguard.rewriter.policy.Policy`; the
report's analysis is written from those findings, never parsed back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vlmguard.rewriter.evidence_prompts import (
    MOVED_REQUEST_GUIDANCE,
    REFRAME_TEMPLATE,
    REQUEST_LINES,
    category_topic,
    guidance_lines,
)
from vlmguard.rewriter.policy import Policy
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, Finding, Modality, RiskReport, Severity, max_severity

SNIPPET_CHARS = 120
_TAXONOMY = {c.value: c for c in RiskCategory}


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, double quotes made single, cut to ``limit`` characters."""
    flat = " ".join(text.split()).replace('"', "'")
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def taxonomy_category(label: str | None) -> RiskCategory | None:
    """The taxonomy category of a risk model's category name (``other`` for a custom name)."""
    if label is None:
        return None
    return _TAXONOMY.get(label, RiskCategory.OTHER)


def topic(label: str | None) -> str:
    """How the report names a category: the taxonomy's words, or a custom category's own name."""
    if label is not None and label not in _TAXONOMY:
        return label.replace("_", " ")
    return category_topic(taxonomy_category(label))


class TextReading(BaseModel):
    """What the risk model read in one text (the prompt, an image's text, or a composition)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    where: str
    """How the report names the text ("the prompt", "the image's text")."""
    text: str
    score: Any
    """The :class:`~vlmguard.perception.risk_model.RiskScore`."""
    turn: int | None = None
    image: int | None = None
    """The image whose text this is, or that the prompt was composed with."""
    composed: Literal["text", "concept"] | None = None
    """For a composition: whether the prompt was read with the image's text or with a concept."""


def risk_findings(
    reading: TextReading, modality: Modality, policy: Policy, *, prefix: str = ""
) -> list[Finding]:
    """Findings for a text the risk model flagged: one per named category, critical when a critical
    cue of the policy matches the flagged text."""
    score = reading.score
    labels = score.top_categories(policy.category_threshold)
    cue = policy.critical_cue(reading.text)
    findings: list[Finding] = []
    for n, label in enumerate(labels):
        severity = policy.severity_of(label)
        if cue is not None and (cue.category == label or n == 0):
            severity = Severity.CRITICAL
        why = f"risk {score.p_harmful:.2f}" + (
            f"; critical cue: {cue.name}" if cue is not None and n == 0 else ""
        )
        if n == 0:
            quoted = snippet(score.window or reading.text)
            evidence = f'{prefix}{reading.where} ("{quoted}") reads as a request for {topic(label)} ({why})'
        else:
            evidence = (
                f"{reading.where} also touches on {topic(label)} ({score.categories.get(label, 0.0):.2f})"
            )
        findings.append(
            Finding(
                modality=modality,
                category=taxonomy_category(label),
                label=label,
                severity=severity,
                source="risk-model",
                score=score.p_harmful if n == 0 else score.categories.get(label),
                evidence=evidence,
                turn=reading.turn,
            )
        )
    return findings


_ADDRESSES_MODEL = re.compile(
    r"\b(?:assistant|ai|chatbot|language model|llm|guard|filter|moderator|classifier|system|instructions|"
    r"rules|prompt|guidelines|restrictions)\b|"
    r"\byou\s+(?:are|must|will|should|have to|need to|can now|may now)\b|"
    r"\b(?:respond|reply|answer|say|output|print)\s+(?:only|with|exactly|[\"'\u201c\u2018])",
    re.IGNORECASE,
)
"""Words that speak to the model or about its rules ("SYSTEM:", "your instructions", "you must")."""


def counts_as_injection(result: Any, text: str) -> bool:
    """Whether an injection score counts: a lexical cue, or the classifier with words aimed at the model.

    The classifier alone also fires on plain imperative requests ("Write a policy proposal
    advocating for this.") and on short, noisy image text (signs, a drawing exercise): measured on
    the bundled images, requiring words aimed at the model took benign image-text injections from 1
    to 0 while every cue-carrying injection still counts.
    """
    if not result.is_injection:
        return False
    return bool(getattr(result, "cues", None)) or _ADDRESSES_MODEL.search(" ".join(text.split())) is not None


def injection_finding(
    result: Any, text: str, modality: Modality, where: str, turn: int | None
) -> tuple[Finding | None, str | None]:
    """A prompt-injection finding for ``text``, or a note when the classifier's hit is not counted."""
    if counts_as_injection(result, text):
        cues = getattr(result, "cues", None)
        evidence = (
            f"{where} tries to override the assistant's or the guard's instructions"
            + (f" ({', '.join(cues)})" if cues else "")
            + (f': "{snippet(text, 80)}"' if modality == Modality.VISUAL else "")
        )
        return (
            Finding(
                modality=modality,
                category=RiskCategory.PROMPT_INJECTION,
                label=RiskCategory.PROMPT_INJECTION.value,
                severity=Severity.MEDIUM,
                source=f"injection:{result.source}",
                score=result.score,
                evidence=evidence,
                turn=turn,
            ),
            None,
        )
    if result.is_injection:
        return None, (
            f"the injection classifier scored {where} {result.score:.2f}, but it does not speak to the "
            "assistant or its rules; not counted"
        )
    return None, None


def concept_findings(evidence: Any, label: str, policy: Policy, turn: int | None) -> list[Finding]:
    """Visual findings for an image's risk concepts: context (low), or medium for the policy's
    reframe categories (nudity)."""
    out = []
    for concept in evidence.risk_concepts:
        name = concept.category.value if concept.category is not None else None
        severity = Severity.MEDIUM if name in policy.reframe_visual_categories else Severity.LOW
        out.append(
            Finding(
                modality=Modality.VISUAL,
                category=concept.category,
                label=name,
                severity=severity,
                source=concept.source,
                score=round(concept.score, 4),
                evidence=f"{label} shows {concept.concept}: {concept.evidence}",
                turn=turn,
            )
        )
    return out


def acting(findings: Sequence[Finding]) -> list[Finding]:
    """Findings that change the prompt: every textual and cross-modal one, visual ones of medium or more."""
    return [f for f in findings if f.modality != Modality.VISUAL or f.severity.rank >= Severity.MEDIUM.rank]


def build_report(findings: list[Finding], notes: dict[Modality, list[str]]) -> RiskReport:
    """The report: decision from the findings' severities, categories of the acting findings."""
    act = acting(findings)
    severity = max_severity([f.severity for f in findings])
    if any(f.severity == Severity.CRITICAL for f in findings):
        decision = Decision.REFUSE
    elif act:
        decision = Decision.REFRAME
    else:
        decision = Decision.FORWARD
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, list(Modality).index(f.modality)))
    counted = [f for f in ordered if decision == Decision.FORWARD or f in act]
    categories = list(dict.fromkeys(f.category for f in counted if f.category is not None))
    labels = list(dict.fromkeys(f.label for f in counted if f.label is not None))
    return RiskReport(
        findings=ordered,
        categories=categories,
        labels=labels,
        severity=severity,
        decision=decision,
        analysis=analysis_text(ordered, notes, decision),
    )


def analysis_text(findings: list[Finding], notes: dict[Modality, list[str]], decision: Decision) -> str:
    """The report's analysis in words, per modality, then the decision and why."""
    names = {Modality.TEXTUAL: "Textual", Modality.VISUAL: "Visual", Modality.CROSS_MODAL: "Cross-modal"}
    empty = {
        Modality.TEXTUAL: "no risk found in the prompt",
        Modality.VISUAL: "no risk found in the image(s)",
        Modality.CROSS_MODAL: "no risky interaction between the prompt and the image(s)",
    }
    parts = []
    for modality in Modality:
        items = [
            f"{f.evidence} [{f.severity.value}{'' if f.turn is None else f', turn {f.turn + 1}'}]"
            for f in findings
            if f.modality == modality
        ]
        items += notes.get(modality, [])
        parts.append(f"{names[modality]}: " + ("; ".join(items) if items else empty[modality]) + ".")
    if decision == Decision.REFUSE:
        why = "a critical risk with no safe reading"
    elif decision == Decision.REFRAME:
        why = "risks were found, but the request has a legitimate, safe reading"
    elif findings:
        why = "only low-severity visual context was found; the request is benign"
    else:
        why = "no risk was found"
    parts.append(f"Decision: {decision.value} ({why}).")
    return " ".join(parts)


def reframe_prompt(prompt: str, report: RiskReport, mode: str, *, n_images: int) -> str:
    """The reframed prompt: the request, the acting evidence (context apart), and per-category guidance.

    ``mode`` is ``acts_on_image`` (the request was moved into the image), ``with_image`` or
    ``text_only``.
    """
    act = acting(report.findings)
    context = [f for f in report.findings if f not in act]
    evidence = [f"- {f.evidence[:1].upper()}{f.evidence[1:]}." for f in act[:6]]
    if context:
        things = "; ".join(dict.fromkeys(snippet(f.evidence, 100) for f in context[:4]))
        evidence.append(f"- Context (not acted on): {things}.")
    categories = [taxonomy_category(label) for label in report.labels]
    guidance = guidance_lines([c for c in categories if c is not None])
    if mode == "acts_on_image":
        guidance = "\n".join(filter(None, [guidance, MOVED_REQUEST_GUIDANCE]))
    return REFRAME_TEMPLATE.format(
        request_line=REQUEST_LINES.get(mode, REQUEST_LINES["with_image" if n_images else "text_only"]),
        evidence="\n".join(evidence),
        guidance=guidance,
        prompt=prompt,
    )


__all__ = [
    "TextReading",
    "acting",
    "analysis_text",
    "build_report",
    "concept_findings",
    "counts_as_injection",
    "injection_finding",
    "reframe_prompt",
    "risk_findings",
    "snippet",
    "taxonomy_category",
    "topic",
]
