"""The evidence rewriter: a training-free rewriter that reasons over offline perception evidence.

For each request it gathers evidence with small packaged models and writes a
:class:`~vlmguard.types.RiskReport` and a rewritten prompt, without calling any language model:

- **textual**: the prompt's risk tags (:class:`~vlmguard.perception.text_risk.TextRiskTagger`) and
  prompt injection (:class:`~vlmguard.perception.injection.InjectionDetector`);
- **visual**: per image (:class:`~vlmguard.perception.image_evidence.ImagePerceiver`), risk concepts
  from ImageNet labels, nudity, and the text read in the image, itself tagged for risk and for
  injection (an injection inside an image is a finding, and never makes the guard forward);
- **cross-modal**: the prompt asks to complete or carry out what the image shows while the image
  carries a harmful request (the typographic-attack pattern), or the prompt reads as risky only
  together with what the image shows (a weak textual signal plus a matching visual concept, e.g.
  "a new world from here" over a picture of a height).

Decision: ``refuse`` for critical findings (a request for weapons of mass harm, sexual content
involving minors), ``reframe`` for any textual or cross-modal finding and for visual findings of
medium severity or more (a harmful request or an injection written in the image, nudity),
``forward`` otherwise (benign text; risky-looking objects alone are reported but do not change the
prompt). A reframed prompt quotes the user's request, names the specific evidence and tells the
target what to leave out and what safe, useful help to give instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from vlmguard.errors import ConfigError, ImageError
from vlmguard.rewriter.evidence_prompts import (
    MOVED_REQUEST_GUIDANCE,
    REFRAME_TEMPLATE,
    REQUEST_LINES,
    category_topic,
    guidance_lines,
)
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import Decision, Finding, ImageData, Modality, Rewrite, RiskReport, Severity, max_severity

C = RiskCategory

BASE_SEVERITY: dict[RiskCategory, Severity] = {
    C.ILLEGAL_ACTIVITY: Severity.HIGH,
    C.VIOLENCE_WEAPONS: Severity.HIGH,
    C.SELF_HARM: Severity.HIGH,
    C.SEXUAL_CONTENT: Severity.HIGH,
    C.HATE_DISCRIMINATION: Severity.HIGH,
    C.DRUGS: Severity.HIGH,
    C.MALWARE: Severity.HIGH,
    C.PRIVACY: Severity.MEDIUM,
    C.FRAUD_DECEPTION: Severity.MEDIUM,
    C.DANGEROUS_BEHAVIOR: Severity.MEDIUM,
    C.HEALTH_ADVICE: Severity.LOW,
    C.LEGAL_FINANCIAL_ADVICE: Severity.LOW,
    C.POLITICAL: Severity.LOW,
    C.PROMPT_INJECTION: Severity.MEDIUM,
    C.OTHER: Severity.LOW,
}
"""Severity of a flagged category in a request."""

COMPATIBLE: dict[RiskCategory, frozenset[RiskCategory]] = {
    C.DANGEROUS_BEHAVIOR: frozenset({C.SELF_HARM, C.DANGEROUS_BEHAVIOR, C.VIOLENCE_WEAPONS}),
    C.VIOLENCE_WEAPONS: frozenset(
        {C.VIOLENCE_WEAPONS, C.SELF_HARM, C.ILLEGAL_ACTIVITY, C.HATE_DISCRIMINATION}
    ),
    C.DRUGS: frozenset({C.DRUGS, C.SELF_HARM, C.HEALTH_ADVICE, C.DANGEROUS_BEHAVIOR, C.ILLEGAL_ACTIVITY}),
    C.SEXUAL_CONTENT: frozenset({C.SEXUAL_CONTENT, C.PRIVACY, C.HATE_DISCRIMINATION}),
}
"""Which textual categories a visual concept's category makes more likely (cross-modal pairing)."""

MEDIUM_VISUAL_CATEGORIES = frozenset({C.SEXUAL_CONTENT})
"""Visual concepts that change the prompt even with a benign text (nudity)."""

