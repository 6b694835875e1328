"""The llama.cpp backend: spec, checks, request bodies and errors (fast, with a stand-in server);
real generation with the packaged SmolLM2 GGUF (slow)."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vlmguard.backends import llamacpp
from vlmguard.backends.llamacpp import (
    LlamaCppOptions,
    LlamaCppServer,
    LlamaCppVLM,
    check_gguf,
    default_threads,
    llamacpp_from_spec,
)
from vlmguard.backends.spec import BACKENDS, load_backend
from vlmguard.errors import BackendError, BackendUnavailable, ConfigError, InputError
from vlmguard.images import load_image
from vlmguard.testing.images import make_png
from vlmguard.types import GenerateConfig, Message


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 28)
    return path


class FakeServer:
    """Stands in for :class:`LlamaCppServer`: records bodies, answers in llama.cpp's shapes."""

    instances: ClassVar[list[FakeServer]] = []

    def __init__(self, options: LlamaCppOptions, **_: Any) -> None:
        self.options = options
        self.bodies: list[dict[str, Any]] = []
        self.closed = False
        FakeServer.instances.append(self)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        last = body["messages"][-1]
        if last["content"] == "overflow":
            raise BackendError("llama.cpp refused the request: exceeds the context", status=400)
        text = last["content"] + " and more" if last["role"] == "assistant" else "answer"
        return {
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2},
        }

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> type[FakeServer]:
    FakeServer.instances = []
    monkeypatch.setattr(llamacpp, "LlamaCppServer", FakeServer)
    return FakeServer


def test_registered_as_a_backend_kind() -> None:
    assert "llamacpp" in BACKENDS
    assert "in-process" in BACKENDS.entry("llamacpp").help


def test_check_gguf_names_the_problem(tmp_path: Path, gguf: Path) -> None:
    assert check_gguf(gguf) == gguf
    with pytest.raises(ConfigError, match="not found"):
        check_gguf(tmp_path / "missing.gguf")
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ConfigError, match="not a GGUF"):
        check_gguf(other, "mmproj")


def test_spec_options_and_errors(tmp_path: Path, gguf: Path) -> None:
    vlm = llamacpp_from_spec(
        str(gguf),
        {
            "mmproj": str(gguf),
            "n_ctx": "512",
            "threads": "3",
            "parallel": "2",
            "max_new_tokens": "9",
            "name": "tiny-vlm",
            "chat_template": "chatml",
        },
    )
    assert vlm.name == "tiny-vlm" and vlm.max_new_tokens == 9
    assert vlm.options == LlamaCppOptions(gguf, gguf, 512, 3, 2, "chatml")
    assert load_backend(f"llamacpp:{gguf}").name == "tiny"  # nothing loads before the first call
    for target, options in [
        ("", {}),
        (str(gguf), {"n_ctx": "big"}),
        (str(gguf), {"temperature": "1"}),
        (str(gguf), {"mmproj": str(tmp_path / "nope.gguf")}),
        (str(gguf), {"n_ctx": "8"}),
        (str(gguf), {"threads": "0"}),
        (str(gguf), {"parallel": "0"}),
        (str(gguf), {"max_new_tokens": "0"}),
    ]:
        with pytest.raises(ConfigError):
            llamacpp_from_spec(target, dict(options))


def test_default_threads_leave_room_on_small_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp.os, "cpu_count", lambda: 2)
    assert default_threads() == 1
    monkeypatch.setattr(llamacpp.os, "cpu_count", lambda: 16)
    assert default_threads() == 8
    monkeypatch.setattr(llamacpp.os, "cpu_count", lambda: None)
    assert default_threads() == 1


async def test_generate_sends_chat_bodies_and_caps_tokens(fake_server: type[FakeServer], gguf: Path) -> None:
    vlm = LlamaCppVLM(LlamaCppOptions(gguf), max_new_tokens=16)
    out = await vlm.generate(
        [Message.system("Be brief."), Message.user("hello")],
        GenerateConfig(max_tokens=64, temperature=0.5, stop=("END",), seed=3),
    )
    assert out.text == "answer" and out.finish_reason == "stop" and out.model == "tiny"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (7, 2)
    (server,) = fake_server.instances
    body = server.bodies[0]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert (body["max_tokens"], body["temperature"], body["stop"], body["seed"]) == (16, 0.5, ["END"], 3)
    await vlm.aclose()
    assert server.closed


async def test_prefix_is_continued_and_not_repeated(fake_server: type[FakeServer], gguf: Path) -> None:
    vlm = LlamaCppVLM(LlamaCppOptions(gguf))
    out = await vlm.generate_with_prefix([Message.user("Name a colour.")], "My colour is")
    assert out.text == " and more"
    sent = fake_server.instances[0].bodies[0]["messages"][-1]
    assert sent == {"role": "assistant", "content": "My colour is"}
    await vlm.aclose()


