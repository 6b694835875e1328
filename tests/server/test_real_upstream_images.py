"""Slow: the image path through llama.cpp, with a tiny random SmolVLM converted to GGUF + mmproj by
llama.cpp's own converter: in-process (the ``llamacpp:`` backend) and behind ``vlmguard serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from llamacpp_upstream import llamacpp_upstream, tiny_vision_gguf
from proxy_helpers import data_uri, mock_rewriter, serve_in_thread

from vlmguard.backends.spec import load_backend
from vlmguard.images import load_image
from vlmguard.server.app import create_app
from vlmguard.server.config import ProxyConfig
from vlmguard.testing.images import make_png
from vlmguard.types import GenerateConfig, Message

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vision_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("xllamacpp")
    return tiny_vision_gguf(tmp_path_factory.mktemp("tiny-vision"))


async def test_images_reach_the_model_through_the_projector(vision_gguf: tuple[Path, Path]) -> None:
    model, mmproj = vision_gguf
    vlm = load_backend(f"llamacpp:{model}?mmproj={mmproj}&n_ctx=512")
    image = load_image(make_png())
    config = GenerateConfig(max_tokens=4)
    try:
        with_image = await vlm.generate([Message.user("What is in the image?", image)], config)
        two_images = await vlm.generate([Message.user("Compare them.", image, image)], config)
        text_only = await vlm.generate([Message.user("What is in the image?")], config)
    finally:
        await vlm.aclose()
    assert with_image.usage is not None and two_images.usage is not None and text_only.usage is not None
    image_tokens = with_image.usage.prompt_tokens - text_only.usage.prompt_tokens
    assert image_tokens > 0  # the projector's embeddings took places in the prompt
    assert two_images.usage.prompt_tokens >= text_only.usage.prompt_tokens + 2 * image_tokens - 4
    assert with_image.usage.completion_tokens > 0


@pytest.fixture(scope="module")
def vision_proxy(vision_gguf: tuple[Path, Path]) -> Iterator[str]:
    model, mmproj = vision_gguf
    with llamacpp_upstream(model=model, mmproj=mmproj, n_ctx=512) as upstream:
        urls = [f"{upstream.base_url}/v1"]
        config = ProxyConfig.from_dict({"upstream": {"urls": urls}, "rate_limit": None})
        with serve_in_thread(create_app(config, rewriter=mock_rewriter())) as proxy:
            yield proxy


def test_proxy_forwards_images_to_a_vision_upstream(vision_proxy: str, png_bytes: bytes) -> None:
    client = openai.OpenAI(base_url=vision_proxy + "/v1", api_key="unused", max_retries=0, timeout=120)

    def ask(*images: str) -> openai.types.chat.ChatCompletion:
        content = [{"type": "image_url", "image_url": {"url": u}} for u in images]
        content.append({"type": "text", "text": "REFRAMEME describe it"})
        return client.chat.completions.create(
            model="tiny-vlm",
            messages=[{"role": "user", "content": content}],
            max_tokens=4,  # type: ignore[list-item,misc]
        )

    with_image, text_only = ask(data_uri(png_bytes)), ask()
    assert with_image.model_extra["vlmguard"]["decision"] == "reframe"  # type: ignore[index]
    assert with_image.usage is not None and text_only.usage is not None
    assert with_image.usage.prompt_tokens > text_only.usage.prompt_tokens  # the image reached the model
