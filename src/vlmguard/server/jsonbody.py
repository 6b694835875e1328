"""Decoding a request body as JSON with its shape bounded before the parser runs.

The standard parser recurses once per nesting level and builds every element it reads: a body a
few kilobytes long can exhaust the stack or the memory. :func:`check_json_shape` scans the raw
bytes first (strings skipped by one regular expression, so a large base64 image costs one match)
and refuses a body nested deeper than ``max_depth`` or holding more than ``max_elements`` values;
only then does :func:`parse_json_body` hand the bytes to :func:`json.loads`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from vlmguard.server.errors import ProxyError

# a JSON string (escapes included), or one structural byte that opens, closes or separates values
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.S)
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


@dataclass(frozen=True)
class JSONLimits:
    """How deep and how large a request body may be."""

    max_depth: int = 32
    """Nested arrays and objects (a chat request needs 5: body, messages, message, content, part)."""
    max_elements: int = 100_000
    """Array elements and object members in the whole body."""


def check_json_shape(raw: bytes, limits: JSONLimits) -> None:
    """Raise a 400 ``invalid_json`` :class:`ProxyError` when ``raw`` nests or counts past ``limits``.

    The scan is a bound, not a validation: malformed JSON within the bounds is left to the parser.
    """
    depth = 0
    elements = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        first = token[0]
        if first in _OPEN:
            depth += 1
            elements += 1
            if depth > limits.max_depth:
                raise ProxyError(
                    400,
                    f"the request body nests deeper than {limits.max_depth} levels",
                    code="invalid_json",
                )
        elif first in _CLOSE:
            depth = max(0, depth - 1)
        elif first == ord(","):
            elements += 1
        if elements > limits.max_elements:
            raise ProxyError(
                400,
                f"the request body holds more than {limits.max_elements:,} JSON values",
                code="invalid_json",
            )


def parse_json_body(raw: bytes, limits: JSONLimits | None = None) -> Any:
    """``raw`` decoded as JSON after :func:`check_json_shape`; a 400 ``invalid_json`` when it is not JSON."""
    check_json_shape(raw, limits or JSONLimits())
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProxyError(400, "the request body is not valid JSON", code="invalid_json") from None
