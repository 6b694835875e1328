"""Typed errors: the proxy answers a guard error by its code (status and OpenAI type), never its text."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from proxy_helpers import chat_body, config, data_uri, proxy_client, tiny_png

from vlmguard.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    ImageError,
    InputError,
    ParseError,
    ScriptExhausted,
    UnsupportedError,
    VLMGuardError,
)
from vlmguard.server.errors import proxy_error, status_of
from vlmguard.types import ImageData, Rewrite


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (VLMGuardError("x"), "vlmguard_error", 500),
        (ConfigError("x"), "invalid_config", 500),
        (InputError("x"), "invalid_input", 400),
        (ImageError("x"), "invalid_image", 400),
        (ParseError("x"), "unparseable_output", 502),
        (BackendError("x"), "backend_error", 502),
        (BackendTimeout("x"), "backend_timeout", 504),
        (BackendUnavailable("x"), "backend_unavailable", 502),
        (ScriptExhausted("x"), "script_exhausted", 502),
        (UnsupportedError("x"), "unsupported", 400),
    ],
)
def test_every_error_class_has_a_code_and_a_status(error: VLMGuardError, code: str, status: int) -> None:
    assert error.code == code and status_of(error) == status


def test_the_status_follows_the_code_not_the_message() -> None:
    misleading = ImageError("pixels over the limit, upstream timeout", code="invalid_image")
    assert status_of(misleading) == 400 and proxy_error(misleading).code == "invalid_image"
    too_large = ImageError("nothing in these words says what happened", code="image_too_large")
    assert proxy_error(too_large).code == "image_too_large"
    # a code the table does not know takes its class's status
    assert status_of(InputError("x", code="some_new_reason")) == 400
    assert status_of(BackendError("x", code="some_new_failure")) == 502
    timeout = proxy_error(BackendTimeout("the rewriter at http://internal:9000 timed out"))
    assert timeout.status == 504 and timeout.error_type == "timeout_error"
    assert "internal" not in timeout.message  # a server-side failure says only its code


def test_input_errors_pass_their_param() -> None:
    err = proxy_error(InputError("prompt is empty", code="empty_prompt", param="messages.2.content"))
    assert err.body()["error"] == {
        "message": "prompt is empty",
        "type": "invalid_request_error",
        "param": "messages.2.content",
        "code": "empty_prompt",
    }


class RefusingInputRewriter:
    """A rewriter that finds the input itself invalid."""

    name = "picky"

    async def rewrite(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        raise InputError("this rewriter reads English only", code="unsupported_language")


async def test_an_input_error_of_the_rewriter_is_a_400_with_its_code() -> None:
    async with proxy_client(config(), rewriter=RefusingInputRewriter()) as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=chat_body("bonjour"))
    assert response.status_code == 400 and fake.calls == 0
    assert response.json()["error"]["code"] == "unsupported_language"


async def test_image_limits_answer_with_the_image_error_code() -> None:
    cfg = config(limits={"max_image_pixels": 10})
    async with proxy_client(cfg) as (client, _, _):
        response = await client.post("/v1/chat/completions", json=chat_body("x", data_uri(tiny_png(8, 8))))
    err = response.json()["error"]
    assert response.status_code == 400 and err["code"] == "image_too_large"
    assert err["param"] == "messages.0.content.0.image_url"
