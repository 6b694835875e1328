"""Request bodies the proxy must refuse cleanly: deep nesting, huge element counts, loose types."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from proxy_helpers import chat_body, config, mock_rewriter

from vlmguard.server.app import create_app
from vlmguard.server.errors import ProxyError
from vlmguard.server.fake_upstream import FakeUpstream
from vlmguard.server.jsonbody import JSONLimits, check_json_shape, parse_json_body


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(
        config(rate_limit=None),
        rewriter=mock_rewriter(),
        upstream_transport=httpx.ASGITransport(app=FakeUpstream()),
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _deep(depth: int) -> bytes:
    inner = b"[" * depth + b"]" * depth
    return b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + inner + b"}"


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deep_nesting_is_a_400_invalid_json_with_one_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/chat/completions", content=_deep(depth))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert "nests deeper" in response.json()["error"]["message"]
    assert len([r for r in caplog.records if r.name.startswith("vlmguard")]) <= 1
    # the connection is still good for the next request
    follow = client.post("/v1/chat/completions", json=chat_body("hello"))
    assert follow.status_code == 200


def test_nesting_inside_strings_does_not_count(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=chat_body("[" * 5000 + '\\"{' * 100))
    assert response.status_code == 200


def test_element_count_is_bounded() -> None:
    with pytest.raises(ProxyError) as exc:
        check_json_shape(b"[" + b"0," * 200 + b"0]", JSONLimits(max_depth=4, max_elements=100))
    assert exc.value.code == "invalid_json" and "more than 100" in exc.value.message
    assert parse_json_body(b"[" + b"0," * 50 + b"0]", JSONLimits(max_elements=100)) == [0] * 51


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("stream", 1),
        ("stream", "true"),
        ("n", "2"),
        ("n", 1.5),
        ("n", 0),
        ("max_tokens", "100"),
        ("max_tokens", True),
        ("temperature", "0.5"),
        ("temperature", 9),
        ("top_p", [1]),
        ("stop", 5),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("seed", "1"),
        ("logprobs", "no"),
        ("user", 7),
        ("stream_options", {"include_usage": "yes"}),
        ("model", 5),
    ],
)
def test_known_fields_are_strictly_typed(client: TestClient, field: str, value: object) -> None:
    body = chat_body("hello")
    body[field] = value
    response = client.post("/v1/chat/completions", content=json.dumps(body))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["param"].startswith(field)


def test_stream_yes_is_not_streamed(client: TestClient) -> None:
    body = chat_body("hello")
    body["stream"] = "yes"
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert not response.headers["content-type"].startswith("text/event-stream")


def test_valid_typed_fields_and_unknown_fields_pass(client: TestClient) -> None:
    body = chat_body(
        "hello", n=1, max_tokens=16, temperature=0, top_p=0.9, stop=["x"], seed=3, vendor_field={"a": [1]}
    )
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
