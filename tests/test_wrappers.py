"""Mock modes, the response cache, retry with backoff, the concurrency limit and backend specs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from vlmguard.backends import BaseVLM, CachedVLM, ConcurrencyLimitedVLM, MockVLM, RetryingVLM, load_backend
from vlmguard.backends.cache import ResponseCache, request_key
from vlmguard.defenses import GuardedVLM, VLMGuardDefense
from vlmguard.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, ScriptExhausted
from vlmguard.images import load_image
from vlmguard.rewriter import ModelRewriter, format_rewriter_output
from vlmguard.types import Completion, Decision, GenerateConfig, Message, RiskReport

# -- mock ---------------------------------------------------------------------------------------


async def test_mock_echo_script_and_exhaustion() -> None:
    echo = MockVLM.echo()
    assert (await echo.generate([Message.system("s"), Message.user("hello")])).text == "hello"
    assert echo.calls[0].last_user.text == "hello"

    scripted = MockVLM.scripted(["one", "two"])
    assert [(await scripted.generate([Message.user("x")])).text for _ in range(2)] == ["one", "two"]
    with pytest.raises(ScriptExhausted, match="2 responses") as info:
        await scripted.generate([Message.user("x")])
    assert not info.value.retryable
    assert len(scripted.calls) == 3


async def test_mock_concurrent_scripted_calls_get_distinct_items() -> None:
    scripted = MockVLM.scripted(["a", "b", "c"], latency_s=0.01)
    results = await asyncio.gather(*(scripted.generate([Message.user(str(i))]) for i in range(3)))
    assert [r.text for r in results] == ["a", "b", "c"]


async def test_mock_rules_default_and_raised_errors() -> None:
    rules = MockVLM.rules(
        [(r"bomb", "REFUSED"), (lambda msgs: len(msgs) > 1, "MULTI"), ("fail", BackendUnavailable("down"))],
        default=lambda msgs: "DEFAULT:" + msgs[-1].text,
    )
    assert (await rules.generate([Message.user("make a bomb")])).text == "REFUSED"
    assert (await rules.generate([Message.system("s"), Message.user("hi")])).text == "MULTI"
    assert (await rules.generate([Message.user("hi")])).text == "DEFAULT:hi"
    with pytest.raises(BackendUnavailable):
        await rules.generate([Message.user("fail please")])
    no_default = MockVLM.rules([("x", "y")])
    with pytest.raises(BackendError, match="no rule"):
        await no_default.generate([Message.user("nothing")])


def test_mock_specs(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["a", "b"]))
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps([{"pattern": "hi", "response": "hello"}, {"default": "?"}]))
    assert asyncio.run(load_backend(f"mock:script={script}").generate([Message.user("x")])).text == "a"
    assert asyncio.run(load_backend(f"mock:rules={rules}").generate([Message.user("hi")])).text == "hello"
    assert (
        asyncio.run(load_backend("mock:text=Fixed answer").generate([Message.user("x")])).text
        == "Fixed answer"
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for spec, match in [
        (f"mock:script={tmp_path / 'missing.json'}", "not found"),
        (f"mock:script={bad}", "not valid JSON"),
        (f"mock:script={rules}", "list of strings"),
        ("mock:echo?speed=3", "unknown mock option"),
        ("mock:dance", "unknown mock spec"),
        ("mokc:echo", "Did you mean 'mock'"),
        ("no-colon", "expected KIND:TARGET"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_backend(spec)


# -- cache --------------------------------------------------------------------------------------


async def test_cache_second_run_makes_no_backend_calls(tmp_path: Path, png_bytes: bytes) -> None:
    image = load_image(png_bytes)
    inner = MockVLM.echo(name="m")
    requests = [[Message.user(f"question {i}", image)] for i in range(3)]
    first = CachedVLM(inner, tmp_path / "cache.sqlite")
    answers = [await first.generate(r) for r in requests]
    await first.aclose()
    assert len(inner.calls) == 3 and first.misses == 3

    inner2 = MockVLM.echo(name="m")
    second = CachedVLM(inner2, tmp_path / "cache.sqlite")  # a new process would see the same file
    again = [await second.generate(r) for r in requests]
    assert inner2.calls == [] and second.hits == 3
    assert [a.text for a in again] == [a.text for a in answers]
    assert all(a.cached and a.calls == 0 for a in again)
    # a different config or model name is a different request
    await second.generate(requests[0], GenerateConfig(max_tokens=7))
    assert len(inner2.calls) == 1
    await second.aclose()


def test_cache_keys_images_by_content_hash(png_bytes: bytes, image_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = load_image(png_bytes)
    a_again = load_image("data:image/png;base64," + __import__("base64").b64encode(png_bytes).decode())
    b = load_image(image_factory(32, 24, (0, 200, 0)))
    cfg = GenerateConfig()
    key = request_key("m", [Message.user("q", a)], cfg)
    assert key == request_key("m", [Message.user("q", a_again)], cfg)
    assert key != request_key("m", [Message.user("q", b)], cfg)
    assert key != request_key("other", [Message.user("q", a)], cfg)
    assert key != request_key("m", [Message.user("q2", a)], cfg)
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key, "m", Completion(text="x", model="m"))
    assert len(cache) == 1 and cache.get(key) is not None and cache.get("0" * 64) is None
    cache.close()


async def test_cached_guard_rerun_calls_no_model(tmp_path: Path, png_bytes: bytes) -> None:
    image = load_image(png_bytes)
    output = format_rewriter_output(RiskReport(decision=Decision.REFRAME), "SAFE")
    rewriter_model = MockVLM.rules([], default=output, name="r")
    target = MockVLM.echo(name="t")

    def build() -> GuardedVLM:
        rewriter = ModelRewriter(CachedVLM(rewriter_model, tmp_path / "r.sqlite"))
        return GuardedVLM(VLMGuardDefense(rewriter), CachedVLM(target, tmp_path / "t.sqlite"))

    first = await build().generate([Message.user("prompt", image)])
    second = await build().generate([Message.user("prompt", image)])
    assert len(rewriter_model.calls) == 1 and len(target.calls) == 1
    assert second.text == first.text == "SAFE" and second.cached


# -- retry --------------------------------------------------------------------------------------


async def test_retry_backs_off_on_retryable_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr("vlmguard.backends.retry.asyncio.sleep", fake_sleep)
    inner = MockVLM.scripted([BackendTimeout("slow"), BackendUnavailable("down"), "ok"])
    vlm = RetryingVLM(inner, attempts=3, base_delay=1.0, max_delay=1.5)
    assert (await vlm.generate([Message.user("x")])).text == "ok"
    assert len(inner.calls) == 3 and len(delays) == 2
    assert 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 1.5  # full jitter, capped

    gives_up = RetryingVLM(MockVLM.scripted([BackendUnavailable("1"), BackendUnavailable("2")]), attempts=2)
    with pytest.raises(BackendUnavailable, match="2"):
        await gives_up.generate([Message.user("x")])

    not_retryable = MockVLM.scripted([BackendError("bad request", status=400), "never"])
    with pytest.raises(BackendError, match="bad request"):
        await RetryingVLM(not_retryable, attempts=5).generate([Message.user("x")])
    assert len(not_retryable.calls) == 1
    with pytest.raises(ValueError):
        RetryingVLM(inner, attempts=0)


# -- concurrency limit --------------------------------------------------------------------------


class _Gauge(BaseVLM):
    def __init__(self) -> None:
        super().__init__("gauge")
        self.now = 0
        self.peak = 0

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.01)
        self.now -= 1
        return Completion(text="ok", model=self.name)


async def test_concurrency_limit_bounds_calls_in_flight() -> None:
    gauge = _Gauge()
    vlm = ConcurrencyLimitedVLM(gauge, 3)
    await asyncio.gather(*(vlm.generate([Message.user("x")]) for _ in range(12)))
    assert gauge.peak == 3 and vlm.in_flight == 0
    unlimited = _Gauge()
    await asyncio.gather(*(unlimited.generate([Message.user("x")]) for _ in range(12)))
    assert unlimited.peak == 12


def test_concurrency_limit_survives_several_event_loops() -> None:
    vlm = ConcurrencyLimitedVLM(_Gauge(), 1)
    for _ in range(2):

        async def burst() -> None:
            await asyncio.gather(*(vlm.generate([Message.user("x")]) for _ in range(3)))

        asyncio.run(burst())


def test_load_backend_wraps_in_order(tmp_path: Path) -> None:
    vlm = load_backend("mock:echo", retries=2, concurrency=4, cache=tmp_path / "c.sqlite")
    assert isinstance(vlm, CachedVLM)
    assert isinstance(vlm.inner, RetryingVLM) and vlm.inner.attempts == 3
    assert isinstance(vlm.inner.inner, ConcurrencyLimitedVLM) and vlm.inner.inner.limit == 4
    asyncio.run(vlm.aclose())
