"""The evidence rewriter's policy, as typed data (``rewriter/data/policy.yaml``).

The policy says what the guard does with the signals it reads: the severity of each category, which
visual concepts change a prompt on their own, the risk model's operating point and the critical cues
(weapons of mass harm, sexual content involving minors) that turn a harmful request into a refusal.
Signals stay in :mod:`vlmguard.perception`; wording in :mod:`vlmguard.rewriter.evidence_prompts`.
"""

from __future__ import annotations

import re
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlmguard.errors import ConfigError
from vlmguard.types import Severity


class CriticalCue(BaseModel):
    """A lexical cue for a request that has no safe reading once the risk model reads it as harmful."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    category: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid pattern: {exc}") from None
        return value

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)


class Policy(BaseModel):
    """How the evidence rewriter turns findings into a decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    severity: dict[str, Severity] = Field(default_factory=dict)
    """Severity of a finding per category name."""
    default_severity: Severity = Severity.MEDIUM
    reframe_visual_categories: frozenset[str] = frozenset()
    """Visual concepts of these categories reframe the prompt even when the text is benign."""
    harm_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """The risk model's operating point; ``None`` keeps the one stored with the model."""
    category_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    max_concepts: int = Field(default=3, ge=0)
    image_text_severity: Severity = Severity.MEDIUM
    """Highest severity of a harmful request written in an image when the prompt read with it does not
    read as harmful: ``medium`` reframes (the prompt may hand the request to the image in words the
    model does not recognise), ``low`` keeps it as context."""
    unread_text_severity: Severity = Severity.MEDIUM
    """Severity of an image holding more text than OCR reads within its budget (the text left unread
    could carry a request): ``medium`` reframes, ``low`` keeps it as context."""
    critical_cues: tuple[CriticalCue, ...] = ()

    def severity_of(self, category: str | None) -> Severity:
        """The policy's severity for ``category`` (the default for unknown or missing categories)."""
        if category is None:
            return self.default_severity
        return self.severity.get(category, self.default_severity)

    def critical_cue(self, text: str) -> CriticalCue | None:
        """The first critical cue that matches ``text``, if any."""
        flat = " ".join(text.split())
        return next((cue for cue in self.critical_cues if cue.regex.search(flat)), None)


def _parse(text: str, where: str) -> Policy:
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a policy is a mapping")
    try:
        return Policy(**raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid policy: {exc}") from None


@cache
def default_policy() -> Policy:
    """The packaged policy."""
    text = resources.files("vlmguard.rewriter").joinpath("data", "policy.yaml").read_text(encoding="utf-8")
    return _parse(text, "policy.yaml")


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in ``path`` (YAML), or the packaged one."""
    if path is None:
        return default_policy()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"policy file not found: {p}")
    return _parse(p.read_text(encoding="utf-8"), str(p))


__all__ = ["CriticalCue", "Policy", "default_policy", "load_policy"]
