"""What the text risk tagger reports: the categories it scores, the cues that fired, and each text's
scores, levels and evidence (:class:`TextRisk`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.perception.text_request import RequestStructure
from vlmguard.taxonomy import RiskCategory

TAGGED_CATEGORIES: tuple[RiskCategory, ...] = tuple(
    c for c in RiskCategory if c not in (RiskCategory.PROMPT_INJECTION, RiskCategory.OTHER)
)
"""The categories the tagger scores (prompt injection has its own detector)."""


class TextCue(BaseModel):
    """A lexical cue that fired."""

    model_config = ConfigDict(frozen=True)
    category: RiskCategory
    name: str
    match: str
    weight: float
    critical: bool = False
    lang: str = "en"


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
