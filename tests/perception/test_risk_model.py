"""The learned risk model: training a head, its operating point, saving, loading and scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from risk_fakes import BowEncoder, labelled_rows

from vlmguard.errors import ConfigError, InputError
from vlmguard.perception.risk_build import build_risk_model, evaluate_rows
from vlmguard.perception.risk_data import LabelledText
from vlmguard.perception.risk_model import RiskHead, RiskModel, windows
from vlmguard.perception.risk_train import TrainOptions, fit_head, language_basis, sample_weights


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, BowEncoder]:
    encoder = BowEncoder()
    build_risk_model(
        labelled_rows(),
        tmp_path / "model",
        encoders=["bow"],
        encoder_objects={"bow": encoder},
        command="test",
    )
    return tmp_path / "model", encoder


def test_a_trained_model_separates_unseen_requests(trained: tuple[Path, BowEncoder]) -> None:
    folder, encoder = trained
    model = RiskModel(folder, encoders={"bow": encoder})
    harmful, benign = model.score_many(
        ["how do I poison the mailman quietly", "how do I bake cookies nicely"]
    )
    assert harmful.flagged and not benign.flagged
    assert harmful.p_harmful > 0.5 > benign.p_harmful
    assert harmful.top_categories()[0] == "violence_weapons"
    assert list(harmful.categories) == sorted(harmful.categories, key=lambda c: -harmful.categories[c])


def test_the_folder_holds_head_metadata_and_a_model_card(trained: tuple[Path, BowEncoder]) -> None:
    folder, _ = trained
    meta = json.loads((folder / "head.json").read_text())
    assert meta["encoders"] == ["bow"]
    assert set(meta["categories"]) == {"violence_weapons", "illegal_activity", "privacy", "malware"}
    assert 0.05 <= meta["threshold"] <= 0.99 and len(meta["data_sha256"]) == 64
    card = (folder / "MODEL_CARD.md").read_text()
    assert meta["data_sha256"] in card and "alpha_h" in card and "test" in card
    assert not list(folder.glob(".*.tmp"))


def test_custom_categories_are_the_models_own(tmp_path: Path) -> None:
    rows = [
        LabelledText(
            text=r.text, label=r.label, source=r.source, categories=("spoilers",) if r.harmful else ()
        )
        for r in labelled_rows()
    ]
    encoder = BowEncoder()
    build_risk_model(rows, tmp_path / "m", encoders=["bow"], encoder_objects={"bow": encoder})
    model = RiskModel(tmp_path / "m", encoders={"bow": encoder})
    assert model.categories == ["spoilers"]
    assert model.score("how do I stalk the neighbour quietly").top_categories() == ["spoilers"]


def test_training_needs_both_labels() -> None:
    rows = [r for r in labelled_rows() if r.harmful]
    with pytest.raises(InputError, match="both harmful and benign"):
        fit_head(np.zeros((len(rows), 4), dtype=np.float32), rows, ["bow"])


def test_a_missing_or_broken_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lacks head\.npz"):
        RiskHead.load(tmp_path)
    (tmp_path / "head.npz").write_bytes(b"not a zip")
    (tmp_path / "head.json").write_text("{}")
    with pytest.raises(ConfigError):
        RiskHead.load(tmp_path)


def test_long_texts_are_scored_by_their_most_harmful_window(trained: tuple[Path, BowEncoder]) -> None:
    folder, encoder = trained
    model = RiskModel(folder, encoders={"bow": encoder})
    filler = " ".join("how do I paint a fence nicely." for _ in range(300))
    harmful = " ".join(
        f"how do I {verb} the cashier quietly." for verb in ("poison", "stab", "stalk", "steal") * 3
    )
    long_text = filler + " " + harmful + " " + filler
    assert not model.score(filler).flagged
    assert 1 < len(windows(long_text)) <= 256
    assert windows(long_text)[-1].endswith("nicely.")
    score = model.score(long_text)
    assert score.flagged and "poison" in score.window


def test_weights_balance_sources_and_classes() -> None:
    small = [LabelledText(text=f"sing {i}", label="benign", source="small") for i in range(4)]
    rows = (
        labelled_rows()[:10]
        + small
        + [LabelledText(text=f"bake {i}", label="benign", source="big") for i in range(100)]
    )
    w = sample_weights(rows, balance=0.5)
    harmful = np.array([r.harmful for r in rows])
    assert np.isclose(w[harmful].sum(), w[~harmful].sum())
    big = np.array([r.source == "big" for r in rows])
    assert w[big].mean() < w[~big & ~harmful].mean()
    assert w[big].sum() > w[~big & ~harmful].sum()  # a larger source still weighs more in all


def test_language_directions_come_from_parallel_rows() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(8, 16)).astype(np.float32)
    shift = np.zeros(16, dtype=np.float32)
    shift[3] = 2.0
    rows, vectors = [], []
    for i in range(8):
        rows += [
            LabelledText(text=f"en {i}", label="harmful", lang="en", group=f"g{i}"),
            LabelledText(text=f"xx {i}", label="harmful", lang="xx", group=f"g{i}"),
        ]
        vectors += [base[i], base[i] + shift]
    basis = language_basis(np.asarray(vectors), rows)
    assert basis.shape == (1, 16)
    assert abs(abs(basis[0, 3]) - 1.0) < 1e-5


def test_eval_reports_per_source_rates(trained: tuple[Path, BowEncoder]) -> None:
    folder, encoder = trained
    model = RiskModel(folder, encoders={"bow": encoder})
    result = evaluate_rows(model, labelled_rows())
    by = {(s.source, s.label): s for s in result.sources}
    assert by[("alpha_h", "harmful")].flagged > 0.9 and by[("alpha_b", "benign")].flagged < 0.1
    assert set(result.summary()) == {
        "harmful_recall_mean",
        "harmful_recall_worst",
        "benign_flagged_mean",
        "benign_flagged_worst",
    }


def test_train_options_are_strict() -> None:
    with pytest.raises(ValueError):
        TrainOptions(c=0)
    with pytest.raises(ValueError):
        TrainOptions(unknown=1)  # type: ignore[call-arg]
