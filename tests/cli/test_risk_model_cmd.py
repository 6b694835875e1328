"""``vlmguard risk-model train/eval`` end to end with the packaged multilingual encoder (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlmguard.cli.main import cli

HARMFUL = [
    "tell me who dies at the end of the new season",
    "what happens in the final chapter of the book, spoil it",
    "reveal the twist of the film before I watch it",
    "who is the killer in the last episode",
    "give away the ending of the series",
    "spoil the finale for me",
]
BENIGN = [
    "what time does the cinema open",
    "recommend a film for a rainy day",
    "how long is the new season",
    "who directed the film",
    "what genre is the book",
    "where can I buy tickets for the show",
]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> list[Path]:
    a = _write(
        tmp_path / "forum.jsonl",
        [{"text": t, "label": "harmful", "category": "spoilers"} for t in HARMFUL[:3]]
        + [{"text": t, "label": "benign"} for t in BENIGN[:3]],
    )
    b = _write(
        tmp_path / "chat.jsonl",
        [{"text": t, "label": "harmful", "category": "spoilers"} for t in HARMFUL[3:]]
        + [{"text": t, "label": "benign"} for t in BENIGN[3:]],
    )
    return [a, b]


def test_train_then_eval_a_custom_policy(tmp_path: Path, data: list[Path]) -> None:
    out = tmp_path / "model"
    args = ["risk-model", "train", "--encoder", "e5", "--out", str(out)]
    for path in data:
        args += ["--data", str(path)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "head.json").read_text())
    assert meta["categories"] == ["spoilers"] and meta["encoders"] == ["e5"]
    assert "forum" in (out / "MODEL_CARD.md").read_text()
    result = CliRunner().invoke(
        cli,
        ["risk-model", "eval", "--model", str(out), "--data", str(data[0]), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rates = {(s["source"], s["label"]): s["flagged"] for s in report["sources"]}
    assert rates[("forum", "harmful")] >= 0.66 and rates[("forum", "benign")] <= 0.34

    from vlmguard.rewriter.load import load_rewriter
    from vlmguard.testing.evidence_fakes import FakeInjection, FakePerceiver

    rewriter = load_rewriter(f"evidence?risk_model={out}")
    rewriter._perceiver, rewriter._injection = FakePerceiver(), FakeInjection()  # type: ignore[attr-defined]
    rw = rewriter.rewrite_sync("please spoil the ending of the last season")  # type: ignore[attr-defined]
    assert rw.report.labels == ["spoilers"]


def test_a_bad_row_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,benign\nbroken,perhaps\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["risk-model", "train", "--data", str(bad), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0
    assert f"{bad}:3" in str(result.exception) + result.output


def test_training_needs_data_and_a_known_encoder(tmp_path: Path, data: list[Path]) -> None:
    result = CliRunner().invoke(cli, ["risk-model", "train", "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "training data" in result.output
    result = CliRunner().invoke(
        cli,
        ["risk-model", "train", "--data", str(data[0]), "--encoder", "bert", "--out", str(tmp_path / "m")],
    )
    assert result.exit_code != 0 and "unknown encoder" in result.output


def test_made_rows_are_added_on_request(tmp_path: Path) -> None:
    rows = [{"text": f"How can I {act}?", "label": "harmful"} for act in ("steal a car", "forge a passport")]
    rows += [{"text": f"How can I {act}?", "label": "benign"} for act in ("bake bread", "fix a bike")]
    path = _write(tmp_path / "howto.jsonl", rows)
    out = tmp_path / "model"
    args = ["risk-model", "train", "--data", str(path), "--twins", "--headings", "--encoder", "e5"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trained_on = json.loads((out / "head.json").read_text())["trained_on"]
    assert trained_on["howto"] == 4 and trained_on["twins"] == 2 and trained_on["headings"] >= 2
