"""The evidence rewriter: a training-free guard that reads offline evidence with a learned risk model.

For each request it gathers evidence with small packaged models and writes a
:class:`~vlmguard.types.RiskReport` and a rewritten prompt, without calling any language model:

- **textual**: the learned risk model (:class:`~vlmguard.perception.risk_model.RiskModel`) reads the
  prompt; prompt injection has its own detector
  (:class:`~vlmguard.perception.injection.InjectionDetector`);
- **visual**: per image (:class:`~vlmguard.perception.image_evidence.ImagePerceiver`), the text read
  in it (scored by the same risk model, and for injection), risk concepts from ImageNet labels, and
  nudity;
- **cross-modal**: the prompt is composed with what each image says and shows
  (:func:`~vlmguard.perception.risk_compose.compose`) and the composition is scored by the same model:
  a prompt that leaves its object or its request to the image is judged as the request it makes.

The policy (:mod:`vlmguard.rewriter.policy`, package data) decides: ``refuse`` for a critical
finding (a harmful request that names a weapon of mass harm or sexual content involving minors),
``reframe`` for any textual or cross-modal finding and for visual findings of medium severity (a
perception failure, nudity), ``forward`` otherwise; a harmful text in an image that the prompt does
not act on is reported as context. A reframed prompt quotes the user's request, names the evidence
and tells the target what to leave out and what safe, useful help to give instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError
from vlmguard.perception.ocr import OCR_BUDGET
from vlmguard.perception.risk_compose import compose, image_request
from vlmguard.rewriter.evidence_findings import (
    TextReading,
    build_report,
    concept_findings,
    injection_finding,
    reframe_prompt,
    risk_findings,
    snippet,
)
from vlmguard.rewriter.policy import Policy, load_policy
from vlmguard.text import normalize_text
from vlmguard.types import Decision, Finding, ImageData, Modality, Rewrite, RiskReport, Severity, Turn


def _read_text(evidence: Any) -> str:
    """The request an image's OCR text makes, normalised as every text entering the guard."""
    return image_request(normalize_text(evidence.ocr_text))


