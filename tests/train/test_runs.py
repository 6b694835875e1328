"""Training runs on tiny random VLMs: loss goes down, the right weights change, resume, reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlmguard.errors import ConfigError
from vlmguard.train.config import load_sft_config
from vlmguard.train.metrics import read_metrics
from vlmguard.train.trainer import run_sft

torch = pytest.importorskip("torch")
pytest.importorskip("trl")


def _config(base: Path, train: Path, out: Path, **overrides: Any) -> Any:
    values = {
        "base_model": str(base),
        "train_file": str(train),
        "validation_file": str(train),
        "output_dir": str(out),
        "batch_size": 2,
        "grad_accumulation": 1,
        "max_steps": 6,
        "learning_rate": 5e-3,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",
        "logging_steps": 1,
        "eval_steps": 100,
        "save_steps": 100,
        "max_length": 1024,
    }
    values.update(overrides)
    return load_sft_config(None, [f"{k}={'null' if v is None else v}" for k, v in values.items()], environ={})


def _state(path: Path | str) -> dict[str, Any]:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(path))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _eval_loss(model_dir: Path | str, train: Path) -> float:
    """Mean assistant-only loss of a model over the rows of ``train`` (one batch)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmguard.train.collator import RewriterCollator
    from vlmguard.train.data import load_rows

    rows, _ = load_rows(train)
    processor = AutoProcessor.from_pretrained(str(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir)).eval()
    batch = RewriterCollator(processor, max_length=1024)(rows)
    with torch.no_grad():
        return float(model(**batch).loss)


def _changed(before: dict[str, Any], after: dict[str, Any], prefix: str) -> tuple[int, int]:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, f"no parameter under {prefix}"
    changed = sum(1 for k in keys if not torch.equal(before[k], after[k]))
    return changed, len(keys)


