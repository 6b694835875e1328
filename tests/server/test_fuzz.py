"""Fuzz the chat request schema with hypothesis: the proxy never answers 500 and always with a proper body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_helpers import config, data_uri, mock_rewriter, tiny_png

from vlmguard.server.app import create_app
from vlmguard.server.fake_upstream import FakeUpstream

TINY_PNG = data_uri(tiny_png())
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
urls = st.one_of(
    st.just(TINY_PNG),
    st.just("data:image/png;base64,AAAA"),
    st.just("data:image/jpeg;base64," + TINY_PNG.split(",", 1)[1]),
    st.just("http://127.0.0.1/x.png"),
    st.just("https://example.com/a.png"),
    st.text(max_size=30),
    st.from_regex(r"data:[a-z/]{0,12};base64,[A-Za-z0-9+/=]{0,24}", fullmatch=True),
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(st.text(max_size=40), json_values)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.one_of(
                urls,
                st.fixed_dictionaries(
                    {"url": st.one_of(urls, json_values)},
                    optional={"detail": st.one_of(st.sampled_from(["low", "high", "auto"]), json_values)},
                ),
                json_values,
            ),
        }
    ),
    st.dictionaries(st.sampled_from(["type", "text", "image_url", "input_audio"]), json_values, max_size=3),
    json_values,
)
roles = st.one_of(
    st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]), json_values
)
messages = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": st.one_of(st.text(max_size=60), st.none(), st.lists(parts, max_size=4), json_values),
        "name": json_values,
        "tool_calls": json_values,
    },
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.text(max_size=12), json_values),
        "messages": st.one_of(st.lists(messages, max_size=4), json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "temperature": json_values,
        "extra_field": json_values,
    },
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(
        config(rate_limit=None, limits={"max_images": 3, "max_prompt_chars": 200}),
        rewriter=mock_rewriter(),
        upstream_transport=httpx.ASGITransport(app=FakeUpstream()),
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def check(response: Any) -> None:
    assert response.status_code < 500 or response.status_code in (502, 504), response.text
    if response.status_code >= 400:
        err = response.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and isinstance(err["message"], str)
        assert "Traceback" not in response.text
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]")
    else:
        assert response.json()["choices"][0]["message"]["role"] == "assistant"


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_structured_bodies_never_500(client: TestClient, body: dict[str, Any]) -> None:
    check(client.post("/v1/chat/completions", content=json.dumps(body)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_raw_bodies_never_500(client: TestClient, raw: bytes) -> None:
    check(client.post("/v1/chat/completions", content=raw))


def test_valid_multimodal_shapes_pass(client: TestClient) -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": TINY_PNG},
                    {"type": "image_url", "image_url": {"url": TINY_PNG}},
                    {"type": "text", "text": "two images"},
                ],
            }
        ],
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: two images [images: 2]"


def test_odd_parts_in_non_user_messages(client: TestClient) -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "assistant", "content": [{"type": "refusal", "text": 5, "refusal": "no"}]},
            {"role": "tool", "content": [{"type": "text", "text": "tool output"}], "tool_call_id": "c1"},
            {"role": "user", "content": "ok"},
        ],
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
