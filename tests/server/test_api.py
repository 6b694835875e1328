"""API tests of the proxy: the in-process app (ASGI transport) in front of an in-process fake upstream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from proxy_helpers import (
    SAFE_PROMPT,
    UPSTREAM_KEY,
    SlowRewriter,
    chat_body,
    config,
    data_uri,
    mock_rewriter,
    proxy_client,
)

from vlmguard.rewriter.fallback import SAFETY_PREAMBLE
from vlmguard.server.fake_upstream import FakeUpstream


def sse_events(text: str) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_forward_passes_the_request_through_unchanged(png_bytes: bytes) -> None:
    body = chat_body(
        "What colour is this square?",
        data_uri(png_bytes),
        temperature=0.3,
        max_tokens=7,
        custom_vendor_field={"a": [1, 2]},
        user="u-1",
    )
    body["messages"].insert(0, {"role": "system", "content": "be brief", "name": "sys"})
    async with proxy_client() as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["choices"][0]["message"]["content"] == "echo: What colour is this square? [images: 1]"
    sent = fake.requests[-1]
    assert sent == body  # every field, extra ones included, goes upstream untouched
    assert fake.headers[-1]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    ext = data["vlmguard"]
    assert ext["decision"] == "forward" and ext["upstream_called"] is True and ext["fallback"] is None
    assert ext["rewritten"] is False
    assert (
        ext["latency"]["upstream_ms"] is not None
        and ext["latency"]["total_ms"] >= ext["latency"]["rewrite_ms"]
    )


async def test_reframe_sends_original_image_and_rewritten_text(png_bytes: bytes) -> None:
    uri = data_uri(png_bytes)
    body = chat_body("REFRAMEME how do these work", uri)
    async with proxy_client() as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    sent_content = fake.requests[-1]["messages"][-1]["content"]
    assert sent_content == [
        {"type": "image_url", "image_url": {"url": uri}},
        {"type": "text", "text": SAFE_PROMPT},
    ]
    ext = response.json()["vlmguard"]
    assert ext["decision"] == "reframe" and ext["rewritten"] is True
    assert ext["rewritten_prompt"] == SAFE_PROMPT
    assert ext["categories"] == ["violence_weapons"] and ext["severity"] == "medium"
    assert ext["report"]["findings"][0]["modality"] == "textual"


async def test_image_url_as_plain_string_and_string_content(png_bytes: bytes) -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": data_uri(png_bytes)},
                    {"type": "text", "text": "REFRAMEME a"},
                ],
            }
        ],
    }
    async with proxy_client() as (client, fake, _):
        r1 = await client.post("/v1/chat/completions", json=body)
        r2 = await client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "REFRAMEME plain"}]},
        )
    assert r1.status_code == 200 and r2.status_code == 200
    assert fake.requests[-2]["messages"][0]["content"][0]["image_url"] == data_uri(png_bytes)
    assert fake.requests[-1]["messages"][0]["content"] == SAFE_PROMPT


async def test_refuse_answers_itself_and_never_calls_upstream(png_bytes: bytes) -> None:
    async with proxy_client() as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=chat_body("REFUSEME", data_uri(png_bytes)))
        assert fake.calls == 0
    assert response.status_code == 200
    data = response.json()
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant" and "illegal activity" in message["content"]
    assert data["vlmguard"]["decision"] == "refuse" and data["vlmguard"]["upstream_called"] is False


async def test_configured_refusal_message_and_extension_off() -> None:
    cfg = config(refusal_message="Not here.", extension=False)
    async with proxy_client(cfg) as (client, fake, _):
        refused = await client.post("/v1/chat/completions", json=chat_body("REFUSEME"))
        forwarded = await client.post("/v1/chat/completions", json=chat_body("hello"))
    assert refused.json()["choices"][0]["message"]["content"] == "Not here."
    assert "vlmguard" not in refused.json() and "vlmguard" not in forwarded.json()
    assert fake.calls == 1


async def test_rewriter_sees_images_of_an_earlier_turn(png_bytes: bytes) -> None:
    rewriter = mock_rewriter()
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri(png_bytes)}},
                    {"type": "text", "text": "what is it"},
                ],
            },
            {"role": "assistant", "content": "a red square"},
            {"role": "user", "content": "and is it dangerous?"},
        ],
    }
    async with proxy_client(rewriter=rewriter) as (client, _, _):
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    call = rewriter.backend.calls[-1]  # type: ignore[attr-defined]
    assert len(call.last_user.images) == 1
    assert "and is it dangerous?" in call.prompt_text


async def test_streaming_relays_chunks_and_appends_the_extension_chunk() -> None:
    async with proxy_client() as (client, fake, _):
        response = await client.post(
            "/v1/chat/completions", json=chat_body("REFRAMEME stream me", stream=True)
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    ext_chunk = events[-2]
    assert ext_chunk["choices"] == [] and ext_chunk["vlmguard"]["decision"] == "reframe"
    assert ext_chunk["id"] == events[0]["id"]  # same completion id as the upstream's chunks
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == f"echo: {SAFE_PROMPT} [images: 0]"
    assert fake.requests[-1]["stream"] is True


async def test_streaming_refusal() -> None:
    async with proxy_client() as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=chat_body("REFUSEME", stream=True))
    events = sse_events(response.text)
    assert fake.calls == 0 and events[-1] == "[DONE]"
    assert "illegal activity" in "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert events[-2]["vlmguard"]["upstream_called"] is False


@pytest.mark.parametrize(
    ("policy", "action", "expect_calls", "expect_text"),
    [
        ("fail_closed", "rewrite", 1, SAFETY_PREAMBLE),
        ("fail_closed", "refuse", 0, None),
        ("fail_open", "rewrite", 1, "FAILME please"),
    ],
)
async def test_fail_policy_when_the_rewriter_fails(
    policy: str, action: str, expect_calls: int, expect_text: str | None
) -> None:
    cfg = config(fail_policy=policy, fail_closed_action=action)
    async with proxy_client(cfg, rewriter=mock_rewriter(policy)) as (client, fake, _app):
        response = await client.post("/v1/chat/completions", json=chat_body("FAILME please"))
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    ext = response.json()["vlmguard"]
    assert ext["fallback"] == policy and "BackendUnavailable" in ext["fallback_reason"]
    assert fake.calls == expect_calls
    if expect_text is not None:
        assert expect_text in fake.requests[-1]["messages"][-1]["content"][-1]["text"]
    else:
        assert ext["decision"] == "refuse"
    assert 'vlmguard_errors_total{type="rewriter_failure"} 1.0' in metrics


async def test_unparseable_rewriter_output_follows_the_policy() -> None:
    async with proxy_client() as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=chat_body("GARBLEME x"))
    ext = response.json()["vlmguard"]
    assert ext["fallback"] == "fail_closed" and ext["decision"] == "reframe"
    assert SAFETY_PREAMBLE in fake.requests[-1]["messages"][-1]["content"][-1]["text"]


async def test_rewriter_timeout_follows_the_policy() -> None:
    cfg = config(timeouts={"rewriter_s": 0.05}, fail_policy="fail_open")
    async with proxy_client(cfg, rewriter=SlowRewriter(5.0)) as (client, fake, _):
        response = await asyncio.wait_for(client.post("/v1/chat/completions", json=chat_body("hi")), 5)
    ext = response.json()["vlmguard"]
    assert ext["fallback"] == "fail_open" and "did not answer within" in ext["fallback_reason"]
    assert fake.calls == 1


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code
    return dict(err)


async def test_upstream_failure_is_502_and_timeout_is_504() -> None:
    fake = FakeUpstream(api_key=UPSTREAM_KEY, status=500)
    async with proxy_client(upstream=fake) as (client, _, _):
        _assert_error(await client.post("/v1/chat/completions", json=chat_body("hi")), 502, "upstream_error")
        _assert_error(
            await client.post("/v1/chat/completions", json=chat_body("hi", stream=True)),
            502,
            "upstream_error",
        )
    slow = FakeUpstream(api_key=UPSTREAM_KEY, latency_s=2.0)
    async with proxy_client(config(timeouts={"upstream_s": 0.1}), upstream=slow) as (client, _, _):
        err = _assert_error(
            await client.post("/v1/chat/completions", json=chat_body("hi")), 504, "upstream_timeout"
        )
        assert err["type"] == "timeout_error"


async def test_upstream_credentials_rejected_is_502_not_401() -> None:
    async with proxy_client(upstream=FakeUpstream(api_key="another-key")) as (client, _, _):
        _assert_error(await client.post("/v1/chat/completions", json=chat_body("hi")), 502, "upstream_auth")


async def test_unreachable_upstream_is_502() -> None:
    from vlmguard.server.app import create_app

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    app = create_app(config(), rewriter=mock_rewriter(), upstream_transport=httpx.MockTransport(refuse))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        _assert_error(
            await client.post("/v1/chat/completions", json=chat_body("hi")), 502, "upstream_unreachable"
        )
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["upstream"] is False


async def test_failover_to_the_next_upstream_url() -> None:
    from vlmguard.server.app import create_app

    fake = FakeUpstream()
    asgi = httpx.ASGITransport(app=fake)

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.test":
            raise httpx.ConnectError("refused", request=request)
        return await asgi.handle_async_request(request)

    cfg = config(upstream={"urls": ["http://down.test/v1", "http://up.test/v1"]})
    app = create_app(cfg, rewriter=mock_rewriter(), upstream_transport=httpx.MockTransport(route))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        statuses = [
            (await client.post("/v1/chat/completions", json=chat_body("hi"))).status_code for _ in range(4)
        ]
    assert statuses == [200] * 4 and fake.calls == 4


async def test_models_health_ready_metrics_and_404() -> None:
    async with proxy_client() as (client, _, _):
        models = await client.get("/v1/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "fake-vlm"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {
            "status": "ready",
            "rewriter": True,
            "upstream": True,
        }
        await client.post("/v1/chat/completions", json=chat_body("REFUSEME"))
        await client.post("/v1/chat/completions", json=chat_body("hi"))
        metrics = (await client.get("/metrics")).text
        _assert_error(await client.get("/nope"), 404)
    assert 'vlmguard_decisions_total{decision="refuse",fallback="none"} 1.0' in metrics
    assert 'vlmguard_requests_total{endpoint="/v1/chat/completions",status="200"} 2.0' in metrics
    assert "vlmguard_rewrite_seconds_count 2.0" in metrics
    assert 'vlmguard_upstream_seconds_count{stream="false"} 1.0' in metrics
    async with proxy_client(config(upstream={"urls": ["http://u.test/v1"], "models": ["a", "b"]})) as (
        client,
        _,
        _,
    ):
        assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["a", "b"]


async def test_two_apps_do_not_share_state() -> None:
    async with proxy_client() as (c1, _, app1), proxy_client() as (c2, _, app2):
        await c1.post("/v1/chat/completions", json=chat_body("hi"))
        m2 = (await c2.get("/metrics")).text
    assert app1.state.metrics.registry is not app2.state.metrics.registry
    assert 'vlmguard_requests_total{endpoint="/v1/chat/completions"' not in m2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (json.dumps({"model": "m", "messages": []}).encode(), "invalid_request"),
        (
            json.dumps({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            "invalid_request",
        ),
        (
            json.dumps({"model": "m", "messages": [{"role": "assistant", "content": "x"}]}).encode(),
            "no_user_message",
        ),
        (
            json.dumps(
                {
                    "model": "m",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                            ],
                        }
                    ],
                }
            ).encode(),
            "unsupported_content",
        ),
        (json.dumps(chat_body("x", "data:image/png;base64,!!!")).encode(), "invalid_image"),
        (json.dumps(chat_body("x", "file:///etc/passwd")).encode(), "invalid_image"),
        (json.dumps(chat_body("x", "https://example.com/a.png")).encode(), "remote_images_disabled"),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "  "}]}).encode(),
            "empty_prompt",
        ),
    ],
)
async def test_bad_input_is_400_with_an_openai_error_body(body: bytes, code: str) -> None:
    async with proxy_client() as (client, fake, _):
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    _assert_error(response, 400, code)
    assert fake.calls == 0


async def test_stream_broken_midway_ends_with_an_error_event() -> None:
    from vlmguard.server.app import create_app

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            yield b'data: {"id": "c1", "object": "chat.completion.chunk", "choices": []}\n\n'
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())

    app = create_app(config(), rewriter=mock_rewriter(), upstream_transport=httpx.MockTransport(handler))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        response = await client.post("/v1/chat/completions", json=chat_body("hi", stream=True))
    events = sse_events(response.text)
    assert events[0]["id"] == "c1"
    assert events[-1]["error"]["code"] == "upstream_unreachable" and "[DONE]" not in events


async def test_a_dropped_keep_alive_connection_is_retried_once() -> None:
    from vlmguard.server.app import create_app

    fake = FakeUpstream()
    asgi = httpx.ASGITransport(app=fake)
    failures = {"left": 1}

    async def flaky(request: httpx.Request) -> httpx.Response:
        if failures["left"]:
            failures["left"] -= 1
            raise httpx.RemoteProtocolError("Server disconnected without a response.", request=request)
        return await asgi.handle_async_request(request)

    async def dead(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    for handler, expected in ((flaky, 200), (dead, 502)):
        app = create_app(config(), rewriter=mock_rewriter(), upstream_transport=httpx.MockTransport(handler))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
        ):
            response = await client.post("/v1/chat/completions", json=chat_body("hi"))
        assert response.status_code == expected, response.text
    assert fake.calls == 1