ADVICE_CATEGORIES: dict[RiskCategory, str] = {
    C.HEALTH_ADVICE: "health advice",
    C.LEGAL_FINANCIAL_ADVICE: "legal or financial advice",
}
"""High-stakes *advice* categories: a risk when someone asks what to do about their own case, not when
a prompt asks a general question on the subject (which disease an X-ray shows, what a clause means)."""

_SEEKS_ADVICE = re.compile(
    r"\b(?:i|i'm|i've|i'd|me|my|mine|myself|we|our|ours|ourselves)\b|\b(?:should|shall|ought|must)\b|"
    r"\b(?:how|what|which|where)\s+(?:to|do|can|could|should|would)\b|"
    r"\b(?:advi[cs]e|recommend\w*|prescri\w*|dos(?:e|es|age)|treat\w*|cure|remed\w*|invest\w*|sue|lawsuit|"
    r"diagnos\w*)\b",
    re.IGNORECASE,
)


def seeks_advice(text: str) -> bool:
    """Whether ``text`` asks for advice on a case: first-person wording ("my", "we"), what one should do
    ("should I", "how can"), or an advice word (treat, dose, diagnose, invest, sue, recommend)."""
    return _SEEKS_ADVICE.search(text) is not None

SNIPPET_CHARS = 120


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split()).replace('"', "'")
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


_ADDRESSES_MODEL = re.compile(
    r"\b(?:assistant|ai|chatbot|language model|llm|guard|filter|moderator|classifier|system|instructions|"
    r"rules|prompt|guidelines|restrictions)\b|"
    r"\byou\s+(?:are|must|will|should|have to|need to|can now|may now)\b|"
    r"\b(?:respond|reply|answer|say|output|print)\s+(?:only|with|exactly|[\"'\u201c\u2018])",
    re.IGNORECASE,
)
"""Words that speak to the model or about its rules ("SYSTEM:", "your instructions", "you must",
"reply only with")."""


def _counts_as_injection(result: Any, text: str) -> bool:
    """Whether an injection score counts: a lexical cue, or the classifier with words aimed at the model.

    The classifier alone also fires on plain imperative requests ("Write a policy proposal advocating
    for this.") and on short, noisy image text (signs, logos, a drawing exercise); a text that tries to
    instruct the model names it, its rules or its output.
    """
    if not result.is_injection:
        return False
    return bool(getattr(result, "cues", None)) or _ADDRESSES_MODEL.search(" ".join(text.split())) is not None


def _asked(structure: Any) -> str:
    """What a request asks for, in words ("asks for steps to X", "asks how to X", "asks to write X")."""
    act = _snippet(structure.act or "", 80)
    pattern = structure.pattern or ""
    if not act or not pattern:
        return ""
    if pattern.startswith("how"):
        return f'asks "{pattern} {act}"'
    if pattern.startswith("list"):
        return f"asks for a {pattern} {act}"
    if structure.procedural:
        return f"asks for {pattern} {act}"
    return f"asks to {pattern} {act}"


def _by_severity(categories: Sequence[RiskCategory]) -> list[RiskCategory]:
    """``categories`` with the most severe first (ties keep their score order)."""
    return sorted(categories, key=lambda c: -BASE_SEVERITY.get(c, Severity.LOW).rank)


def _cap(severity: Severity, cap: Severity) -> Severity:
    return severity if severity.rank <= cap.rank else cap


