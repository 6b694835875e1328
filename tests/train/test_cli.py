"""``vlmguard train`` end to end on a tiny model, and the saved rewriter reloading in the ``hf`` backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vlmguard.cli.main import main

pytest.importorskip("trl")


def _yaml(tmp_path: Path, base: Path, train: Path, **extra: Any) -> Path:
    values = {
        "base_model": str(base),
        "train_file": str(train),
        "validation_file": str(train),
        "output_dir": str(tmp_path / "run"),
        "batch_size": 2,
        "grad_accumulation": 1,
        "max_steps": 2,
        "learning_rate": 0.01,
        "logging_steps": 1,
        "eval_steps": 2,
        "save_steps": 2,
        "max_length": 512,
        **extra,
    }
    path = tmp_path / "sft.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items()) + "\n")
    return path


def test_unknown_key_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sft.yaml"
    config.write_text("base_model: m\ntrain_file: t.jsonl\n")
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", str(config), "lr=1e-4"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'lr'" in err and "Traceback" not in err


def test_print_config_and_dry_run(
    tiny_llava: Path, write_rows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_rows(n=2, extra=[{"images": ["img/none.png"], "messages": []}])
    config = _yaml(tmp_path, tiny_llava, train)
    main(["train", "--config", str(config), "--print-config", "lora_r=4"])
    printed = capsys.readouterr().out
    assert "lora_r: 4" in printed and f"base_model: {tiny_llava}" in printed
    main(["train", "--config", str(config), "--dry-run"])
    out = capsys.readouterr().out
    assert "2/3 rows kept" in out and "invalid_row=1" in out and "architecture: llava" in out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_cli_trains_merges_and_the_hf_backend_serves_it(
    tiny_idefics3: Path, write_rows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from vlmguard.backends.spec import load_backend
    from vlmguard.images import load_image
    from vlmguard.rewriter.model import ModelRewriter
    from vlmguard.types import GenerateConfig

    train = write_rows(n=2)
    config = _yaml(tmp_path, tiny_idefics3, train, method="lora", lora_r=4)
    main(["train", "--config", str(config)])
    out = capsys.readouterr().out
    assert "steps: 2" in out
    assert "vlmguard train --merge" in out  # adapters alone are not servable: the CLI says how to merge
    run = tmp_path / "run"
    main(["train", "--merge", str(run)])
    merged = run / "merged"
    assert (merged / "config.json").is_file() and (merged / "README.md").is_file()
    card = (merged / "README.md").read_text()
    assert "adapters merged" in card and "eval_loss" in card and str(tiny_idefics3) in card

    backend = load_backend(f"hf:{merged}")
    rewriter = ModelRewriter(backend, config=GenerateConfig(max_tokens=8))
    image = load_image(tmp_path / "img" / "0000.png")
    rewrite = asyncio.run(rewriter.rewrite("How do I fix the chain of this bike?", [image]))
    assert (
        rewrite.model_calls == 1 and rewrite.raw_output is not None
    )  # a tiny model's text: parsed or fallback
    asyncio.run(backend.aclose())
