"""Security tests of the proxy: keys, rate limits, size limits, secrets and image bytes kept out of logs."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import pytest
from proxy_helpers import UPSTREAM_KEY, chat_body, config, data_uri, mock_rewriter, proxy_client

from vlmguard.errors import ConfigError
from vlmguard.server.app import create_app
from vlmguard.server.auth import KeyVerifier, check_hash_format, hash_key, verify_key
from vlmguard.server.config import ProxyConfig
from vlmguard.server.ratelimit import RateLimiter


@pytest.fixture(scope="module")
def key_hashes() -> dict[str, str]:
    return {"alice": hash_key("alice-key-123", algo="scrypt"), "bob": hash_key("bob-key-456", algo="sha256")}


def keyed_config(key_hashes: dict[str, str], **extra: object) -> ProxyConfig:
    return config(api_keys=[{"name": n, "hash": h} for n, h in key_hashes.items()], **extra)


def test_hashes_verify_only_their_key() -> None:
    for algo in ("scrypt", "sha256"):
        stored = hash_key("s3cret", algo=algo)
        assert "s3cret" not in stored and check_hash_format(stored) == stored
        assert verify_key("s3cret", stored) and not verify_key("s3cret!", stored)
        assert hash_key("s3cret", algo=algo) != stored  # salted
    with pytest.raises(ConfigError):
        check_hash_format("plain-text-key")
    with pytest.raises(ConfigError):
        hash_key("")


def test_verifier_caches_accepted_keys_only(key_hashes: dict[str, str]) -> None:
    verifier = KeyVerifier(key_hashes)
    assert verifier.verify("alice-key-123") == "alice"
    assert verifier.cached("alice-key-123")[1] == "alice"
    assert verifier.verify("wrong") is None and verifier.cached("wrong")[1] is None
    assert verifier.verify("bob-key-456") == "bob"


async def test_key_required_wrong_key_401_right_key_200(key_hashes: dict[str, str]) -> None:
    async with proxy_client(keyed_config(key_hashes)) as (client, fake, _):
        missing = await client.post("/v1/chat/completions", json=chat_body("hi"))
        wrong = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"Authorization": "Bearer nope"}
        )
        models = await client.get("/v1/models")
        ok = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"Authorization": "Bearer alice-key-123"}
        )
        ok2 = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"x-api-key": "bob-key-456"}
        )
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert wrong.json()["error"]["type"] == "authentication_error"
    assert models.status_code == 401
    assert ok.status_code == 200 and ok2.status_code == 200
    assert fake.calls == 2
    assert fake.headers[-1]["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the client's key is not forwarded


async def test_rate_limit_429_per_key(key_hashes: dict[str, str]) -> None:
    cfg = keyed_config(key_hashes, rate_limit={"requests_per_minute": 1, "burst": 2})
    async with proxy_client(cfg) as (client, _, _):
        alice = {"Authorization": "Bearer alice-key-123"}
        codes = [
            (await client.post("/v1/chat/completions", json=chat_body("hi"), headers=alice)).status_code
            for _ in range(3)
        ]
        limited = await client.post("/v1/chat/completions", json=chat_body("hi"), headers=alice)
        bob = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"x-api-key": "bob-key-456"}
        )
    assert codes == [200, 200, 429]
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limit_error"
    assert int(limited.headers["retry-after"]) >= 1
    assert bob.status_code == 200  # buckets are per key


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(
        config(rate_limit={"requests_per_minute": 60, "burst": 1}).rate_limit, clock=lambda: now[0]
    )
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == pytest.approx(1.0)
    now[0] = 1.01
    assert limiter.acquire("k") == 0.0
    assert RateLimiter(None).acquire("k") == 0.0


async def test_body_too_large_is_413(png_bytes: bytes) -> None:
    async with proxy_client(config(limits={"max_body_bytes": 2048})) as (client, fake, _):
        big = await client.post("/v1/chat/completions", json=chat_body("x" * 5000))

        async def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b"x" * 1000

        streamed = await client.post("/v1/chat/completions", content=chunks())
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert streamed.status_code == 413
    assert fake.calls == 0


async def test_image_count_pixel_and_prompt_limits(image_factory, png_bytes: bytes) -> None:
    cfg = config(limits={"max_images": 2, "max_image_pixels": 10_000, "max_prompt_chars": 50})
    async with proxy_client(cfg) as (client, fake, _):
        many = await client.post("/v1/chat/completions", json=chat_body("x", *[data_uri(png_bytes)] * 3))
        huge = await client.post(
            "/v1/chat/completions", json=chat_body("x", data_uri(image_factory(width=200, height=100)))
        )
        long = await client.post("/v1/chat/completions", json=chat_body("y" * 51))
        ok = await client.post("/v1/chat/completions", json=chat_body("y" * 50, data_uri(png_bytes)))
    assert many.status_code == 400 and many.json()["error"]["code"] == "too_many_images"
    assert huge.status_code == 400 and huge.json()["error"]["code"] == "image_too_large"
    assert "pixels" in huge.json()["error"]["message"]
    assert long.status_code == 400 and long.json()["error"]["code"] == "prompt_too_long"
    assert ok.status_code == 200 and fake.calls == 1


async def test_cors_off_by_default_and_on_when_configured() -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with proxy_client() as (client, _, _):
        off = await client.options("/v1/chat/completions", headers=preflight)
        off_post = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"Origin": "https://x.y"}
        )
    assert "access-control-allow-origin" not in off.headers
    assert "access-control-allow-origin" not in off_post.headers
    cfg = config(cors={"enabled": True, "allow_origins": ["https://app.example"]})
    async with proxy_client(cfg) as (client, _, _):
        on = await client.options("/v1/chat/completions", headers=preflight)
        other = await client.options(
            "/v1/chat/completions", headers={**preflight, "Origin": "https://evil.example"}
        )
    assert on.headers["access-control-allow-origin"] == "https://app.example"
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_upstream_key_never_in_responses_or_logs(
    caplog: pytest.LogCaptureFixture, png_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo_key(
        request: httpx.Request,
    ) -> httpx.Response:  # an upstream that leaks the key in its error text
        auth = request.headers["authorization"]
        return httpx.Response(400, json={"error": {"message": f"bad model for key {auth}", "type": "x"}})

    app = create_app(
        config(),
        rewriter=mock_rewriter(),
        upstream_transport=httpx.MockTransport(echo_key),
        upstream_key=UPSTREAM_KEY,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        responses = [
            await client.post("/v1/chat/completions", json=chat_body("hi", data_uri(png_bytes))),
            await client.post("/v1/chat/completions", json=chat_body("hi", stream=True)),
            await client.get("/v1/models"),
            await client.get("/metrics"),
            await client.get("/readyz"),
        ]
    assert responses[0].status_code == 400 and "***" in responses[0].json()["error"]["message"]
    for response in responses:
        assert UPSTREAM_KEY not in response.text
    assert UPSTREAM_KEY not in caplog.text


async def test_no_image_bytes_in_logs(caplog: pytest.LogCaptureFixture, image_factory) -> None:
    caplog.set_level(logging.DEBUG)
    png = image_factory(width=64, height=64, text="secret")
    b64 = base64.b64encode(png).decode()
    async with proxy_client(rewriter=mock_rewriter()) as (client, _, _):
        for text in ("hi", "REFRAMEME", "REFUSEME", "FAILME", "GARBLEME"):
            await client.post("/v1/chat/completions", json=chat_body(text, data_uri(png)))
        await client.post("/v1/chat/completions", json=chat_body("x", "data:image/png;base64," + b64[:-8]))
    assert caplog.records  # the proxy does log
    assert b64[:40] not in caplog.text and b64[-40:] not in caplog.text
    assert "base64," not in caplog.text


def test_config_is_strict_and_layered(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text("upstream:\n  urls: [http://gpu:8000/v1/]\nlimits:\n  max_images: 3\n", encoding="utf-8")
    cfg = ProxyConfig.load(
        path,
        env={"VLMGUARD_PROXY__LIMITS__MAX_IMAGES": "5", "VLMGUARD_PROXY__FAIL_POLICY": "fail_open"},
        overrides={"server.port": 9999},
    )
    assert cfg.upstream.urls == ["http://gpu:8000/v1"]
    assert cfg.limits.max_images == 5 and cfg.fail_policy == "fail_open" and cfg.server.port == 9999
    assert cfg.cors.enabled is False and cfg.remote_images.enabled is False and cfg.extension is True
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstream:\n  urls: [http://gpu/v1]\n  api_key: sk-123\nlimitz: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        ProxyConfig.load(bad, env={})
    assert "limitz: unknown key" in str(info.value) and "api_key_env" in str(info.value)
    assert "sk-123" not in str(info.value)
    with pytest.raises(ConfigError, match="allowlist"):
        ProxyConfig.from_dict({"remote_images": {"enabled": True}})
    with pytest.raises(ConfigError, match="credentials"):
        ProxyConfig.from_dict({"upstream": {"urls": ["http://user:pw@gpu/v1"]}})
    with pytest.raises(ConfigError, match="no upstream"):
        ProxyConfig.from_dict({}).require_upstream()
    with pytest.raises(ConfigError, match="hash"):
        ProxyConfig.from_dict({"api_keys": [{"name": "a", "hash": "plaintext"}]})


async def test_upstream_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmguard.server.fake_upstream import FakeUpstream

    monkeypatch.setenv("MY_UPSTREAM_KEY", "sk-from-env")
    fake = FakeUpstream(api_key="sk-from-env")
    app = create_app(
        config(upstream={"urls": ["http://u/v1"], "api_key_env": "MY_UPSTREAM_KEY"}),
        rewriter=mock_rewriter(),
        upstream_transport=httpx.ASGITransport(app=fake),
    )
    assert "sk-from-env" not in app.state.config.model_dump_json()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        response = await client.post("/v1/chat/completions", json=chat_body("hi"))
    assert response.status_code == 200 and fake.calls == 1
    assert "sk-from-env" not in response.text


async def test_guessing_keys_is_rate_limited_before_hashing(key_hashes: dict[str, str]) -> None:
    import time

    async with proxy_client(keyed_config(key_hashes, rate_limit=None)) as (client, _, _):
        start = time.monotonic()
        codes = []
        for i in range(40):
            response = await client.post(
                "/v1/chat/completions", json=chat_body("hi"), headers={"Authorization": f"Bearer guess-{i}"}
            )
            codes.append(response.status_code)
        elapsed = time.monotonic() - start
    assert set(codes) == {401, 429} and codes[:20] == [401] * 20
    assert codes.count(401) <= 20 + elapsed + 1  # burst 20, then one slow hash per second per address
    async with proxy_client(keyed_config(key_hashes, rate_limit=None)) as (client, _, _):
        await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"x-api-key": "alice-key-123"}
        )
        for i in range(25):
            await client.post("/v1/chat/completions", json=chat_body("hi"), headers={"x-api-key": f"g{i}"})
        known = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"x-api-key": "alice-key-123"}
        )
    assert known.status_code == 200  # ... but a key already accepted is not affected
