"""Slow: ``vlmguard serve`` in front of a real upstream, llama.cpp's HTTP server with the packaged SmolLM2,
driven by the official ``openai`` client; eval and synthesis fanned out over two such servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from llamacpp_upstream import llamacpp_upstream, wait_idle, work_done
from proxy_helpers import SAFE_PROMPT, free_port, wait_http, write_rules

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France? Answer in one word."
EVAL_FIXTURES = Path(__file__).resolve().parents[1] / "eval" / "fixtures"


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with llamacpp_upstream(n_ctx=1024) as server:
        assert server.base_url is not None
        yield server.base_url


@pytest.fixture(scope="module")
def proxy(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vlmguard serve`` (its own process) with the rule-driven mock rewriter, upstream: llama.cpp."""
    folder = tmp_path_factory.mktemp("proxy")
    port = free_port()
    rules = write_rules(folder / "rules.json")
    config = folder / "proxy.yaml"
    config.write_text(
        f"upstream:\n  urls: [{upstream}/v1]\nrewriter: 'mock:rules={rules}'\nrate_limit: null\n"
        f"server:\n  port: {port}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "VLMGUARD_UPSTREAM_API_KEY": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlmguard.cli.main", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_plain_answer_carries_the_vlmguard_object(proxy: str, upstream: str) -> None:
    before = work_done(upstream)
    completion = client(proxy).chat.completions.create(
        model="smollm2",
        messages=user(QUESTION),
        max_tokens=24,
        temperature=0,  # type: ignore[arg-type]
    )
    assert "paris" in (completion.choices[0].message.content or "").lower()
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 24
    ext = completion.model_extra["vlmguard"]  # type: ignore[index]
    assert ext["decision"] == "forward" and ext["upstream_called"] is True
    assert work_done(upstream)[1] > before[1]  # the model really decoded


def test_streaming_answer_ends_with_the_vlmguard_object(proxy: str) -> None:
    stream = client(proxy).chat.completions.create(
        model="smollm2",
        messages=user(QUESTION),
        max_tokens=24,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    text, extensions, content_chunks = "", [], 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            content_chunks += 1
        if chunk.model_extra and "vlmguard" in chunk.model_extra:
            extensions.append(chunk.model_extra["vlmguard"])
    assert "paris" in text.lower() and content_chunks > 1  # relayed piece by piece
    assert len(extensions) == 1 and extensions[0]["decision"] == "forward"


def test_reframed_prompt_is_what_the_model_answers(proxy: str) -> None:
    completion = client(proxy).chat.completions.create(
        model="smollm2",
        messages=user("REFRAMEME tell me how"),
        max_tokens=16,
        temperature=0,  # type: ignore[arg-type]
    )
    ext = completion.model_extra["vlmguard"]  # type: ignore[index]
    assert ext["decision"] == "reframe" and ext["upstream_called"] is True
    assert completion.choices[0].message.content and SAFE_PROMPT not in completion.choices[0].message.content


def test_refusal_never_reaches_the_model(proxy: str, upstream: str) -> None:
    before = work_done(upstream)
    completion = client(proxy).chat.completions.create(model="smollm2", messages=user("REFUSEME now"))  # type: ignore[arg-type]
    assert "illegal activity" in (completion.choices[0].message.content or "")
    assert completion.model_extra["vlmguard"]["upstream_called"] is False  # type: ignore[index]
    chunks = list(
        client(proxy).chat.completions.create(model="smollm2", messages=user("REFUSEME now"), stream=True)  # type: ignore[arg-type]
    )
    assert "illegal activity" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert work_done(upstream) == before


def test_context_overflow_becomes_an_error_body(proxy: str) -> None:
    too_long = user("word " * 1500)  # over the upstream's 1024-token context, under the proxy's limits
    with pytest.raises(openai.BadRequestError) as info:
        client(proxy).chat.completions.create(model="smollm2", messages=too_long, max_tokens=8)  # type: ignore[arg-type]
    assert info.value.status_code == 400 and info.value.code == "upstream_bad_request"
    assert "exceeds the available context size" in info.value.message
    body = {"model": "smollm2", "messages": too_long, "stream": True}
    response = httpx.post(proxy + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "upstream_bad_request"


def test_client_disconnect_mid_stream_stops_the_model(proxy: str, upstream: str) -> None:
    max_tokens = 400
    wait_idle(upstream)
    before = work_done(upstream)
    body = {
        "model": "smollm2",
        "messages": user("Tell me a long story about a lighthouse."),
        "stream": True,
        "max_tokens": max_tokens,
        "ignore_eos": True,  # llama.cpp would otherwise decode all 400 tokens
    }
    received = 0
    with httpx.stream("POST", proxy + "/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):  # not the opening role-only chunk
                received += 1
                if received == 3:
                    break  # leaving the block closes the connection mid-stream
    wait_idle(upstream)
    decoded = work_done(upstream)[1] - before[1]
    # 3 tokens sent took at least 3 decode calls (the prompt's, then one per token after the first)
    assert received == 3 and 3 <= decoded < max_tokens  # the proxy closed the upstream stream too
    again = client(proxy).chat.completions.create(model="smollm2", messages=user(QUESTION), max_tokens=8)  # type: ignore[arg-type]
    assert again.choices[0].message.content


@pytest.fixture(scope="module")
def two_upstreams() -> Iterator[tuple[str, str]]:
    with llamacpp_upstream(n_ctx=2048) as first, llamacpp_upstream(n_ctx=2048) as second:
        assert first.base_url is not None and second.base_url is not None
        yield first.base_url, second.base_url


def fan_out_spec(urls: tuple[str, str]) -> str:
    """The text-only model on both servers, seeing images through OCR text (the evidence adapter)."""
    return f"evidence:openai:smollm2@{urls[0]}/v1,{urls[1]}/v1?evidence_labels=0&evidence_nudity=0"


async def test_eval_fans_out_over_two_servers(two_upstreams: tuple[str, str], tmp_path: Path) -> None:
    from vlmguard.eval.benchmarks import BenchmarkOptions
    from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval
    from vlmguard.eval.store import RESULTS_FILE, read_records
    from vlmguard.types import GenerateConfig

    before = [work_done(u)[0] for u in two_upstreams]
    figstep = BenchmarkOptions(data=EVAL_FIXTURES / "figstep", limit=4)
    config = RunConfig(
        benchmarks=[BenchmarkSpec(name="figstep", options=figstep)],
        defenses=["none"],
        target=fan_out_spec(two_upstreams),
        judge="refusal",
        generate=GenerateConfig(max_tokens=24),
        concurrency=2,
        use_cache=False,
    )
    summary = await run_eval(config, tmp_path / "run")
    records = read_records(tmp_path / "run" / RESULTS_FILE)
    assert summary.errors == 0 and summary.completed == len(records) >= 2
    assert all(r.response and r.judgement is not None for r in records)
    after = [work_done(u)[0] for u in two_upstreams]
    assert all(a > b for a, b in zip(after, before, strict=True))  # both replicas answered


async def test_synthesis_fans_out_over_two_servers(
    two_upstreams: tuple[str, str], shared_data: Path, tmp_path: Path
) -> None:
    from vlmguard.synth.config import SynthConfig
    from vlmguard.synth.pipeline import run_synthesis
    from vlmguard.synth.status import run_status

    before = [work_done(u)[0] for u in two_upstreams]
    spec = fan_out_spec(two_upstreams)
    config = SynthConfig(
        out=str(tmp_path / "run"),
        seeds=[
            f"figstep:{shared_data / 'figstep' / 'safebench.csv'}?limit=2",
            f"mmvet:{shared_data / 'mm-vet' / 'mm-vet.json'}?limit=2",
        ],
        teacher=["evidence"],
        weak=spec,
        strong=spec,
        concurrency=2,
        response_max_tokens=32,
    )
    summary = await run_synthesis(config, progress=False)
    assert summary.total == 4 and summary.done + summary.failed == 4 and summary.done >= 2, summary.failures
    assert run_status(tmp_path / "run").kinds == {"unsafe": 2, "safe": 2}
    after = [work_done(u)[0] for u in two_upstreams]
    assert all(a > b for a, b in zip(after, before, strict=True))  # both replicas answered
