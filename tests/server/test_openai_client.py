"""The official ``openai`` client against a really running proxy (uvicorn on 127.0.0.1) and fake upstream."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from proxy_helpers import (
    SAFE_PROMPT,
    UPSTREAM_KEY,
    free_port,
    mock_rewriter,
    serve_in_thread,
    wait_http,
    write_rules,
)

from vlmguard.server.app import create_app
from vlmguard.server.auth import hash_key
from vlmguard.server.config import ProxyConfig
from vlmguard.server.fake_upstream import FakeUpstream

CLIENT_KEY = "client-key-abc"


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, FakeUpstream]]:
    fake = FakeUpstream(api_key=UPSTREAM_KEY, stream_chunks=5)
    with serve_in_thread(fake) as upstream_url:
        cfg = ProxyConfig.from_dict(
            {
                "upstream": {"urls": [upstream_url + "/v1"]},
                "rate_limit": None,
                "api_keys": [{"name": "tests", "hash": hash_key(CLIENT_KEY, algo="sha256")}],
            }
        )
        app = create_app(cfg, rewriter=mock_rewriter(), upstream_key=UPSTREAM_KEY)
        with serve_in_thread(app) as proxy_url:
            yield proxy_url, fake


def client(base: str, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=20)


def image_message(png: bytes, text: str) -> list[dict[str, object]]:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        }
    ]


def test_openai_client_non_streaming(running: tuple[str, FakeUpstream], png_bytes: bytes) -> None:
    base, fake = running
    completion = client(base).chat.completions.create(
        model="fake-vlm",
        messages=image_message(png_bytes, "REFRAMEME"),
        temperature=0.2,
        extra_body={"top_k": 5},
    )
    assert completion.choices[0].message.content == f"echo: {SAFE_PROMPT} [images: 1]"
    ext = completion.model_extra["vlmguard"]  # type: ignore[index]
    assert ext["decision"] == "reframe" and ext["report"]["categories"] == ["violence_weapons"]
    assert fake.requests[-1]["top_k"] == 5 and fake.requests[-1]["temperature"] == 0.2


def test_openai_client_streaming(running: tuple[str, FakeUpstream], png_bytes: bytes) -> None:
    base, _ = running
    stream = client(base).chat.completions.create(
        model="fake-vlm", messages=image_message(png_bytes, "hello there"), stream=True
    )
    text, extensions = "", []
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.model_extra and "vlmguard" in chunk.model_extra:
            extensions.append(chunk.model_extra["vlmguard"])
    assert text == "echo: hello there [images: 1]"
    assert len(extensions) == 1 and extensions[0]["decision"] == "forward"


def test_openai_client_refusal_streaming_and_not(running: tuple[str, FakeUpstream]) -> None:
    base, fake = running
    before = fake.calls
    messages = [{"role": "user", "content": "REFUSEME now"}]
    completion = client(base).chat.completions.create(model="fake-vlm", messages=messages)  # type: ignore[arg-type]
    assert "illegal activity" in (completion.choices[0].message.content or "")
    chunks = list(
        client(base).chat.completions.create(
            model="fake-vlm",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        )
    )
    assert "illegal activity" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert fake.calls == before


def test_openai_client_errors_and_models(running: tuple[str, FakeUpstream]) -> None:
    base, fake = running
    with pytest.raises(openai.AuthenticationError):
        client(base, "wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as info:
        client(base).chat.completions.create(model="m", messages=[])
    assert info.value.code == "invalid_request"
    assert [m.id for m in client(base).models.list()] == ["fake-vlm"]
    fake.status = 500
    try:
        with pytest.raises(openai.APIStatusError) as failed:
            client(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 502
        with pytest.raises(openai.APIStatusError):
            list(
                client(base).chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
    finally:
        fake.status = None


def test_stream_is_relayed_as_it_comes(running: tuple[str, FakeUpstream]) -> None:
    base, fake = running
    fake.chunk_delay_s = 0.3
    try:
        arrivals: list[float] = []
        start = time.monotonic()
        with httpx.stream(
            "POST",
            base + "/v1/chat/completions",
            timeout=20,
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "abcdefghij"}]},
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:]).get("choices"):
                    arrivals.append(time.monotonic() - start)
    finally:
        fake.chunk_delay_s = 0.0
    assert len(arrivals) >= 4
    assert arrivals[0] < arrivals[-1] - 0.6  # chunks arrive spread out, not all at the end


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path: Path) -> None:
    """SIGTERM to a running ``vlmguard serve`` while a slow request is in flight: it still completes."""
    fake = FakeUpstream(latency_s=2.0)
    with serve_in_thread(fake) as upstream_url:
        port = free_port()
        rules = write_rules(tmp_path / "rules.json")
        cfg = tmp_path / "proxy.yaml"
        cfg.write_text(
            f"upstream:\n  urls: [{upstream_url}/v1]\nrewriter: 'mock:rules={rules}'\n"
            f"server:\n  port: {port}\n  graceful_shutdown_s: 20\n",
            encoding="utf-8",
        )
        env = {**os.environ, "VLMGUARD_UPSTREAM_API_KEY": ""}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlmguard.cli.main", "serve", "--config", str(cfg)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
            result: dict[str, object] = {}

            def call() -> None:
                try:
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        timeout=30,
                        json={"model": "m", "messages": [{"role": "user", "content": "slow one"}]},
                    )
                    result["status"], result["body"] = r.status_code, r.json()
                except Exception as exc:
                    result["error"] = repr(exc)

            thread = threading.Thread(target=call)
            thread.start()
            deadline = time.monotonic() + 10
            while fake.calls == 0 and time.monotonic() < deadline:  # the request reached the upstream
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            thread.join(timeout=30)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        output = proc.stdout.read().decode() if proc.stdout else ""
    assert result.get("status") == 200, (result, output)
    assert result["body"]["choices"][0]["message"]["content"] == "echo: slow one [images: 0]"  # type: ignore[index]
    assert code in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal once it has shut down cleanly
    assert "Application shutdown complete" in output
    with pytest.raises(httpx.HTTPError):  # and the server is gone
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
