"""The text tagger's packaged data: exemplars, lexical cues and calibration."""

from __future__ import annotations

import pytest
from text_risk_fakes import BagOfWordsEncoder

from vlmguard.errors import ConfigError
from vlmguard.perception.text_risk import TextRiskTagger
from vlmguard.perception.text_risk_data import load_calibration, load_cue_specs, load_exemplars
from vlmguard.perception.text_risk_types import TAGGED_CATEGORIES
from vlmguard.taxonomy import RiskCategory


def test_exemplars_cover_every_tagged_category_with_dozens_of_distinct_sentences() -> None:
    ex = load_exemplars()
    assert set(ex.categories) == set(TAGGED_CATEGORIES)
    for category, items in ex.categories.items():
        assert len(items) >= 24, category
        assert len(set(items)) == len(items), f"duplicates in {category}"
    assert len(ex.benign) >= 100
    risky = {s for items in ex.categories.values() for s in items}
    assert not risky & set(ex.benign)


def test_cues_compile_and_cover_other_languages() -> None:
    specs = load_cue_specs()
    assert {s.lang for s in specs} >= {"en", "es", "fr", "de", "pt", "zh", "ru", "multi"}
    assert any(s.critical and s.category == RiskCategory.SEXUAL_CONTENT for s in specs)
    assert any(s.critical and s.category == RiskCategory.VIOLENCE_WEAPONS for s in specs)
    TextRiskTagger(encoder=BagOfWordsEncoder())  # compiles every pattern


def test_packaged_calibration_is_ordered_and_says_where_it_was_tuned() -> None:
    cal = load_calibration()
    assert cal.suspect_threshold <= cal.flag_threshold
    assert "tune half" in cal.tuned_on
    assert cal.metrics, "the calibration records its tuning figures"


def test_calibration_file_errors_are_named(tmp_path) -> None:
    with pytest.raises(ConfigError):
        load_calibration(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("flag_threshold: [1\n")
    with pytest.raises(ConfigError):
        load_calibration(bad)
