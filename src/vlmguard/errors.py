"""The one error hierarchy of vlmguard.

Every error a user can cause or meet is a :class:`VLMGuardError`; the CLI turns it into one
readable line and a non-zero exit code, the server into an OpenAI error body.

Every error carries ``code``, a short machine-readable reason (``prompt_too_long``,
``image_too_large``, ``backend_timeout``...). Each class has a default code, and a raise site may
give a more precise one. Front ends decide by the code, never by the message text: the proxy maps
codes to HTTP statuses and OpenAI error types (:mod:`vlmguard.server.errors`).
"""

from __future__ import annotations


class VLMGuardError(Exception):
    """Base class of every error vlmguard raises on purpose.

    ``code`` is the machine-readable reason; without one the class's default (:attr:`code`) stands.
    """

    code: str = "vlmguard_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(VLMGuardError):
    """A configuration value, spec string or option is invalid or unknown."""

    code = "invalid_config"


class InputError(VLMGuardError):
    """User input (prompt, image, request) is invalid.

    ``code`` names the reason (``prompt_too_long``, ``empty_prompt``, ``no_user_message``...);
    ``param`` the part of the input at fault where one can be named, as a dotted path into the
    conversation (``messages.2.content``), which the proxy passes on as the OpenAI error ``param``.
    """

    code = "invalid_input"

    def __init__(self, message: str = "", *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


class ImageError(InputError):
    """An image is missing, corrupt, of an unsupported format (``invalid_image``) or over a limit
    (``image_too_large``)."""

    code = "invalid_image"


class ParseError(VLMGuardError):
    """Model output does not follow the expected format."""

    code = "unparseable_output"


class BackendError(VLMGuardError):
    """A model backend failed.

    ``retryable`` tells the retry wrapper whether trying again may help (timeouts, 5xx,
    connection errors) or not (bad request, authentication, exhausted scripts).
    """

    code = "backend_error"

    def __init__(
        self,
        message: str = "",
        *,
        retryable: bool = False,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.status = status


class BackendTimeout(BackendError):
    """A backend did not answer in time."""

    code = "backend_timeout"

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message, retryable=True, status=status)


class BackendUnavailable(BackendError):
    """A backend cannot be reached (connection refused, DNS failure, 5xx)."""

    code = "backend_unavailable"

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message, retryable=True, status=status)


class ScriptExhausted(BackendError):
    """A scripted mock backend was called more often than its script allows."""

    code = "script_exhausted"

    def __init__(self, message: str = "") -> None:
        super().__init__(message, retryable=False)


class UnsupportedError(VLMGuardError):
    """The requested combination is not supported (e.g. a white-box defence on an API model)."""

    code = "unsupported"


__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ConfigError",
    "ImageError",
    "InputError",
    "ParseError",
    "ScriptExhausted",
    "UnsupportedError",
    "VLMGuardError",
]
