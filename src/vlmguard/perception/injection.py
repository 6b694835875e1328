"""Prompt-injection detection on user prompts and on text found in images.

Two signals are combined: the NanoGuard classifier (``metatronnanoguard``, a 17M-parameter
transformer, torch + tiktoken) and lexical cues for the phrasings that attacks use verbatim
("ignore your rules", "ignore previous instructions", "forward this", "you are now", "system
prompt" ...). A lexical cue is reliable on the short, often OCR-noisy text of an image, where the
classifier is weaker; the classifier catches paraphrases that no pattern lists.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.errors import ConfigError

MODEL_THRESHOLD = 0.998
"""NanoGuard injection probability from which text counts as an injection.

NanoGuard scores many benign imperative requests high ("Write an article to advertise this."
0.997): at 0.9, 28 of MOSSBench's 300 benign questions would count as injections, at 0.998 two
(and none of MM-Vet's 218); the lexical cues cover the attacks it then misses (docs/perception.md)."""
LEXICAL_SCORE = 0.95
"""The score a lexical cue alone gives."""

_W = r"[\s\W_]*"  # separators between words, tolerant of OCR noise
_RULES = (
    r"(rules?|instructions?|guidelines?|polic(y|ies)|prompts?|directions?|restrictions?|filters?"
    r"|guardrails?)"
)
_IGNORE = r"(?<![a-z])([il1|!]gnore|disregard|forget|override|bypass)\b"  # OCR reads a capital I as l, 1 or |


def _cue(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.I)


_CUES: list[tuple[str, re.Pattern[str]]] = [
    # "ignore your rules", "disregard all previous instructions", "forget the system prompt"
    (
        "ignore instructions",
        _cue(
            _IGNORE + r"(\W+\w+){0,3}?\W+" + _RULES + r"\b",
            # "disregard the above", "ignore everything before this"
            _IGNORE + r"\W+(all\W+|everything\W+)?(the\W+)?"
            r"(above|previous|prior|preceding|earlier|before this)\b(?!-)",
        ),
    ),
    # "forward this", "pass this on unchanged", "let this through", "mark this as safe"
    (
        "forward this",
        _cue(
            r"\bforward" + _W + r"(this|it|the (request|prompt|message))\b",
            r"\b(pass|let|send)" + _W + r"(this|it)" + _W + r"(through|on|along)\b",
            r"\b(mark|classify|label|treat)"
            + _W
            + r"(this|it|the request)"
            + _W
            + r"as"
            + _W
            + r"(safe|benign|harmless|allowed)\b",
        ),
    ),
    (
        "role override",
        _cue(
            r"\byou are now\b",
            r"\bfrom now on,? you\b",
            r"\bact as (an? )?(unrestricted|unfiltered|uncensored|jailbroken|evil)\b",
            r"\bpretend (that )?you (are|have) no\b",
        ),
    ),
    (
        "system prompt",
        _cue(
            r"\b(system|developer|hidden|initial)" + _W + r"(prompt|message)\b",
            r"\b(reveal|print|show|repeat)" + _W + r"(your|the)" + _W + r"(instructions|prompt)\b",
        ),
    ),
    (
        "safety off",
        _cue(
            r"\b(do not|don't|never)" + _W + r"(refuse|flag|block|filter|censor)\b",
            r"\b(developer|god|dan|jailbreak)" + _W + r"mode\b",
            r"\bwithout (any )?(rules|restrictions|limits|filters|censorship)\b",
        ),
    ),
    (
        "guard address",
        _cue(
            r"\b(dear|attention|note to( the)?|to the)"
            + _W
            + r"(guard|filter|moderator|safety (system|model|checker)|classifier)\b"
        ),
    ),
]


class InjectionResult(BaseModel):
    """Whether a text tries to instruct the assistant or the guard."""

    score: float
    """0..1: the higher of the classifier's probability and the lexical cue score."""
    is_injection: bool
    source: str
    """What decided: ``nanoguard``, ``lexical``, ``nanoguard+lexical`` or ``none``."""
    cues: list[str] = Field(default_factory=list)
    """Names of the lexical cues found."""
    model_score: float | None = None
    """NanoGuard's injection probability (``None`` when the classifier is off)."""


def lexical_cues(text: str) -> list[str]:
    """Names of the injection cues found in ``text``."""
    flat = " ".join(text.split())
    return [name for name, pattern in _CUES if pattern.search(flat)]


class InjectionDetector:
    """Scores texts for prompt injection. Thread-safe; the classifier loads on first use.

    ``use_model=False`` keeps only the lexical cues (no torch needed); ``pad=True`` scores as the
    package's own ``scan`` does (every text padded to 512 tokens; slower).
    """

    def __init__(
        self,
        *,
        use_model: bool = True,
        threshold: float = MODEL_THRESHOLD,
        max_chars: int = 4000,
        pad: bool = False,
        report_model_on_image_text: bool = False,
    ) -> None:
        self.use_model = use_model
        self.threshold = threshold
        self.max_chars = max_chars
        self.pad = pad
        self.report_model_on_image_text = report_model_on_image_text
        self._guard: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the classifier now (otherwise on the first :meth:`score`)."""
        if not self.use_model or self._guard is not None:
            return
        with self._lock:
            if self._guard is not None:
                return
            try:
                from nanoguard import NanoGuard
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ConfigError(
                    "injection detection needs 'metatronnanoguard' (torch + tiktoken): "
                    "pip install 'vlmguard[perception]'"
                ) from exc
            self._guard = NanoGuard(device="cpu", threshold=self.threshold)

    def model_score(self, text: str) -> float:
        """NanoGuard's injection probability of ``text``.

        By default the text is scored at its own length (``pad=False``), which is 5-10x faster on
        short texts than the package's ``scan`` (it pads every text to 512 tokens). The scores
        differ slightly from the padded ones; :data:`MODEL_THRESHOLD` is calibrated for this mode.
        """
        self.load()
        guard = self._guard
        text = text[: self.max_chars]
        if self.pad:
            return float(guard.scan(text).injection_score)
        import torch

        ids = guard.tokenizer.encode(text, max_length=guard.config.sequence_len)
        with torch.inference_mode():
            logits = guard.model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool))
        return float(torch.softmax(logits.float(), dim=-1)[0, 1])

    def score(self, text: str, *, image_text: bool = False) -> InjectionResult:
        """Score ``text``; empty text is never an injection.

        Pass ``image_text=True`` for text read in an image (OCR): then only the lexical cues
        decide. NanoGuard is not used on OCR text because it is out of its training distribution
        there: on the bundled benign images it scored 34 of 107 MOSSBench and 23 of 92 MM-Vet
        OCR texts at or over the threshold ("POLICE POLICE": 1.0, a bread recipe: 1.0), while no
        lexical cue fired on any of them. The classifier's score is still reported as
        ``model_score`` when ``report_model_on_image_text`` is set.
        """
        if not text or not text.strip():
            return InjectionResult(score=0.0, is_injection=False, source="none")
        cues = lexical_cues(text)
        run_model = self.use_model and (not image_text or self.report_model_on_image_text)
        model = self.model_score(text) if run_model else None
        model_hit = model is not None and model >= self.threshold and not image_text
        score = (
            max(model or 0.0, LEXICAL_SCORE if cues else 0.0)
            if not image_text
            else (LEXICAL_SCORE if cues else 0.0)
        )
        if model_hit and cues:
            source = "nanoguard+lexical"
        elif model_hit:
            source = "nanoguard"
        elif cues:
            source = "lexical"
        else:
            source = "none"
        return InjectionResult(
            score=round(score, 4),
            is_injection=bool(model_hit or cues),
            source=source,
            cues=cues,
            model_score=None if model is None else round(model, 4),
        )

    def score_image_text(self, text: str) -> InjectionResult:
        """Score text read in an image (``score(text, image_text=True)``)."""
        return self.score(text, image_text=True)