@pytest.mark.parametrize("kind", ["idefics3", "llava"])
def test_full_finetune_lowers_loss_and_keeps_vision_tower(
    kind: str, write_rows: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = request.getfixturevalue(f"tiny_{kind}")
    train = write_rows(n=4)
    before_loss = _eval_loss(base, train)
    summary = run_sft(_config(base, train, tmp_path / "run", method="full", learning_rate=3e-3))
    assert summary.global_step == 6
    assert summary.eval_loss is not None and summary.eval_loss < before_loss - 0.5
    after_loss = _eval_loss(summary.model_dir, train)
    assert after_loss == pytest.approx(summary.eval_loss, rel=0.05)

    before, after = _state(base), _state(summary.model_dir)
    vision = "model.vision_model." if kind == "idefics3" else "model.vision_tower."
    language = "model.text_model." if kind == "idefics3" else "model.language_model."
    assert _changed(before, after, vision)[0] == 0  # frozen tower: bit-identical
    changed, total = _changed(before, after, language)
    assert changed > total // 2
    projector = "model.connector." if kind == "idefics3" else "model.multi_modal_projector."
    assert _changed(before, after, projector)[0] > 0

    # the saved folder loads in the hf backend with no extra glue and answers a rewriter request
    import asyncio

    from vlmguard.backends.spec import load_backend
    from vlmguard.images import load_image
    from vlmguard.rewriter.model import ModelRewriter
    from vlmguard.types import GenerateConfig

    async def ask() -> Any:
        backend = load_backend(f"hf:{summary.model_dir}")
        try:
            rewriter = ModelRewriter(backend, config=GenerateConfig(max_tokens=6))
            return await rewriter.rewrite("What is this?", [load_image(train.parent / "img" / "0000.png")])
        finally:
            await backend.aclose()

    rewrite = asyncio.run(ask())
    assert (
        rewrite.model_calls == 1 and rewrite.raw_output is not None
    )  # a tiny model's words: parsed or fallen back


def test_lora_trains_adapters_only_and_merges(tiny_idefics3: Path, write_rows: Any, tmp_path: Path) -> None:
    train = write_rows(n=4)
    before_loss = _eval_loss(tiny_idefics3, train)
    summary = run_sft(
        _config(
            tiny_idefics3,
            train,
            tmp_path / "run",
            method="lora",
            learning_rate=2e-2,
            lora_r=8,
            merge_adapters=True,
        )
    )
    assert summary.eval_loss is not None and summary.eval_loss < before_loss - 0.15
    assert 0 < summary.trainable_parameters < summary.total_parameters // 2
    model_dir = Path(summary.model_dir)
    assert (model_dir / "adapter_config.json").is_file()
    adapter_cfg = json.loads((model_dir / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8
    assert summary.merged_dir is not None

    before, merged = _state(tiny_idefics3), _state(summary.merged_dir)
    assert set(before) == set(merged)  # merged: plain weights, no lora_ keys
    assert _changed(before, merged, "model.vision_model.")[0] == 0
    q_keys = [k for k in before if k.startswith("model.text_model.") and k.endswith("q_proj.weight")]
    assert all(not torch.equal(before[k], merged[k]) for k in q_keys)
    norm_keys = [k for k in before if k.startswith("model.text_model.") and "norm" in k]
    assert all(torch.equal(before[k], merged[k]) for k in norm_keys)  # not adapted: unchanged
    assert _changed(before, merged, "model.connector.")[0] > 0  # projector trained (modules_to_save)
    assert _eval_loss(summary.merged_dir, train) == pytest.approx(summary.eval_loss, rel=0.05)
    card = (Path(summary.merged_dir) / "README.md").read_text()
    assert str(tiny_idefics3) in card and "eval_loss" in card and "train.jsonl" in card


def test_resume_continues_step_count(tiny_llava: Path, write_rows: Any, tmp_path: Path) -> None:
    train = write_rows(n=4)
    out = tmp_path / "run"
    first = run_sft(_config(tiny_llava, train, out, max_steps=3, save_steps=2, validation_file=None))
    assert first.global_step == 3 and (out / "checkpoint-2" / "trainer_state.json").is_file()
    with pytest.raises(ConfigError, match="resume=true"):
        run_sft(_config(tiny_llava, train, out, max_steps=4, save_steps=2, validation_file=None))
    # resume from checkpoint-2: step 3 runs again, so its first record is replaced, not duplicated
    second = run_sft(
        _config(
            tiny_llava,
            train,
            out,
            max_steps=4,
            save_steps=2,
            validation_file=None,
            resume=str(out / "checkpoint-2"),
        )
    )
    assert second.global_step == 4
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    steps = [r["step"] for r in read_metrics(out) if "loss" in r]
    assert steps == [1, 2, 3, 4]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # resume=true takes the latest checkpoint
    third = run_sft(
        _config(tiny_llava, train, out, max_steps=5, save_steps=2, validation_file=None, resume=True)
    )
    assert third.resumed_from is not None and third.resumed_from.endswith("checkpoint-4")
    assert third.global_step == 5


def test_run_folder_records_config_data_and_metrics(
    tiny_llava: Path, write_rows: Any, tmp_path: Path
) -> None:
    train = write_rows(n=3, extra=[{"images": [], "messages": [{"role": "user", "content": "x"}]}])
    out = tmp_path / "run"
    summary = run_sft(_config(tiny_llava, train, out, max_steps=2, eval_steps=1, method="lora"))
    from vlmguard.train.config import read_yaml

    recorded = read_yaml(out / "config.yaml")
    assert recorded["max_steps"] == 2 and recorded["method"] == "lora"
    data = json.loads((out / "data.json").read_text())
    assert data[0]["rows_read"] == 4 and data[0]["rows_kept"] == 3
    assert data[0]["skipped"] == {"invalid_row": 1}
    assert len(data[0]["sha256"]) == 64 and len(data[0]["images_sha256"]) == 64
    metrics = read_metrics(out)
    assert any("loss" in r for r in metrics) and any("eval_loss" in r for r in metrics)
    written = json.loads((out / "summary.json").read_text())
    assert written["global_step"] == summary.global_step == 2
    assert written["train_samples_per_second"] > 0
