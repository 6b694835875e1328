"""SmolLM2's two engines: llama.cpp by default, transformers on request, the same prompt and answers."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from vlmguard.backends import smollm2
from vlmguard.backends.smollm2 import SmolLM2VLM, smollm2_from_spec
from vlmguard.errors import ConfigError
from vlmguard.types import GenerateConfig, Message


def _without(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == missing else real(name, *args)

    monkeypatch.setattr(smollm2.importlib.util, "find_spec", find_spec)


def test_llamacpp_is_the_default_engine_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xllamacpp")
    assert SmolLM2VLM().engine == "llamacpp"
    assert SmolLM2VLM(engine="transformers").engine == "transformers"
    _without(monkeypatch, "xllamacpp")
    assert SmolLM2VLM().engine == "transformers"  # the fallback without xllamacpp


def test_engine_names_and_aliases() -> None:
    for alias in ("llama_cpp", "llama.cpp", "xllamacpp", "llamacpp"):
        assert SmolLM2VLM(engine=alias).engine_name == "llamacpp"
    with pytest.raises(ConfigError, match="unknown smollm2 engine"):
        SmolLM2VLM(engine="onnx")
    with pytest.raises(ConfigError, match="n_ctx"):
        SmolLM2VLM(n_ctx=10)


def test_spec_options_reach_the_model() -> None:
    options = {"evidence": "0", "engine": "transformers", "n_ctx": "2048", "threads": "1"}
    model = smollm2_from_spec("", options)
    assert isinstance(model, SmolLM2VLM)
    assert (model.engine_name, model.n_ctx, model.threads) == ("transformers", 2048, 1)
    assert smollm2_from_spec("", {"evidence": "0"}).threads is None  # each engine picks its default
    for options in ({"n_ctx": "many"}, {"threads": "0"}, {"engine": "vllm"}):
        with pytest.raises(ConfigError):
            smollm2_from_spec("", {"evidence": "0", **options})


@pytest.mark.slow
async def test_both_engines_give_the_same_greedy_answers() -> None:
    pytest.importorskip("xllamacpp")
    prompts = [
        [Message.user("What is the capital of France? Answer in one word.")],
        [Message.system("Answer briefly."), Message.user("Describe the Eiffel tower.")],
    ]
    config = GenerateConfig(max_tokens=24)
    answers: dict[str, list[str]] = {}
    for engine in ("llamacpp", "transformers"):
        model = SmolLM2VLM(engine=engine, cache_dir=None)
        try:
            answers[engine] = [(await model.generate(p, config)).text for p in prompts]
            assert model.engine == engine
        finally:
            await model.aclose()
    assert answers["llamacpp"] == answers["transformers"]
    assert all(answers["llamacpp"])


@pytest.mark.slow
async def test_llamacpp_engine_stops_and_continues_prefixes() -> None:
    pytest.importorskip("xllamacpp")
    model = SmolLM2VLM(max_new_tokens=32)
    try:
        question = [Message.user("What is the capital of France? Answer in one word.")]
        full = await model.generate(question, GenerateConfig(max_tokens=12))
        words = full.text.split()
        assert full.finish_reason == "length" and len(words) > 4
        out = await model.generate(question, GenerateConfig(max_tokens=32, stop=(f" {words[3]}",)))
        assert out.finish_reason == "stop" and out.text == " ".join(words[:3])
        assert out.usage is not None and 0 < out.usage.completion_tokens <= 32
        prefixed = await model.generate_with_prefix(
            [Message.user("Name a colour.")], "My favourite colour is", GenerateConfig(max_tokens=6)
        )
        assert prefixed.text and not prefixed.text.startswith("My favourite")
        assert model.load_s is not None
    finally:
        await model.aclose()