class EvidenceRewriter:
    """Training-free rewriter over offline evidence; makes no model calls (``model_calls == 0``).

    ``risk_model`` is a head folder trained with ``vlmguard risk-model train`` (default: the packaged
    model), or a :class:`~vlmguard.perception.risk_model.RiskModel` object; ``policy`` a policy YAML
    file or a :class:`~vlmguard.rewriter.policy.Policy`. ``perceiver`` and ``injection`` replace the
    packaged image perceiver and injection detector (e.g. fakes in tests). Components load lazily on
    first use and are shared by every request of the instance; ``workers`` threads perceive images
    while the prompt is read.
    """

    name = "evidence"

    def __init__(
        self,
        *,
        risk_model: Any = None,
        policy: Policy | str | Path | None = None,
        perceiver: Any = None,
        injection: Any = None,
        workers: int = 3,
    ) -> None:
        if workers < 1:
            raise ConfigError("workers must be >= 1")
        if risk_model is None or isinstance(risk_model, (str, Path)):
            from vlmguard.perception.risk_model import RiskModel

            if risk_model is not None and not Path(risk_model).is_dir():
                raise ConfigError(f"risk model folder not found: {risk_model}")
            risk_model = RiskModel(risk_model)
        self.risk = risk_model
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self._perceiver = perceiver
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
        self.risk.warmup()
        load = getattr(self.injection, "load", None)
        if load is not None:
            load()

    def close(self) -> None:
        """Stop the worker threads (models stay loaded until the instance is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -------------------------------------------------------------------------------- rewrite

    async def rewrite(
        self, prompt: str, images: Sequence[ImageData] = (), history: Sequence[Turn] = ()
    ) -> Rewrite:
        """Analyse ``prompt`` with ``images`` (and the conversation's earlier ``history``) in a worker
        thread and return the report and rewrite."""
        return await asyncio.to_thread(self.rewrite_sync, prompt, list(images), list(history))

    def rewrite_sync(
        self, prompt: str, images: Sequence[ImageData] = (), history: Sequence[Turn] = ()
    ) -> Rewrite:
        """The synchronous :meth:`rewrite` (runs the models in this thread and the worker pool)."""
        start = time.perf_counter()
        prompt = normalize_text(prompt)
        report, mode = self.analyse(prompt, images, history)
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

    def _perceive(self, image: ImageData, ocr_budget: int | None = None) -> Any:
        try:
            return self.perceiver.perceive(image, ocr_budget=ocr_budget)
        except ConfigError:
            raise
        except Exception as exc:  # one bad image must not lose the whole request
            return exc

    def analyse(
        self, prompt: str, images: Sequence[ImageData], history: Sequence[Turn] = ()
    ) -> tuple[RiskReport, str]:
        """The risk report for ``prompt`` with ``images`` after ``history``, and the request mode used
        for the wording."""
        findings, notes, mode = self._analyse_turn(prompt, images)
        if history:
            self._analyse_history(prompt, history, findings, notes)
        return build_report(findings, notes), mode

    def _analyse_history(
        self, prompt: str, history: Sequence[Turn], findings: list[Finding], notes: dict[Modality, list[str]]
    ) -> None:
        """Add the findings of the earlier turns: each user turn (with its images' text) alone, all user
        turns read together (a request split over turns), and assistant turns for injected instructions."""
        last_turn_textual = any(f.modality == Modality.TEXTUAL for f in findings)
        user = [t for t in history if t.role == "user"]
        turn_texts = [
            f"{normalize_text(t.text)} {extra}".strip()
            for t, extra in zip(user, self._image_texts(user), strict=True)
        ]
        readings = [
            TextReading(where=f"turn {t.index + 1}", text=text, score=None, turn=t.index)
            for t, text in zip(user, turn_texts, strict=True)
        ]
        joined = "\n".join([*turn_texts, prompt])
        readings.append(TextReading(where="the user turns read together", text=joined, score=None))
        scores = self._scores([r.text for r in readings])
        readings = [r.model_copy(update={"score": s}) for r, s in zip(readings, scores, strict=True)]
        flagged_turns = [r for r in readings[:-1] if r.score.flagged]
        for reading in flagged_turns:
            findings += risk_findings(reading, Modality.TEXTUAL, self.policy, prefix="an earlier user turn: ")
        together = readings[-1]
        if together.score.flagged and not flagged_turns and not last_turn_textual:
            last = user[-1].index if user else None
            findings += [
                f.model_copy(update={"turn": last})
                for f in risk_findings(together, Modality.TEXTUAL, self.policy, prefix="split over turns: ")
            ]
        for turn in history:
            if turn.role == "assistant":
                result = self.injection.score(normalize_text(turn.text))
                finding, note = injection_finding(
                    result,
                    turn.text,
                    Modality.TEXTUAL,
                    f"an earlier assistant turn (turn {turn.index + 1})",
                    turn.index,
                )
                findings += [finding] if finding else []
                notes[Modality.TEXTUAL] += [note] if note else []

    def _image_texts(self, turns: Sequence[Turn]) -> list[str]:
        """The text read in each turn's images (one string per turn), the images perceived in the pool."""
        pool = self._executor()
        return [
            " ".join(
                _read_text(ev)
                for ev in pool.map(
                    self._perceive, turn.images, [OCR_BUDGET // max(1, len(turn.images))] * len(turn.images)
                )
                if not isinstance(ev, BaseException)
            )
            for turn in turns
        ]

    def _scores(self, texts: Sequence[str]) -> list[Any]:
        scores = self.risk.score_many(list(texts))
        if self.policy.harm_threshold is not None:
            scores = [
                s.model_copy(update={"flagged": s.p_harmful >= self.policy.harm_threshold}) for s in scores
            ]
        return list(scores)

    def _analyse_turn(
        self, prompt: str, images: Sequence[ImageData]
    ) -> tuple[list[Finding], dict[Modality, list[str]], str]:
        """The findings and notes for one turn (``prompt`` with ``images``), and the wording mode."""
        # Only images go to the worker pool: a text-only request never waits behind another
        # request's images. The prompt is read for injection here while the images are perceived.
        # The OCR budget is per request: the images of the turn share it.
        share = OCR_BUDGET // max(1, len(images))
        jobs = [self._executor().submit(self._perceive, img, share) for img in images]
        prompt_injection = self.injection.score(prompt)
        evidences = [job.result() for job in jobs]
        labels = [f"image {i + 1}" if len(images) > 1 else "the image" for i in range(len(images))]
        texts = {
            i: _read_text(ev)
            for i, ev in enumerate(evidences)
            if not isinstance(ev, BaseException) and ev.ocr_text.strip()
        }
        injections = {i: self.injection.score(text) for i, text in texts.items()}

        # One pass of the risk model over the prompt, each image's text, and the compositions.
        readings = [TextReading(where="the prompt", text=prompt, score=None)]
        readings += [
            TextReading(where=f"{labels[i]}'s text", text=t, score=None, image=i) for i, t in texts.items()
        ]
        readings += self._compositions(prompt, evidences, texts, labels)
        scores = self._scores([r.text for r in readings])
        readings = [r.model_copy(update={"score": s}) for r, s in zip(readings, scores, strict=True)]
        prompt_reading = readings[0]
        image_readings = {r.image: r for r in readings[1:] if r.composed is None}
        composed = [r for r in readings if r.composed is not None]

        findings: list[Finding] = []
        notes: dict[Modality, list[str]] = {m: [] for m in Modality}
        findings += self._textual(prompt_reading, notes)
        finding, note = injection_finding(prompt_injection, prompt, Modality.TEXTUAL, "the prompt", None)
        findings += [finding] if finding else []
        notes[Modality.TEXTUAL] += [note] if note else []
        for i, ev in enumerate(evidences):
            findings += self._visual(i, ev, labels[i], image_readings.get(i), injections.get(i), notes)
        cross = [] if prompt_reading.score.flagged else self._cross_modal(composed, labels)
        findings += cross
        mode = (
            "acts_on_image"
            if any(f.source == "risk-model:image-text" for f in cross)
            else ("with_image" if images else "text_only")
        )
        return findings, notes, mode

    def _compositions(
        self, prompt: str, evidences: Sequence[Any], texts: dict[int, str], labels: Sequence[str]
    ) -> list[TextReading]:
        """The prompt composed with each image's text and with its strongest risk concepts."""
        out: list[TextReading] = []
        for i, ev in enumerate(evidences):
            if isinstance(ev, BaseException):
                continue
            if i in texts:
                where = f"the prompt read with {labels[i]}'s text"
                text = compose(prompt, image_text=texts[i])
                out.append(TextReading(where=where, text=text, score=None, image=i, composed="text"))
            for concept in sorted(ev.risk_concepts, key=lambda c: -c.score)[: self.policy.max_concepts]:
                where = f"the prompt read with what {labels[i]} shows ({concept.concept})"
                text = compose(prompt, concept=concept.concept.replace("_", " "))
                out.append(TextReading(where=where, text=text, score=None, image=i, composed="concept"))
        return out

    def _textual(self, reading: TextReading, notes: dict[Modality, list[str]]) -> list[Finding]:
        if reading.score.flagged:
            return risk_findings(reading, Modality.TEXTUAL, self.policy)
        cue = self.policy.critical_cue(reading.text)
        if cue is not None:
            notes[Modality.TEXTUAL].append(
                f"the prompt mentions {cue.name}, but the risk model does not read it as a request for harm "
                f"(risk {reading.score.p_harmful:.2f}); not counted"
            )
        return []

    def _visual(
        self,
        i: int,
        ev: Any,
        label: str,
        reading: TextReading | None,
        injection: Any,
        notes: dict[Modality, list[str]],
    ) -> list[Finding]:
        if isinstance(ev, BaseException):
            return [
                Finding(
                    modality=Modality.VISUAL,
                    severity=Severity.MEDIUM,
                    source="perception",
                    evidence=f"{label} could not be analysed ({type(ev).__name__}); treated with caution",
                )
            ]
        for component, message in sorted(ev.errors.items()):
            notes[Modality.VISUAL].append(f"{label}: {component} failed ({snippet(message, 60)})")
        findings = concept_findings(ev, label, self.policy, None)
        if ev.ocr_unread:
            findings.append(
                Finding(
                    modality=Modality.VISUAL,
                    severity=self.policy.unread_text_severity,
                    source="perception",
                    evidence=f"{label} holds more text than the guard reads ({ev.ocr_unread} text boxes "
                    "left unread); treated with caution",
                )
            )
        if reading is not None and reading.score.flagged:
            for found in risk_findings(reading, Modality.VISUAL, self.policy):
                # a harmful request written in an image: the policy says how much it counts when the
                # composition with the prompt does not read as harmful (acting on it is cross-modal)
                cap = self.policy.image_text_severity
                severity = found.severity if found.severity.rank <= cap.rank else cap
                findings.append(found.model_copy(update={"severity": severity}))
        if injection is not None:
            finding, note = injection_finding(
                injection, ev.ocr_text, Modality.VISUAL, f"{label}'s text", None
            )
            findings += [finding] if finding else []
            notes[Modality.VISUAL] += [note] if note else []
        return findings

    def _cross_modal(self, composed: list[TextReading], labels: Sequence[str]) -> list[Finding]:
        findings: list[Finding] = []
        for reading in composed:
            if not reading.score.flagged or reading.image is None:
                continue
            text = reading.composed == "text"
            prefix = f"the prompt leaves its {'request' if text else 'object'} to {labels[reading.image]}: "
            for finding in risk_findings(reading, Modality.CROSS_MODAL, self.policy, prefix=prefix):
                source = "risk-model:image-text" if text else "risk-model:concept"
                findings.append(finding.model_copy(update={"source": source}))
        return findings

    # -------------------------------------------------------------------------------- wording

    def reframe(self, prompt: str, report: RiskReport, mode: str, *, n_images: int) -> str:
        """The reframed prompt: the request, the specific evidence, and how to answer safely."""
        return reframe_prompt(prompt, report, mode, n_images=n_images)


__all__ = ["EvidenceRewriter"]
