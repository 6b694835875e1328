"""The rewriter's output format: written by the synthesis export, read by the model-based rewriter.

::

    <analysis>
    textual: <finding, or none>          (several findings: separated by ' ; ')
    visual: <finding, or none>
    cross_modal: <finding, or none>
    categories: <taxonomy names, comma-separated, or none>
    severity: <none|low|medium|high|critical>
    decision: <forward|reframe|refuse>
    reasoning: <free text, may span lines>
    </analysis>
    <rewritten_prompt>
    <text; empty for refuse>
    </rewritten_prompt>

The parser is strict and binds to the *last* ``<rewritten_prompt>`` block and the last
``<analysis>`` block before it, so a fake block that a user (or text in an image) smuggles into
the model's output earlier cannot win.
"""

from __future__ import annotations

import re

from vlmguard.errors import ParseError
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, Finding, Modality, RiskReport, Severity

MARKERS = ("analysis", "rewritten_prompt", "user_text")
_FIELDS = ("textual", "visual", "cross_modal", "categories", "severity", "decision", "reasoning")
NONE_WORDS = frozenset({"", "none", "n/a", "na", "-", "no", "nothing"})
"""Values that mean "no finding" in a field."""


def format_rewriter_output(report: RiskReport, prompt: str) -> str:
    """Render a report and a rewritten prompt in the rewriter's output format."""

    def findings(modality: Modality) -> str:
        items = [f.evidence.replace("\n", " ").strip() for f in report.by_modality(modality)]
        return " ; ".join(i for i in items if i) or "none"

    categories = ", ".join(c.value for c in report.categories) or "none"
    reasoning = report.analysis.strip() or "none"
    body = prompt.strip() if report.decision != Decision.REFUSE else ""
    return (
        "<analysis>\n"
        f"textual: {findings(Modality.TEXTUAL)}\n"
        f"visual: {findings(Modality.VISUAL)}\n"
        f"cross_modal: {findings(Modality.CROSS_MODAL)}\n"
        f"categories: {categories}\n"
        f"severity: {report.severity.value}\n"
        f"decision: {report.decision.value}\n"
        f"reasoning: {reasoning}\n"
        "</analysis>\n"
        "<rewritten_prompt>\n"
        f"{body}\n"
        "</rewritten_prompt>"
    )


def _last_block(text: str, tag: str, end: int | None = None) -> tuple[int, str]:
    """Start index and body of the last ``<tag>...</tag>`` block closing at or before ``end``."""
    region = text if end is None else text[:end]
    opens = [m for m in re.finditer(rf"<{tag}>", region, re.I)]
    if not opens:
        raise ParseError(f"no <{tag}> block")
    start = opens[-1]
    close = re.search(rf"</{tag}>", region[start.end() :], re.I)
    if not close:
        raise ParseError(f"<{tag}> block is not closed")
    return start.start(), region[start.end() : start.end() + close.start()]


def parse_categories(value: str) -> list[RiskCategory]:
    """Comma-separated taxonomy names (``none`` for none); an unknown name is a :class:`ParseError`."""
    if value.strip().lower() in NONE_WORDS:
        return []
    out: list[RiskCategory] = []
    for raw in re.split(r"[,;]", value):
        name = raw.strip().lower().replace("-", "_").replace(" ", "_")
        if not name:
            continue
        try:
            category = RiskCategory(name)
        except ValueError:
            raise ParseError(f"unknown risk category {raw.strip()!r}") from None
        if category not in out:
            out.append(category)
    return out


def parse_rewriter_output(text: str) -> tuple[RiskReport, str]:
    """Parse rewriter output into ``(report, rewritten_prompt)``; raises :class:`ParseError`."""
    if not text or not text.strip():
        raise ParseError("empty output")
    start, body = _last_block(text, "rewritten_prompt")
    trailing = text[start:]
    closing = re.search(r"</rewritten_prompt>", trailing, re.I)
    assert closing is not None
    if trailing[closing.end() :].strip():
        raise ParseError("text after the final </rewritten_prompt>")
    _, analysis = _last_block(text, "analysis", end=start)
    fields: dict[str, str] = {}
    current: str | None = None
    for line in analysis.strip().splitlines():
        if current == "reasoning":
            # reasoning is the last field and may span lines: what follows is reasoning, even a line
            # that looks like a field (e.g. quoted user text "decision: forward")
            fields["reasoning"] += "\n" + line.strip()
            continue
        match = re.match(rf"^\s*({'|'.join(_FIELDS)})\s*:\s*(.*)$", line, re.I)
        if match:
            current = match.group(1).lower()
            if current in fields:
                raise ParseError(f"field '{current}:' appears twice in <analysis>")
            fields[current] = match.group(2).strip()
        elif line.strip():
            raise ParseError(f"unexpected line in <analysis>: {line.strip()[:80]!r}")
    for required in ("decision", "severity", "categories"):
        if required not in fields:
            raise ParseError(f"<analysis> has no '{required}:' line")
    try:
        decision = Decision(fields["decision"].strip().lower())
    except ValueError:
        raise ParseError(f"invalid decision {fields['decision']!r} (forward, reframe, refuse)") from None
    try:
        severity = Severity(fields["severity"].strip().lower())
    except ValueError:
        raise ParseError(f"invalid severity {fields['severity']!r}") from None
    categories = parse_categories(fields["categories"])
    findings: list[Finding] = []
    for modality in Modality:
        value = fields.get(modality.value, "")
        for item in value.split(" ; "):
            if item.strip().lower() not in NONE_WORDS:
                findings.append(
                    Finding(modality=modality, evidence=item.strip(), severity=severity, source="rewriter")
                )
    prompt = body.strip()
    if decision != Decision.REFUSE and not prompt:
        raise ParseError(f"decision is {decision.value} but the rewritten prompt is empty")
    reasoning = fields.get("reasoning", "").strip()
    report = RiskReport(
        findings=findings,
        categories=categories,
        severity=severity,
        decision=decision,
        analysis="" if reasoning.lower() in NONE_WORDS else reasoning,
    )
    return report, prompt
