"""The one error hierarchy of vlmguard.

Every error a user can cause or meet is a :class:`VLMGuardError`; the CLI turns it into one
readable line and a non-zero exit code, the server into an OpenAI error body.
"""

from __future__ import annotations


class VLMGuardError(Exception):
    """Base class of every error vlmguard raises on purpose."""


class ConfigError(VLMGuardError):
    """A configuration value, spec string or option is invalid or unknown."""


class InputError(VLMGuardError):
    """User input (prompt, image, request) is invalid.

    ``code`` is a short machine-readable reason (``prompt_too_long``, ``empty_prompt``...) that
    front ends pass on (the proxy as the OpenAI error ``code``); ``None`` when there is none.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ImageError(InputError):
    """An image is missing, corrupt, of an unsupported format or over a limit."""


class ParseError(VLMGuardError):
    """Model output does not follow the expected format."""


class BackendError(VLMGuardError):
    """A model backend failed.

    ``retryable`` tells the retry wrapper whether trying again may help (timeouts, 5xx,
    connection errors) or not (bad request, authentication, exhausted scripts).
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class BackendTimeout(BackendError):
    """A backend did not answer in time."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=True, status=status)


class BackendUnavailable(BackendError):
    """A backend cannot be reached (connection refused, DNS failure, 5xx)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=True, status=status)


class ScriptExhausted(BackendError):
    """A scripted mock backend was called more often than its script allows."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class UnsupportedError(VLMGuardError):
    """The requested combination is not supported (e.g. a white-box defence on an API model)."""
