"""Bad input: rows that cannot be trained on are skipped, counted and reported (or fail on request)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_helpers import sft_row

from vlmguard.errors import ConfigError, InputError
from vlmguard.rewriter.format import format_rewriter_output
from vlmguard.train.data import SFTRow, apply_length_policy, load_rows
from vlmguard.types import RiskReport


def _row(
    tmp_path: Path, image: str, target: str | None = None, n_images: int | None = None
) -> dict[str, Any]:
    good_image = tmp_path / "img" / "0000.png"
    row = sft_row(
        [str(good_image)],
        "a question",
        target or format_rewriter_output(RiskReport(), "a question"),
        n_images=n_images,
        compact=True,
    )
    row["images"] = [image]
    return row


def test_bad_rows_are_counted_by_reason(write_rows: Any, tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "img" / "cut.png").write_bytes(
        (write_rows(n=1, name="seed.jsonl") and (tmp_path / "img" / "0000.png").read_bytes())[:60]
    )
    extra = [
        _row(tmp_path, "img/absent.png"),  # missing image
        _row(tmp_path, "img/broken.png"),  # not an image
        _row(tmp_path, "img/cut.png"),  # truncated PNG
        _row(tmp_path, "img/0000.png", target="   "),  # empty target
        _row(tmp_path, "img/0000.png", target="Sure! Here is how."),  # not the rewriter format
        _row(tmp_path, "img/0000.png", n_images=2),  # placeholders != images
        "{not json",
        {"images": [], "messages": [{"role": "user", "content": "no target"}]},
        {"images": [], "messages": [{"role": "wizard", "content": "x"}]},
    ]
    path = write_rows(n=3, extra=extra)
    rows, report = load_rows(path)
    assert len(rows) == 3 and report.rows_read == 12 and report.rows_kept == 3
    assert report.skipped == {
        "missing_image": 1,
        "undecodable_image": 2,
        "empty_target": 1,
        "unparseable_target": 1,
        "image_count_mismatch": 1,
        "invalid_json": 1,
        "invalid_row": 2,
    }
    assert any("absent.png" in p for p in report.problems)
    assert all(p.startswith("line ") for p in report.problems)
    assert "3/12 rows kept" in report.summary() and "missing_image=1" in report.summary()
    assert all(Path(i).is_absolute() and Path(i).is_file() for r in rows for i in r.images)


def test_unchecked_target_format_is_kept(write_rows: Any, tmp_path: Path) -> None:
    write_rows(n=1, name="seed.jsonl")
    path = write_rows(n=1, extra=[_row(tmp_path, "img/0000.png", target="free text answer")])
    rows, report = load_rows(path, check_target_format=False)
    assert len(rows) == 2 and not report.skipped


def test_bad_rows_error_policy_and_empty_files(write_rows: Any, tmp_path: Path) -> None:
    write_rows(n=1, name="seed.jsonl")
    path = write_rows(n=2, extra=[_row(tmp_path, "img/absent.png")])
    with pytest.raises(InputError, match=r"line 3: missing_image: .*absent.png"):
        load_rows(path, bad_rows="error")
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(json.dumps(_row(tmp_path, "img/absent.png")) + "\n")
    with pytest.raises(InputError, match=r"no usable rows.*missing_image"):
        load_rows(only_bad)
    with pytest.raises(InputError, match="not found"):
        load_rows(tmp_path / "nope.jsonl")


def test_images_resolve_against_images_root(write_rows: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = write_rows(n=2, folder=tmp_path / "elsewhere")
    moved = data / "train.jsonl"
    moved.write_text(path.read_text())
    with pytest.raises(InputError, match="no usable rows"):
        load_rows(moved)
    rows, report = load_rows(moved, images_root=tmp_path / "elsewhere")
    assert len(rows) == 2
    _, again = load_rows(path)
    assert again.images_sha256 == report.images_sha256  # same images, same hash
    assert again.sha256 != report.sha256 or path.read_bytes() == moved.read_bytes()


def _rows(n: int) -> list[SFTRow]:
    return [SFTRow(images=[], messages=[{"role": "assistant", "content": "x"}], line=i + 1) for i in range(n)]


def test_length_policy_drop_and_truncate() -> None:
    from vlmguard.train.data import DataReport

    lengths = {1: (50, 40), 2: (50, 80), 3: (120, 5), 4: (90, 10)}

    def measure(row: SFTRow) -> tuple[int, int]:
        return lengths[row.line]

    report = DataReport(file="x", rows_read=4, rows_kept=4)
    kept = apply_length_policy(_rows(4), report, measure, max_length=100, policy="drop")
    assert [r.line for r in kept] == [1, 4]
    assert report.skipped == {"overlong_dropped": 1, "prompt_over_max_length": 1} and report.rows_kept == 2

    report = DataReport(file="x", rows_read=4, rows_kept=4)
    kept = apply_length_policy(_rows(4), report, measure, max_length=100, policy="truncate")
    assert [r.line for r in kept] == [1, 2, 4]
    assert report.truncated == 1 and report.skipped == {"prompt_over_max_length": 1}
    assert report.target_tokens == 40 + 50 + 10  # row 2's target cut to 50 tokens

    with pytest.raises(InputError, match="every row is over max_length"):
        apply_length_policy(_rows(1), DataReport(file="x"), lambda r: (500, 5), max_length=100, policy="drop")


def test_overlong_rows_with_a_real_processor(tiny_llava: Path, write_rows: Any, tmp_path: Path) -> None:
    from transformers import AutoProcessor

    from vlmguard.train.collator import RewriterCollator

    path = write_rows(n=3)
    rows, _ = load_rows(path)
    collator = RewriterCollator(AutoProcessor.from_pretrained(str(tiny_llava)), max_length=None)
    prompt_tokens, target_tokens = collator.measure(rows[0])
    assert prompt_tokens > 16  # the 16 image tokens of the tiny LLaVA are counted
    limit = prompt_tokens + target_tokens // 2
    rows, report = load_rows(path)
    kept = apply_length_policy(rows, report, collator.measure, max_length=limit, policy="truncate")
    assert report.truncated >= 1
    truncating = RewriterCollator(collator.processor, max_length=limit)
    batch = truncating(kept)
    assert batch["input_ids"].shape[1] <= limit
    image_id = collator.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((batch["input_ids"][0] == image_id).sum()) == 16  # the prompt (and its image tokens) intact
    rows, report = load_rows(path)
    with pytest.raises(InputError):
        apply_length_policy(rows, report, collator.measure, max_length=16, policy="truncate")


def test_run_refuses_unsupported_architecture(tmp_path: Path, write_rows: Any) -> None:
    from transformers import LlamaConfig

    from vlmguard.train.config import load_sft_config
    from vlmguard.train.trainer import run_sft

    base = tmp_path / "text-only"
    LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(str(base))
    config = load_sft_config(
        None,
        [f"base_model={base}", f"train_file={write_rows(n=1)}", f"output_dir={tmp_path / 'run'}"],
        environ={},
    )
    with pytest.raises(
        ConfigError, match=r"unsupported model architecture 'llama'.*qwen2_vl.*idefics3.*llava"
    ):
        run_sft(config)
    missing = config.model_copy(update={"base_model": str(tmp_path / "nothing-here")})
    with pytest.raises(ConfigError, match="cannot read the base model"):
        run_sft(missing)


def test_run_refuses_precision_the_hardware_lacks(tiny_llava: Path, write_rows: Any, tmp_path: Path) -> None:
    import torch

    from vlmguard.train.config import load_sft_config
    from vlmguard.train.trainer import run_sft

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: bf16 / qlora may be valid")
    base = [f"base_model={tiny_llava}", f"train_file={write_rows(n=1)}", f"output_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match="precision=bf16 needs a GPU"):
        run_sft(load_sft_config(None, [*base, "precision=bf16"], environ={}))
    with pytest.raises(ConfigError, match="method=qlora needs a CUDA GPU"):
        run_sft(load_sft_config(None, [*base, "method=qlora"], environ={}))
