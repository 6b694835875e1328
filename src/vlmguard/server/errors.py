"""OpenAI-style error bodies and the one exception the proxy raises for a request it answers with an error.

Every error the proxy returns has the body ``{"error": {"message", "type", "param", "code"}}`` that
OpenAI clients parse, and a status code that says whose fault it was: 400 bad input, 401 missing or
wrong API key, 413 body too large, 429 rate limited, 502 upstream failure, 504 timeout. Messages
never carry a traceback, a secret or image bytes.
"""

from __future__ import annotations

from typing import Any

from vlmguard.errors import VLMGuardError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "timeout_error",
}


STATUS_BY_CODE: dict[str, int] = {
    # the default code of each error class
    "vlmguard_error": 500,
    "invalid_config": 500,
    "invalid_input": 400,
    "invalid_image": 400,
    "unparseable_output": 502,
    "backend_error": 502,
    "backend_timeout": 504,
    "backend_unavailable": 502,
    "script_exhausted": 502,
    "unsupported": 400,
    # finer codes given where the error is raised
    "invalid_text": 400,
    "invalid_prompt": 400,
    "empty_prompt": 400,
    "prompt_too_long": 400,
    "no_user_message": 400,
    "image_too_large": 400,
    "remote_images_disabled": 400,
}
"""The HTTP status of each :class:`~vlmguard.errors.VLMGuardError` code (the OpenAI error type follows
from the status). A code not listed takes the status of its class's default code."""


def status_of(exc: VLMGuardError) -> int:
    """The HTTP status of ``exc``, by its code (never its message)."""
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for cls in type(exc).__mro__:
        default = cls.__dict__.get("code")
        if isinstance(default, str) and default in STATUS_BY_CODE:
            return STATUS_BY_CODE[default]
    return 500


class ProxyError(Exception):
    """A request the proxy answers with an OpenAI error body.

    ``status`` is the HTTP status; ``code`` a stable machine-readable reason (``too_many_images``,
    ``invalid_api_key``...); ``param`` the request field at fault, where there is one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type or ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error body."""
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def proxy_error(exc: VLMGuardError, *, param: str | None = None) -> ProxyError:
    """The :class:`ProxyError` answering ``exc``: status by its code, the code passed on as the OpenAI
    error ``code``, ``param`` from the error (an input error naming its field) unless given.

    A server-side failure (5xx) says only its code: its message may describe the guard's internals.
    """
    status = status_of(exc)
    message = str(exc) if status < 500 else f"the guard failed ({exc.code})"
    param = param or getattr(exc, "param", None)
    return ProxyError(status, message or exc.code, code=exc.code, param=param)
