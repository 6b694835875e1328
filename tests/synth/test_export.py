"""Export: rows in TRL's VLM format matching the model rewriter, image-disjoint split, mix, card, collator."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from synth_testkit import write_rules, write_seed_file

from vlmguard.backends.chat_format import chat_template_messages
from vlmguard.backends.mock import MockVLM
from vlmguard.errors import ConfigError
from vlmguard.rewriter.format import parse_rewriter_output
from vlmguard.rewriter.model import ModelRewriter
from vlmguard.synth.config import SynthConfig
from vlmguard.synth.export import ExportConfig, export_run, select_mix, split_by_image
from vlmguard.synth.pipeline import run_synthesis
from vlmguard.types import Decision, ImageData


async def _run(tmp_path: Path, n: int, **seed_kw: object) -> Path:
    seeds = write_seed_file(tmp_path / "data", n, **seed_kw)  # type: ignore[arg-type]
    rules = write_rules(tmp_path / "rules.json")
    config = SynthConfig(
        out=str(tmp_path / "run"), seeds=[f"jsonl:{seeds}"], teacher=[f"mock:rules={rules}"], concurrency=8
    )
    summary = await run_synthesis(config, progress=False)
    assert summary.done == n
    return tmp_path / "run"


def _rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(x) for x in path.read_text().splitlines() if x]


async def test_rows_are_what_the_model_rewriter_sends_and_parses(tmp_path: Path) -> None:
    run = await _run(tmp_path, 16, shared_image_every=3)
    card = export_run(run, ExportConfig(out=str(tmp_path / "sft"), val_fraction=0.3))
    rows = _rows(tmp_path / "sft" / "train.jsonl") + _rows(tmp_path / "sft" / "validation.jsonl")
    assert len(rows) == card.rows["total"] == 16
    assert card.rows["validation"] > 0 and card.rows["train"] > 0
    rewriter = ModelRewriter(MockVLM.echo())
    seeds = {json.loads(x)["id"]: json.loads(x) for x in (run / "seeds.jsonl").read_text().splitlines()}
    for row in rows:
        assert set(row) == {"images", "messages", "id", "kind", "category", "decision"}
        image_path = tmp_path / "sft" / row["images"][0]
        assert image_path.is_file()
        from vlmguard.images import load_image

        image: ImageData = load_image(image_path)
        expected = chat_template_messages(rewriter.build_messages(seeds[row["id"]]["prompt"], [image]))
        assert row["messages"][:-1] == expected
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][1]["content"][0] == {"type": "image"}
        report, prompt = parse_rewriter_output(row["messages"][-1]["content"][0]["text"])
        assert report.decision.value == row["decision"]
        if report.decision == Decision.FORWARD:
            assert prompt == seeds[row["id"]]["prompt"]  # benign rows teach the identity rewrite
        else:
            assert prompt.startswith("Explain, at a general level")
    train_images = {i for r in _rows(tmp_path / "sft" / "train.jsonl") for i in r["images"]}
    val_images = {i for r in _rows(tmp_path / "sft" / "validation.jsonl") for i in r["images"]}
    assert not train_images & val_images
    card_json = json.loads((tmp_path / "sft" / "dataset_card.json").read_text())
    assert card_json["templates"] == ["synth-causal.v1", "synth-hindsight.v1", "synth-optimize.v1"]
    assert card_json["rewriter_template"] == "rewriter.v1" and card_json["teachers"] == ["mock-rules"]
    assert set(card_json["hashes"]) >= {
        "train.jsonl",
        "validation.jsonl",
        "seeds.jsonl",
        "records.jsonl",
        "images",
    }
    readme = (tmp_path / "sft" / "README.md").read_text()
    assert "split by image hash" in readme and card_json["hashes"]["train.jsonl"] in readme
    # exporting again gives the same files
    export_run(run, ExportConfig(out=str(tmp_path / "sft2"), val_fraction=0.3))
    assert (tmp_path / "sft2" / "train.jsonl").read_bytes() == (tmp_path / "sft" / "train.jsonl").read_bytes()


async def test_mix_follows_the_ratio(tmp_path: Path) -> None:
    run = await _run(tmp_path, 20, benign_every=2)  # 10 safety, 10 helpfulness
    card = export_run(run, ExportConfig(out=str(tmp_path / "a"), mix="4:1", val_fraction=0.0))
    assert card.kinds["train"] == {"unsafe": 10, "safe": 2} or card.kinds["train"] == {
        "safe": 2,
        "unsafe": 10,
    }
    card = export_run(run, ExportConfig(out=str(tmp_path / "b"), mix="1:1", max_rows=6, val_fraction=0.0))
    assert card.rows["total"] == 6 and card.kinds["train"] == {"safe": 3, "unsafe": 3}
    with pytest.raises(ConfigError):
        ExportConfig(out="x", mix="lots")


def test_select_mix_and_split_helpers() -> None:
    s, h = select_mix(list(range(8904 * 2)), list(range(977)), "8904:977", None, random.Random(0))
    assert (len(s), len(h)) == (8904, 977)
    rows = [{"id": str(i)} for i in range(6)]
    hashes = [["a"], ["b"], ["a", "c"], ["c"], ["d"], []]  # a-c linked transitively
    for seed in range(20):
        split = split_by_image(rows, hashes, 0.5, seed)
        assert split[0] == split[2] == split[3]


async def test_rows_load_in_trl_collator_for_a_tiny_vlm(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from vlmguard.testing.tiny import tiny_vlm_path

    run = await _run(tmp_path, 4)
    export_run(run, ExportConfig(out=str(tmp_path / "sft"), val_fraction=0.0))
    rows = _rows(tmp_path / "sft" / "train.jsonl")
    processor = AutoProcessor.from_pretrained(tiny_vlm_path("idefics3"))
    from PIL import Image

    examples = [
        {**row, "images": [Image.open(tmp_path / "sft" / p).convert("RGB") for p in row["images"]]}
        for row in rows[:2]
    ]
    batch = DataCollatorForVisionLanguageModeling(processor)(examples)
    assert batch["input_ids"].shape[0] == 2 and "pixel_values" in batch
    assert (batch["labels"] != -100).any()
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert "<rewritten_prompt>" in text and "safety rewriter" in text
