"""The OpenAI-compatible backend against a local HTTP server (127.0.0.1, started in the test)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest

from vlmguard.backends.base import PrefillVLM
from vlmguard.backends.openai_compat import OpenAICompatVLM, openai_from_spec
from vlmguard.backends.retry import RetryingVLM
from vlmguard.backends.spec import load_backend
from vlmguard.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from vlmguard.images import load_image
from vlmguard.testing.fake_openai import FakeOpenAIServer, free_port
from vlmguard.types import GenerateConfig, Message


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


async def test_sends_images_as_data_uri_parts_and_maps_config(
    server: FakeOpenAIServer, png_bytes: bytes
) -> None:
    image = load_image(png_bytes)
    vlm = load_backend(f"openai:test-model@{server.url('ok')}")
    messages = [
        Message.system("be careful"),
        Message.user("first"),
        Message.assistant("earlier answer"),
        Message.user("what is this?", image),
    ]
    config = GenerateConfig(max_tokens=33, temperature=0.7, top_p=0.9, stop=("END",), seed=5, n=3)
    completion = await vlm.generate(messages, config)
    await vlm.aclose()
    assert completion.text == "reply:what is this?"
    assert completion.model == "test-model"
    assert completion.usage is not None and completion.usage.prompt_tokens == 7
    assert completion.finish_reason == "stop"
    body = server.requests[0]
    assert body["model"] == "test-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "be careful"
    assert body["messages"][2]["content"] == "earlier answer"
    parts = body["messages"][3]["content"]
    assert parts[0]["type"] == "image_url"
    uri = parts[0]["image_url"]["url"]
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png_bytes
    assert parts[1] == {"type": "text", "text": "what is this?"}
    assert body["max_tokens"] == 33 and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["stop"] == ["END"] and body["seed"] == 5 and body["n"] == 1


async def test_api_key_from_env_sent_as_bearer_and_never_in_repr(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    vlm = openai_from_spec(f"m@{server.url()}", {"api_key_env": "MY_KEY"})
    await vlm.generate([Message.user("hi")])
    await vlm.aclose()
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(vlm)

    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ConfigError, match="MY_KEY"):
        openai_from_spec(f"m@{server.url()}", {"api_key_env": "MY_KEY"})

    monkeypatch.delenv("VLMGUARD_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    vlm = openai_from_spec(f"m@{server.url()}", {})
    await vlm.generate([Message.user("hi")])
    monkeypatch.setenv("VLMGUARD_API_KEY", "sk-vlmguard")
    vlm2 = openai_from_spec(f"m@{server.url()}", {})
    await vlm2.generate([Message.user("hi")])
    await vlm.aclose()
    await vlm2.aclose()
    assert server.headers[1]["Authorization"] == "Bearer sk-openai"
    assert server.headers[2]["Authorization"] == "Bearer sk-vlmguard"


async def test_round_robin_over_several_urls(server: FakeOpenAIServer) -> None:
    vlm = load_backend(f"openai:m@{server.url('a')},{server.url('b')},{server.url('c')}")
    for i in range(6):
        await vlm.generate([Message.user(str(i))])
    await vlm.aclose()
    assert server.modes() == ["a", "b", "c", "a", "b", "c"]


async def test_least_busy_avoids_the_replica_with_a_request_in_flight(server: FakeOpenAIServer) -> None:
    server.slow_s = 0.5
    vlm = openai_from_spec(f"m@{server.url('slowa')},{server.url('b')}", {"strategy": "least_busy"})
    assert isinstance(vlm, OpenAICompatVLM)
    long_call = asyncio.create_task(vlm.generate([Message.user("long")]))
    while vlm.endpoints[0].in_flight == 0:
        await asyncio.sleep(0.005)
    for i in range(3):
        await vlm.generate([Message.user(str(i))])
    await long_call
    await vlm.aclose()
    assert server.modes()[:4].count("b") == 3
    assert server.modes().count("slowa") == 1

    rr = openai_from_spec(f"m@{server.url('slowa')},{server.url('b')}", {"strategy": "round_robin"})
    assert isinstance(rr, OpenAICompatVLM)
    server.requests.clear()
    server.slow_s = 0.0
    for i in range(4):
        await rr.generate([Message.user(str(i))])
    await rr.aclose()
    assert server.modes() == ["slowa", "b", "slowa", "b"]


async def test_concurrent_requests_share_one_pooled_client(server: FakeOpenAIServer) -> None:
    vlm = openai_from_spec(f"m@{server.url('a')},{server.url('b')}", {})
    results = await asyncio.gather(*(vlm.generate([Message.user(f"q{i}")]) for i in range(8)))
    client = vlm._client
    await vlm.aclose()
    assert sorted(r.text for r in results) == sorted(f"reply:q{i}" for i in range(8))
    assert client is not None and client.is_closed
    assert sorted(server.modes()) == ["a"] * 4 + ["b"] * 4


async def test_refused_connection_fails_over_to_another_url(server: FakeOpenAIServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    vlm = openai_from_spec(f"m@{dead},{server.url('ok')}", {})
    for _ in range(2):
        assert (await vlm.generate([Message.user("x")])).text == "reply:x"
    await vlm.aclose()
    assert isinstance(vlm, OpenAICompatVLM) and vlm.endpoints[0].failures >= 1


async def test_unreachable_backend_raises_retryable_unavailable() -> None:
    vlm = openai_from_spec(f"m@http://127.0.0.1:{free_port()}/v1", {"timeout": "5"})
    with pytest.raises(BackendUnavailable, match="cannot connect") as info:
        await vlm.generate([Message.user("x")])
    await vlm.aclose()
    assert info.value.retryable


async def test_timeout_raises_backend_timeout(server: FakeOpenAIServer) -> None:
    server.hang_s = 1.5
    vlm = openai_from_spec(f"m@{server.url('hang')}", {"timeout": "0.2"})
    with pytest.raises(BackendTimeout, match=r"0\.2 s") as info:
        await vlm.generate([Message.user("x")])
    await vlm.aclose()
    assert info.value.retryable


@pytest.mark.parametrize(
    ("mode", "error", "retryable", "match"),
    [
        ("e500", BackendUnavailable, True, "HTTP 500: simulated 500"),
        ("e503", BackendUnavailable, True, "HTTP 503"),
        ("e429", BackendError, True, "HTTP 429: simulated 429"),
        ("e400", BackendError, False, "HTTP 400: simulated 400"),
        ("e401", BackendError, False, "HTTP 401"),
        ("garbage", BackendError, False, "not JSON"),
        ("nochoices", BackendError, False, "no choices"),
        ("badjson", BackendError, False, "not an object"),
    ],
)
async def test_error_statuses_and_garbage_bodies(
    server: FakeOpenAIServer, mode: str, error: type[BackendError], retryable: bool, match: str
) -> None:
    vlm = openai_from_spec(f"m@{server.url(mode)}", {})
    with pytest.raises(error, match=match) as info:
        await vlm.generate([Message.user("x")])
    await vlm.aclose()
    assert type(info.value) is error
    assert info.value.retryable is retryable


async def test_retry_wrapper_recovers_from_500s(server: FakeOpenAIServer) -> None:
    server.flaky_failures = 2
    inner = openai_from_spec(f"m@{server.url('flaky')}", {})
    vlm = RetryingVLM(inner, attempts=3, base_delay=0.01)
    completion = await vlm.generate([Message.user("x")])
    await vlm.aclose()
    assert completion.text == "reply:x"
    assert server.modes() == ["flaky"] * 3


async def test_retry_wrapper_does_not_retry_400(server: FakeOpenAIServer) -> None:
    vlm = RetryingVLM(openai_from_spec(f"m@{server.url('e400')}", {}), attempts=4, base_delay=0.01)
    with pytest.raises(BackendError):
        await vlm.generate([Message.user("x")])
    await vlm.aclose()
    assert len(server.requests) == 1


async def test_generate_with_prefix_uses_continue_final_message(server: FakeOpenAIServer) -> None:
    vlm = openai_from_spec(f"m@{server.url()}", {})
    assert isinstance(vlm, PrefillVLM)
    completion = await vlm.generate_with_prefix([Message.user("q")], "Sure, here")
    await vlm.aclose()
    body = server.requests[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "Sure, here"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert completion.text == "reply:Sure, here"


def test_sync_callers_with_several_event_loops(server: FakeOpenAIServer) -> None:
    vlm = openai_from_spec(f"m@{server.url()}", {})
    assert asyncio.run(vlm.generate([Message.user("one")])).text == "reply:one"
    assert asyncio.run(vlm.generate([Message.user("two")])).text == "reply:two"
    asyncio.run(vlm.aclose())


@pytest.mark.parametrize(
    ("target", "options", "match"),
    [
        ("m@ftp://host/v1", {}, "invalid URL"),
        ("m@http://", {}, "invalid base URL"),
        ("@http://localhost:1/v1", {}, "model name"),
        ("m@http://localhost:1/v1", {"strategy": "random"}, "strategy"),
        ("m@http://localhost:1/v1", {"timeout": "soon"}, "invalid number"),
        ("m@http://localhost:1/v1", {"timeout": "0"}, "timeout"),
        ("m@http://localhost:1/v1", {"colour": "red"}, "unknown openai option"),
    ],
)
def test_bad_specs_raise_config_error(target: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        openai_from_spec(target, options)


def test_spec_parsing_urls_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = "http://h1:8000/v1/,http://h2:8000/v1/chat/completions"
    vlm = openai_from_spec(f"Qwen/Qwen2-VL-7B-Instruct@{urls}", {})
    assert isinstance(vlm, OpenAICompatVLM)
    assert vlm.model == "Qwen/Qwen2-VL-7B-Instruct"
    assert [e.chat_url for e in vlm.endpoints] == [
        "http://h1:8000/v1/chat/completions",
        "http://h2:8000/v1/chat/completions",
    ]
    monkeypatch.setenv("VLMGUARD_BASE_URL", "http://localhost:9999/v1")
    assert openai_from_spec("gpt-4o", {}).endpoints[0].base_url == "http://localhost:9999/v1"
    monkeypatch.delenv("VLMGUARD_BASE_URL")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert openai_from_spec("gpt-4o", {}).endpoints[0].base_url == "https://api.openai.com/v1"
