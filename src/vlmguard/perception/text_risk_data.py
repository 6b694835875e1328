"""The text risk tagger's packaged data, read on first use: exemplar sentences per category
(``data/text_exemplars.yaml``), lexical cues (``data/text_cues.yaml``) and calibrated parameters
(``data/text_risk_calibration.yaml``, written by ``benchmarks/calibrate_text_risk.py``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError
from vlmguard.perception.package_data import data_text, parse_yaml
from vlmguard.taxonomy import RiskCategory


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


@cache
def load_exemplars() -> Exemplars:
    """The packaged exemplars (``data/text_exemplars.yaml``)."""
    raw = parse_yaml(data_text("text_exemplars.yaml"), "text_exemplars.yaml")
    return Exemplars(categories=raw["categories"], benign=raw["benign"])


@cache
def load_cue_specs() -> tuple[CueSpec, ...]:
    """The packaged lexical cues (``data/text_cues.yaml``)."""
    raw = parse_yaml(data_text("text_cues.yaml"), "text_cues.yaml")
    return tuple(CueSpec(**item) for item in raw["cues"])


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibrated parameters: ``path`` when given, else the packaged file (defaults if absent)."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"calibration file not found: {p}")
        return Calibration(**(parse_yaml(p.read_text(encoding="utf-8"), str(p)) or {}))
    try:
        text = data_text("text_risk_calibration.yaml")
    except FileNotFoundError:
        return Calibration()
    return Calibration(**(parse_yaml(text, "text_risk_calibration.yaml") or {}))