async def test_images_need_a_projector(fake_server: type[FakeServer], gguf: Path) -> None:
    image = load_image(make_png())
    with pytest.raises(InputError, match="mmproj"):
        await LlamaCppVLM(LlamaCppOptions(gguf)).generate([Message.user("what is this?", image)])
    assert fake_server.instances == []  # refused before loading anything
    vlm = LlamaCppVLM(LlamaCppOptions(gguf, mmproj=gguf))
    await vlm.generate([Message.user("what is this?", image)])
    sent = fake_server.instances[0].bodies[0]["messages"][0]["content"]
    assert sent[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert sent[1] == {"type": "text", "text": "what is this?"}
    await vlm.aclose()


async def test_errors_propagate_typed_and_the_model_loads_once(
    fake_server: type[FakeServer], gguf: Path
) -> None:
    vlm = LlamaCppVLM(LlamaCppOptions(gguf, parallel=2))
    with pytest.raises(BackendError) as info:
        await vlm.generate([Message.user("overflow")])
    assert info.value.status == 400 and not info.value.retryable
    outs = await asyncio.gather(*(vlm.generate([Message.user(f"q{i}")]) for i in range(6)))
    assert [o.text for o in outs] == ["answer"] * 6 and len(fake_server.instances) == 1
    await vlm.aclose()


def test_handler_answers_map_to_typed_errors() -> None:
    assert llamacpp._error_of({"choices": []}) is None
    overflow = llamacpp._error_of(
        {
            "error": {
                "code": 400,
                "message": "request (3031 tokens) exceeds the available context size",
                "type": "exceed_context_size_error",
            }
        }
    )
    assert type(overflow) is BackendError and overflow.status == 400 and not overflow.retryable
    assert "exceeds the available context" in str(overflow)
    busy = llamacpp._error_of({"error": {"code": 503, "message": "Loading model"}})
    assert isinstance(busy, BackendUnavailable) and busy.retryable and busy.status == 503
    assert isinstance(llamacpp._error_of(["not", "a", "dict"]), BackendError)
    assert isinstance(llamacpp._error_of({"error": "plain"}), BackendError)


def _fake_xllamacpp(fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("xllamacpp")

    class Params:
        def __init__(self) -> None:
            self.model = types.SimpleNamespace(path="")
            self.mmproj = types.SimpleNamespace(path="")
            self.cpuparams = types.SimpleNamespace(n_threads=-1)
            self.cpuparams_batch = types.SimpleNamespace(n_threads=-1)
            self.chat_template = ""
            self.hostnames: list[str] = []
            self.port = 8080

    class Server:
        def __init__(self, params: Params) -> None:
            if fail:
                raise RuntimeError("Failed to init server, please check the input params.")
            self.params = params
            self.listening_address = f"http://127.0.0.1:{params.port or 40001}"

        def handle_chat_completions(self, body: dict[str, Any]) -> Any:
            return {"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}}

        def handle_completions(self, body: dict[str, Any]) -> Any:
            raise ValueError("malformed")

    module.CommonParams = Params  # type: ignore[attr-defined]
    module.Server = Server  # type: ignore[attr-defined]
    return module


def test_server_params_and_http_address(monkeypatch: pytest.MonkeyPatch, gguf: Path) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", _fake_xllamacpp())
    options = LlamaCppOptions(gguf, mmproj=gguf, n_ctx=1024, threads=3, parallel=2, chat_template="chatml")
    with LlamaCppServer(options, port=0, metrics=True) as server:
        params = server._server.params
        assert (params.model.path, params.mmproj.path) == (str(gguf), str(gguf))
        assert (params.n_ctx, params.n_parallel, params.cpuparams.n_threads) == (1024, 2, 3)
        assert params.cpuparams_batch.n_threads == 3 and params.chat_template == "chatml"
        assert params.hostnames == ["127.0.0.1"] and params.verbosity == -1 and params.endpoint_metrics
        assert server.base_url == "http://127.0.0.1:40001"
        with pytest.raises(BackendError, match="refused the request: bad"):
            server.chat({"messages": []})
        with pytest.raises(BackendError, match="ValueError"):
            server.complete({"prompt": ""})
    with pytest.raises(BackendError, match="closed"):
        server.chat({"messages": []})
    assert LlamaCppServer(LlamaCppOptions(gguf)).base_url is None


def test_server_load_failures_are_config_errors(monkeypatch: pytest.MonkeyPatch, gguf: Path) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", _fake_xllamacpp(fail=True))
    with pytest.raises(ConfigError, match="could not load"):
        LlamaCppServer(LlamaCppOptions(gguf))
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # not installed
    with pytest.raises(ConfigError, match="pip install xllamacpp"):
        LlamaCppServer(LlamaCppOptions(gguf))


@pytest.mark.slow
async def test_real_generation_with_the_packaged_gguf() -> None:
    from vlmguard.backends.smollm2 import gguf_path

    vlm = load_backend(f"llamacpp:{gguf_path()}?n_ctx=1024&max_new_tokens=24")
    try:
        out = await vlm.generate([Message.user("What is the capital of France? Answer in one word.")])
        assert "paris" in out.text.lower() and out.usage is not None and 0 < out.usage.completion_tokens <= 24
        prefixed = await vlm.generate_with_prefix(  # type: ignore[attr-defined]
            [Message.user("Name a colour.")], "My favourite colour is", GenerateConfig(max_tokens=6)
        )
        assert prefixed.text and not prefixed.text.startswith("My favourite")
        with pytest.raises(BackendError) as info:
            await vlm.generate([Message.user("word " * 1500)])
        assert info.value.status == 400 and "context" in str(info.value)
    finally:
        await vlm.aclose()
