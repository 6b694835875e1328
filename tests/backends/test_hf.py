"""The hf backend on tiny random Idefics3, LLaVA and Qwen2-VL models (real architectures, random weights)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlmguard.backends.base import PrefillVLM
from vlmguard.backends.hf import HFVLM, hf_from_spec
from vlmguard.backends.spec import load_backend
from vlmguard.errors import ConfigError
from vlmguard.images import load_image
from vlmguard.types import Completion, GenerateConfig, ImageData, Message

SHORT = GenerateConfig(max_tokens=4)


@pytest.fixture(scope="module")
def shared_backends(tiny_idefics3: Path, tiny_llava: Path) -> Iterator[dict[str, HFVLM]]:
    """One loaded backend per tiny model for the whole module (loading costs about a second each)."""
    backends = {"idefics3": hf_from_spec(str(tiny_idefics3), {}), "llava": hf_from_spec(str(tiny_llava), {})}
    yield backends
    for vlm in backends.values():
        asyncio.run(vlm.aclose())


def _fresh(vlm: HFVLM, max_batch: int = 8) -> HFVLM:
    vlm.batch_sizes.clear()
    vlm.max_batch = max_batch
    return vlm


@pytest.fixture(params=["idefics3", "llava"])
def hf_vlm(request: pytest.FixtureRequest, shared_backends: dict[str, HFVLM]) -> HFVLM:
    return _fresh(shared_backends[request.param])


@pytest.fixture
def idefics3_vlm(shared_backends: dict[str, HFVLM]) -> HFVLM:
    return _fresh(shared_backends["idefics3"])


@pytest.fixture
def llava_vlm(shared_backends: dict[str, HFVLM]) -> HFVLM:
    return _fresh(shared_backends["llava"])


def _image(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> ImageData:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return load_image(buf.getvalue())


RED = _image((200, 20, 20))
GREEN = _image((20, 200, 20), (24, 48))


async def test_generates_with_image_and_reports_usage(tiny_llava: Path) -> None:
    vlm = load_backend(f"hf:{tiny_llava}?max_batch=4&name=tiny")
    assert isinstance(vlm, HFVLM) and vlm.max_batch == 4
    completion = await vlm.generate([Message.user("What is in the picture?", RED)], SHORT)
    await vlm.aclose()
    assert isinstance(completion.text, str)
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 4
    assert completion.usage.prompt_tokens > 10
    assert completion.finish_reason in ("stop", "length")
    assert completion.model == "tiny"
    assert hf_from_spec(str(tiny_llava), {}).name == f"hf:{tiny_llava.name}"


async def test_concurrent_requests_are_batched(idefics3_vlm: HFVLM) -> None:
    vlm = idefics3_vlm
    messages = [Message.user("Describe it.", RED)]
    results = await asyncio.gather(*(vlm.generate(messages, SHORT) for _ in range(4)))
    assert vlm.batch_sizes == [4]
    assert len({r.text for r in results}) == 1  # same prompt, greedy: same answer inside one batch
    # a lone request afterwards runs on its own
    await vlm.generate(messages, SHORT)
    assert vlm.batch_sizes == [4, 1]


async def test_max_batch_and_config_split_batches(llava_vlm: HFVLM) -> None:
    vlm = _fresh(llava_vlm, max_batch=2)
    other = GenerateConfig(max_tokens=3)
    calls = [vlm.generate([Message.user(f"q{i}", RED)], SHORT) for i in range(5)]
    calls += [vlm.generate([Message.user("different config")], other)]
    results = await asyncio.gather(*calls)
    assert len(results) == 6
    assert max(vlm.batch_sizes) == 2
    assert sum(vlm.batch_sizes) == 6
    assert vlm.batch_sizes.count(1) >= 1  # the request with its own config ran alone
    assert results[-1].usage is not None and results[-1].usage.completion_tokens <= 3


async def test_multi_image_multi_turn_and_text_only(hf_vlm: HFVLM) -> None:
    vlm = hf_vlm
    conversation = [
        Message.system("You are careful."),
        Message.user("Compare these.", RED, GREEN),
        Message.assistant("They differ in colour."),
        Message.user("And this one?", GREEN),
    ]
    text = vlm.render(conversation)
    assert text.count("<image>") == 3
    assert text.index("Compare these.") < text.index("They differ in colour.") < text.index("And this one?")
    batch = await asyncio.gather(
        vlm.generate(conversation, SHORT),
        vlm.generate([Message.user("Text only, no image.")], SHORT),
    )
    assert all(isinstance(c.text, str) for c in batch)
    assert vlm.batch_sizes == [2]


async def test_prefix_and_logprobs(idefics3_vlm: HFVLM) -> None:
    vlm = idefics3_vlm
    assert isinstance(vlm, PrefillVLM)
    messages = [Message.user("Say something.", RED)]
    assert vlm.render(messages, "Sure, ").endswith("<|im_start|>assistant\nSure, ")
    greedy = await vlm.generate(messages, GenerateConfig(max_tokens=3))
    continued = await vlm.generate_with_prefix(messages, "Sure, ", GenerateConfig(max_tokens=3))
    assert isinstance(continued.text, str)
    assert continued.usage is not None and continued.usage.prompt_tokens > greedy.usage.prompt_tokens  # type: ignore[union-attr]
    scored = await vlm.continuation_logprobs(messages, " hello world")
    assert scored and all(t.logprob <= 0.0 for t in scored)
    assert "".join(t.token for t in scored).strip() == "hello world"
    assert type(vlm.model).__name__ == "Idefics3ForConditionalGeneration"  # white-box access
    assert vlm.tokenizer is vlm.processor.tokenizer


async def test_stop_strings_cut_the_answer(llava_vlm: HFVLM) -> None:
    vlm = llava_vlm
    free = await vlm.generate([Message.user("Go on.")], GenerateConfig(max_tokens=6))
    if len(free.text.strip()) < 2:
        pytest.skip("the random model answered with nothing to cut")
    stop = free.text.strip()[1]
    cut = await vlm.generate([Message.user("Go on.")], GenerateConfig(max_tokens=6, stop=(stop,)))
    assert stop not in cut.text
    assert cut.finish_reason == "stop"


def test_sync_callers_with_several_event_loops(llava_vlm: HFVLM) -> None:
    for _ in range(2):
        assert isinstance(asyncio.run(llava_vlm.generate([Message.user("hi")], SHORT)).text, str)
    assert llava_vlm.batch_sizes == [1, 1]


@pytest.mark.slow
async def test_qwen2_vl_without_processor_class(tmp_path: Path) -> None:
    from vlmguard.testing import build_tiny_vlm

    path = build_tiny_vlm("qwen2_vl", tmp_path / "qwen")
    vlm = hf_from_spec(str(path), {})
    results = await asyncio.gather(
        vlm.generate([Message.user("What is this?", RED)], SHORT),
        vlm.generate([Message.user("Two images.", RED, GREEN)], SHORT),
        vlm.generate([Message.user("No image.")], SHORT),
    )
    await vlm.aclose()
    assert vlm.batch_sizes == [3]
    assert all(r.usage is not None and r.usage.completion_tokens > 0 for r in results)


def test_bad_paths_and_options(tmp_path: Path, tiny_llava: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_backend(f"hf:{tmp_path / 'missing' / 'model'}")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        hf_from_spec(str(tmp_path), {})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="idefics3") as info:
        hf_from_spec(str(tmp_path), {})
    assert "'bert'" in str(info.value) and "llava" in str(info.value)
    with pytest.raises(ConfigError, match="unknown hf option"):
        hf_from_spec(str(tiny_llava), {"colour": "red"})
    with pytest.raises(ConfigError, match="device"):
        hf_from_spec(str(tiny_llava), {"device": "tpu"})
    with pytest.raises(ConfigError, match="dtype"):
        hf_from_spec(str(tiny_llava), {"dtype": "int3"})
    with pytest.raises(ConfigError, match="max_batch"):
        hf_from_spec(str(tiny_llava), {"max_batch": "many"})


async def test_a_request_that_cannot_be_prepared_fails_alone(llava_vlm: HFVLM) -> None:
    from vlmguard.errors import BackendError

    broken = ImageData(data=b"not an image", mime="image/png", width=4, height=4, sha256="0" * 64)
    good, bad = await asyncio.gather(
        llava_vlm.generate([Message.user("fine", RED)], SHORT),
        llava_vlm.generate([Message.user("broken", broken)], SHORT),
        return_exceptions=True,
    )
    assert isinstance(good, Completion)
    assert isinstance(bad, BackendError) and "cannot build the prompt" in str(bad)
    assert llava_vlm.batch_sizes == [2]
