"""The SFT config: layered, strict, clear errors; shipped example configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmguard.configs import available_configs, config_path
from vlmguard.errors import ConfigError
from vlmguard.train.config import SFTConfig, load_sft_config, parse_overrides

REQUIRED = ["base_model=m", "train_file=t.jsonl"]


def test_layers_defaults_yaml_env_cli(tmp_path: Path) -> None:
    path = tmp_path / "sft.yaml"
    path.write_text(
        "base_model: from-yaml\ntrain_file: t.jsonl\nlora_r: 8\nlearning_rate: 1.0e-4\nepochs: 2\n"
    )
    env = {"VLMGUARD_TRAIN_LORA_R": "12", "VLMGUARD_TRAIN_EPOCHS": "3", "UNRELATED": "x"}
    config = load_sft_config(path, ["lora_r=32"], environ=env)
    assert config.base_model == "from-yaml"  # YAML over default (no default)
    assert config.learning_rate == 1e-4  # YAML
    assert config.epochs == 3  # environment over YAML
    assert config.lora_r == 32  # CLI over environment
    assert config.batch_size == SFTConfig.model_fields["batch_size"].default  # default kept


def test_override_values_are_typed() -> None:
    values = parse_overrides(
        [
            "max_steps=5",
            "freeze_vision_tower=false",
            "lora_target_modules=[q_proj, v_proj]",
            "validation_file=null",
            "output_dir=runs/a=b",
        ]
    )
    assert values == {
        "max_steps": 5,
        "freeze_vision_tower": False,
        "lora_target_modules": ["q_proj", "v_proj"],
        "validation_file": None,
        "output_dir": "runs/a=b",
    }


@pytest.mark.parametrize("where", ["cli", "yaml", "env"])
def test_unknown_key_is_named(where: str, tmp_path: Path) -> None:
    path = tmp_path / "sft.yaml"
    path.write_text("base_model: m\ntrain_file: t.jsonl\n" + ("lora_rank: 8\n" if where == "yaml" else ""))
    overrides = ["lora_rank=8"] if where == "cli" else []
    env = {"VLMGUARD_TRAIN_LORA_RANK": "8"} if where == "env" else {}
    with pytest.raises(ConfigError, match=r"unknown config key 'lora_rank'.*did you mean 'lora_r'"):
        load_sft_config(path, overrides, environ=env)


def test_invalid_values_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match="base_model is required"):
        load_sft_config(None, ["train_file=t.jsonl"], environ={})
    with pytest.raises(ConfigError, match="method"):
        load_sft_config(None, [*REQUIRED, "method=prefix"], environ={})
    with pytest.raises(ConfigError, match="overlong"):
        load_sft_config(None, [*REQUIRED, "overlong=wrap"], environ={})
    with pytest.raises(ConfigError, match="max_steps"):
        load_sft_config(None, [*REQUIRED, "max_steps=0"], environ={})
    with pytest.raises(ConfigError, match="expected key=value"):
        load_sft_config(None, [*REQUIRED, "max_steps"], environ={})
    with pytest.raises(ConfigError, match="lora_target_modules is set but method is 'full'"):
        load_sft_config(None, [*REQUIRED, "method=full", "lora_target_modules=[q_proj]"], environ={})


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_sft_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sft_config(bad, environ={})
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_sft_config(listy, environ={})


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    config = load_sft_config(None, [*REQUIRED, "lora_r=4", "report_to=[tensorboard]"], environ={})
    path = tmp_path / "resolved.yaml"
    path.write_text(config.to_yaml())
    assert load_sft_config(path, environ={}) == config


def test_shipped_configs_load() -> None:
    names = available_configs()
    assert {"sft-qwen2vl-7b-lora", "sft-smolvlm", "sft-tiny-cpu"} <= set(names)
    for name in names:
        config = load_sft_config(config_path(name), environ={})
        assert config.base_model and config.train_file
    assert (
        load_sft_config(config_path("sft-qwen2vl-7b-lora"), environ={}).base_model
        == "Qwen/Qwen2-VL-7B-Instruct"
    )
    with pytest.raises(ConfigError, match="shipped configs"):
        config_path("no-such-config")


def test_shipped_deepspeed_and_accelerate_configs_parse() -> None:
    import json
    from importlib import resources

    import yaml

    from vlmguard.train.prepare import resolve_deepspeed

    for stage in ("zero2", "zero3"):
        path = resolve_deepspeed(stage)
        assert path is not None
        assert json.loads(Path(path).read_text())["zero_optimization"]["stage"] == int(stage[-1])
    folder = resources.files("vlmguard.configs").joinpath("accelerate")
    names = sorted(p.name for p in folder.iterdir())
    assert {"deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "multi-gpu.yaml", "single-gpu.yaml"} <= set(names)
    for name in names:
        assert "distributed_type" in yaml.safe_load(folder.joinpath(name).read_text())
    with pytest.raises(ConfigError, match="deepspeed config not found"):
        resolve_deepspeed("zero9")