class EvidenceRewriter:
    """Training-free rewriter over offline evidence; makes no model calls (``model_calls == 0``).

    Components are built lazily on first use and shared by every request of this instance:
    ``perceiver`` (:class:`ImagePerceiver`), ``tagger`` (:class:`TextRiskTagger`) and ``injection``
    (:class:`InjectionDetector`); pass objects with the same methods to replace them (e.g. fakes in
    tests). ``workers`` threads run the image and text analyses side by side.
    """

    name = "evidence"

    def __init__(
        self, *, perceiver: Any = None, tagger: Any = None, injection: Any = None, workers: int = 3
    ) -> None:
        if workers < 1:
            raise ConfigError("workers must be >= 1")
        self._perceiver = perceiver
        self._tagger = tagger
        self._injection = injection
        self.workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._build_lock = threading.Lock()

    # ------------------------------------------------------------------------------ components

    @property
    def perceiver(self) -> Any:
        if self._perceiver is None:
            with self._build_lock:
                if self._perceiver is None:
                    from vlmguard.perception.image_evidence import ImagePerceiver

                    self._perceiver = ImagePerceiver()
        return self._perceiver

    @property
    def tagger(self) -> Any:
        if self._tagger is None:
            with self._build_lock:
                if self._tagger is None:
                    from vlmguard.perception.text_risk import TextRiskTagger

                    self._tagger = TextRiskTagger()
        return self._tagger

    @property
    def injection(self) -> Any:
        if self._injection is None:
            with self._build_lock:
                if self._injection is None:
                    from vlmguard.perception.injection import InjectionDetector

                    self._injection = InjectionDetector()
        return self._injection

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            with self._build_lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        self.workers, thread_name_prefix="vlmguard-evidence"
                    )
        return self._pool

    def warmup(self) -> None:
        """Load every model now (the cold start), instead of on the first request."""
        self.perceiver.warmup()
        self.tagger.warmup()
        load = getattr(self.injection, "load", None)
        if load is not None:
            load()

    def close(self) -> None:
        """Stop the worker threads (models stay loaded until the instance is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -------------------------------------------------------------------------------- rewrite

    async def rewrite(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        """Analyse ``prompt`` with ``images`` in a worker thread and return the report and rewrite."""
        return await asyncio.to_thread(self.rewrite_sync, prompt, list(images))

    def rewrite_sync(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        """The synchronous :meth:`rewrite` (runs the models in this thread and the worker pool)."""
        start = time.perf_counter()
        report, mode = self.analyse(prompt, images)
        if report.decision == Decision.FORWARD:
            new_prompt = prompt
        elif report.decision == Decision.REFUSE:
            new_prompt = ""
        else:
            new_prompt = self.reframe(prompt, report, mode, n_images=len(images))
        return Rewrite(
            original_prompt=prompt,
            prompt=new_prompt,
            report=report,
            rewriter=self.name,
            latency_s=time.perf_counter() - start,
            model_calls=0,
        )

    # ------------------------------------------------------------------------------- analysis

    def _perceive(self, index: int, image: ImageData) -> Any:
        try:
            return self.perceiver.perceive(image)
        except ConfigError:
            raise
        except (ImageError, Exception) as exc:  # one bad image must not lose the whole request
            return exc

    def analyse(self, prompt: str, images: Sequence[ImageData]) -> tuple[RiskReport, str]:
        """The risk report for ``prompt`` with ``images``, and the request mode used for the wording."""
        pool = self._executor()
        image_jobs = [pool.submit(self._perceive, i, img) for i, img in enumerate(images)]
        # The prompt's own analyses need no image: they run while the images are perceived.
        prompt_injection = pool.submit(self.injection.score, prompt)
        prompt_tags = pool.submit(self.tagger.tag, prompt)
        evidences = [job.result() for job in image_jobs]
        ocr_texts = [
            (i, ev.ocr_text)
            for i, ev in enumerate(evidences)
            if not isinstance(ev, BaseException) and ev.ocr_text.strip()
        ]
        ocr_injection = {i: pool.submit(self.injection.score, text) for i, text in ocr_texts}
        risks = self.tagger.tag_many([text for _, text in ocr_texts]) if ocr_texts else []
        ocr_risk = {i: r for (i, _), r in zip(ocr_texts, risks, strict=True)}
        prompt_risk = prompt_tags.result()

        findings: list[Finding] = []
        notes: dict[Modality, list[str]] = {m: [] for m in Modality}
        structure = prompt_risk.structure
        acts_on_image = bool(images) and structure.acts_on_image

        # ---- textual
        general: set[RiskCategory] = set()
        if not seeks_advice(prompt):
            general = {c for c in prompt_risk.flagged if c in ADVICE_CATEGORIES} - {
                c.category for c in prompt_risk.cues if c.critical
            }
        for category in _by_severity([c for c in prompt_risk.flagged if c in general]):
            detail = prompt_risk.details.get(category)
            near = f' (close to "{detail.nearest}")' if detail is not None and detail.nearest else ""
            notes[Modality.TEXTUAL].append(
                f"the prompt reads like a request for {ADVICE_CATEGORIES[category]}{near}, but it asks a "
                "general question, not what to do in someone's own case; not counted"
            )
        acting_text = [c for c in prompt_risk.flagged if c not in general]
        for n, category in enumerate(_by_severity(acting_text)):
            findings.append(
                self._text_finding(Modality.TEXTUAL, category, prompt_risk, "the prompt", first=n == 0)
            )
        injection = prompt_injection.result()
        if _counts_as_injection(injection, prompt):
            findings.append(
                Finding(
                    modality=Modality.TEXTUAL,
                    category=C.PROMPT_INJECTION,
                    severity=Severity.MEDIUM,
                    source=f"injection:{injection.source}",
                    score=injection.score,
                    evidence="the prompt tries to override the assistant's or the guard's instructions"
                    + (f" ({', '.join(injection.cues)})" if getattr(injection, "cues", None) else ""),
                )
            )
        elif injection.is_injection:
            notes[Modality.TEXTUAL].append(
                f"the injection classifier scored the prompt {injection.score:.2f}, but the prompt does not "
                "speak to the assistant or its rules; not counted"
            )
        if not prompt_risk.language_supported:
            notes[Modality.TEXTUAL].append(
                f"the prompt looks like '{prompt_risk.language}', which the embedding model does not cover; "
                "only lexical cues were applied"
            )

        # ---- visual, per image
        for i, ev in enumerate(evidences):
            label = f"image {i + 1}" if len(images) > 1 else "the image"
            if isinstance(ev, BaseException):
                findings.append(
                    Finding(
                        modality=Modality.VISUAL,
                        severity=Severity.MEDIUM,
                        source="perception",
                        evidence=f"{label} could not be analysed ({type(ev).__name__}); treated with caution",
                    )
                )
                continue
            for component, message in sorted(ev.errors.items()):
                notes[Modality.VISUAL].append(f"{label}: {component} failed ({_snippet(message, 60)})")
            for concept in ev.risk_concepts:
                severity = Severity.MEDIUM if concept.category in MEDIUM_VISUAL_CATEGORIES else Severity.LOW
                findings.append(
                    Finding(
                        modality=Modality.VISUAL,
                        category=concept.category,
                        severity=severity,
                        source=concept.source,
                        score=round(concept.score, 4),
                        evidence=f"{label} shows {concept.concept}: {concept.evidence}",
                    )
                )
            risk = ocr_risk.get(i)
            if risk is not None:
                text = _snippet(ev.ocr_text)
                asks = risk.structure.pattern is not None
                for n, category in enumerate(_by_severity(risk.flagged)):
                    if acts_on_image:
                        break  # reported once below, as the cross-modal finding it is
                    finding = self._text_finding(
                        Modality.VISUAL, category, risk, f"{label}'s text", quote=text, first=n == 0
                    )
                    if not asks and not risk.critical:
                        finding = finding.model_copy(update={"severity": Severity.LOW})
                    elif not risk.critical:
                        finding = finding.model_copy(
                            update={"severity": max_severity([finding.severity, Severity.MEDIUM])}
                        )
                    findings.append(finding)
            if i in ocr_injection:
                result = ocr_injection[i].result()
                if _counts_as_injection(result, ev.ocr_text):
                    findings.append(
                        Finding(
                            modality=Modality.VISUAL,
                            category=C.PROMPT_INJECTION,
                            severity=Severity.MEDIUM,
                            source=f"ocr+injection:{result.source}",
                            score=result.score,
                            evidence=f"{label} contains text that tries to instruct the assistant or the "
                            f'guard: "{_snippet(ev.ocr_text, 80)}"',
                        )
                    )
                elif result.is_injection:
                    notes[Modality.VISUAL].append(
                        f"{label}: the injection classifier scored its text {result.score:.2f}, but the text "
                        "does not speak to the assistant or its rules; not counted"
                    )

        # ---- cross-modal
        for i, risk in ocr_risk.items():
            label = f"image {i + 1}" if len(images) > 1 else "the image"
            if not acts_on_image:
                continue
            asks = risk.structure.pattern is not None
            weak = [c for c in risk.suspected if asks] if not risk.flagged else []
            for n, category in enumerate(_by_severity(risk.flagged) + weak[:1]):
                finding = self._text_finding(
                    Modality.CROSS_MODAL,
                    category,
                    risk,
                    f"{label}'s text",
                    quote=_snippet(evidences[i].ocr_text),
                    image=label,
                    first=n == 0,
                )
                if category in weak:
                    finding = finding.model_copy(update={"severity": _cap(finding.severity, Severity.MEDIUM)})
                findings.append(finding)
            if asks and not risk.flagged and not weak:
                # The request itself was moved from the text into the image (the typographic pattern):
                # no risk category was found in it, but it must be judged as if the user had typed it.
                request = risk.structure
                asked = _snippet(f"{request.pattern} {request.act or ''}", 90)
                findings.append(
                    Finding(
                        modality=Modality.CROSS_MODAL,
                        severity=Severity.LOW,
                        source="structure",
                        evidence=(
                            f"the prompt asks to carry out a request written in {label} "
                            f'("{asked}"): the request '
                            "was moved from the text into the image, so it is judged as if typed"
                        ),
                    )
                )
        seen_pairs: set[RiskCategory] = set()
        text_cats = prompt_risk.flagged + prompt_risk.suspected
        for i, ev in enumerate(evidences):
            if isinstance(ev, BaseException):
                continue
            label = f"image {i + 1}" if len(images) > 1 else "the image"
            for concept in ev.risk_concepts:
                for category in text_cats:
                    if category in seen_pairs or category not in COMPATIBLE.get(
                        concept.category, frozenset()
                    ):
                        continue
                    seen_pairs.add(category)
                    severity = BASE_SEVERITY.get(category, Severity.LOW)
                    if category not in prompt_risk.flagged:
                        severity = max_severity([_cap(severity, Severity.HIGH), Severity.MEDIUM])
                    findings.append(
                        Finding(
                            modality=Modality.CROSS_MODAL,
                            category=category,
                            severity=severity,
                            source="text-tagger+labels",
                            score=prompt_risk.scores.get(category),
                            evidence=(
                                f'{label} shows {concept.concept} and the prompt ("{_snippet(prompt, 80)}") '
                                f"reads as {category_topic(category)} together with it"
                            ),
                        )
                    )

        return self._report(findings, notes), (
            "acts_on_image"
            if acts_on_image and any(f.modality == Modality.CROSS_MODAL for f in findings)
            else ("with_image" if images else "text_only")
        )

    def _text_finding(
        self,
        modality: Modality,
        category: RiskCategory,
        risk: Any,
        where: str,
        *,
        quote: str | None = None,
        image: str | None = None,
        first: bool = True,
    ) -> Finding:
        """A finding for ``category`` tagged in a text (the prompt, or an image's text when ``quote``).

        ``image`` names the image when the prompt asks to complete what it shows (cross-modal);
        ``first`` is False for the second and later categories of the same text (shorter wording).
        """
        severity = (
            Severity.CRITICAL
            if risk.critical and any(c.critical and c.category == category for c in risk.cues)
            else BASE_SEVERITY.get(category, Severity.LOW)
        )
        topic = category_topic(category)
        cues = [c.match for c in risk.cues if c.category == category]
        detail = risk.details.get(category)
        why = (
            f'cue "{_snippet(cues[0], 40)}"'
            if cues
            else (f'close to "{detail.nearest}"' if detail is not None and detail.nearest else "tagged")
        )
        if not first:
            evidence = f"{where} also touches on {topic} ({why})"
        else:
            asked = _asked(risk.structure)
            subject = f'{where} ("{quote}")' if quote is not None else where
            evidence = (
                f"{subject} {asked} ({topic}; {why})" if asked else f"{subject} is about {topic} ({why})"
            )
            if image is not None:
                evidence = f"the prompt asks to complete what {image} shows, and {evidence}"
        return Finding(
            modality=modality,
            category=category,
            severity=severity,
            source="text-tagger",
            score=risk.scores.get(category),
            evidence=evidence,
        )

    def _report(self, findings: list[Finding], notes: dict[Modality, list[str]]) -> RiskReport:
        acting = [
            f for f in findings if f.modality != Modality.VISUAL or f.severity.rank >= Severity.MEDIUM.rank
        ]
        severity = max_severity([f.severity for f in findings])
        if any(f.severity == Severity.CRITICAL for f in findings):
            decision = Decision.REFUSE
        elif acting:
            decision = Decision.REFRAME
        else:
            decision = Decision.FORWARD
        ordered = sorted(findings, key=lambda f: (-f.severity.rank, list(Modality).index(f.modality)))
        categories: list[RiskCategory] = []
        for f in ordered:
            if (
                f.category is not None
                and f.category not in categories
                and (decision == Decision.FORWARD or f in acting)
            ):
                categories.append(f.category)
        return RiskReport(
            findings=ordered,
            categories=categories,
            severity=severity,
            decision=decision,
            analysis=self._analysis(ordered, notes, decision),
        )

    @staticmethod
    def _analysis(findings: list[Finding], notes: dict[Modality, list[str]], decision: Decision) -> str:
        names = {Modality.TEXTUAL: "Textual", Modality.VISUAL: "Visual", Modality.CROSS_MODAL: "Cross-modal"}
        empty = {
            Modality.TEXTUAL: "no risk found in the prompt",
            Modality.VISUAL: "no risk found in the image(s)",
            Modality.CROSS_MODAL: "no risky interaction between the prompt and the image(s)",
        }
        parts = []
        for modality in Modality:
            items = [f"{f.evidence} [{f.severity.value}]" for f in findings if f.modality == modality]
            items += notes[modality]
            parts.append(f"{names[modality]}: " + ("; ".join(items) if items else empty[modality]) + ".")
        if decision == Decision.REFUSE:
            why = "a critical risk with no safe reading"
        elif decision == Decision.REFRAME:
            why = "risks were found, but the request has a legitimate, safe reading"
        elif findings:
            why = "only low-severity visual context was found; the text is benign"
        else:
            why = "no risk was found"
        parts.append(f"Decision: {decision.value} ({why}).")
        return " ".join(parts)

    # -------------------------------------------------------------------------------- wording

    def reframe(self, prompt: str, report: RiskReport, mode: str, *, n_images: int) -> str:
        """The reframed prompt: the request, the specific evidence, and how to answer safely."""
        acting = [
            f
            for f in report.findings
            if f.modality != Modality.VISUAL or f.severity.rank >= Severity.MEDIUM.rank
        ]
        context = [f for f in report.findings if f not in acting]
        evidence = [f"- {f.evidence[:1].upper()}{f.evidence[1:]}." for f in acting[:6]]
        if context:
            things = ", ".join(dict.fromkeys(f.evidence.split(":")[0].split(" shows ")[-1] for f in context))
            evidence.append(f"- Visual context: the image shows {things}.")
        categories = [c for c in report.categories if c is not None]
        guidance = guidance_lines(categories)
        if any(f.source == "structure" for f in acting):
            guidance = "\n".join(filter(None, [guidance, MOVED_REQUEST_GUIDANCE]))
        return REFRAME_TEMPLATE.format(
            request_line=REQUEST_LINES.get(mode, REQUEST_LINES["with_image" if n_images else "text_only"]),
            evidence="\n".join(evidence),
            guidance=guidance,
            prompt=prompt,
        )


__all__ = ["ADVICE_CATEGORIES", "BASE_SEVERITY", "COMPATIBLE", "EvidenceRewriter", "seeks_advice"]
