"""Server-sent events of the proxy: the upstream's stream relayed line by line, and refusals the
guard streams itself. Both end with one extra chunk just before ``data: [DONE]`` that carries the
``vlmguard`` object (``choices: []``, like a usage chunk)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from vlmguard.server.errors import ProxyError
from vlmguard.server.wire import assistant_chunks, extension_chunk, new_completion_id

log = logging.getLogger("vlmguard.server")

DONE = b"data: [DONE]\n\n"


def sse(obj: dict[str, Any]) -> bytes:
    """One ``data:`` event holding ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


async def relay(
    response: httpx.Response,
    *,
    model: str,
    request_id: str,
    started: float,
    on_error: Callable[[httpx.HTTPError], ProxyError],
    on_close: Callable[[float], None],
    on_end: Callable[[float, bool], dict[str, Any] | None],
) -> AsyncIterator[bytes]:
    """The upstream's SSE ``response`` as it comes, closed at the end.

    ``on_close(upstream_s)`` is called when the response is closed (``upstream_s`` counted from
    ``started``, a :func:`time.perf_counter` time). A broken stream ends with the error event of
    ``on_error`` (no ``[DONE]``). Otherwise ``on_end(upstream_s, finished)`` gives the ``vlmguard``
    object (or ``None``) sent, with the upstream's completion id, before ``[DONE]``.
    """
    completion_id: str | None = None
    finished = False
    try:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                if completion_id is None and data.startswith("{"):
                    with contextlib.suppress(ValueError):
                        completion_id = str(json.loads(data).get("id") or "") or None
            yield (line + "\n").encode()
    except httpx.HTTPError as exc:
        log.warning("request %s upstream stream broke: %s", request_id, type(exc).__name__)
        yield sse(on_error(exc).body())
        return
    finally:
        await response.aclose()
        upstream_s = time.perf_counter() - started
        on_close(upstream_s)
    ext = on_end(upstream_s, finished)
    if ext is not None:
        yield sse(extension_chunk(ext, model=model, completion_id=completion_id or new_completion_id()))
    yield DONE


async def refusal_stream(
    text: str, *, model: str, completion_id: str, ext: dict[str, Any] | None
) -> AsyncIterator[bytes]:
    """A refusal written by the guard, as a stream of chunks."""
    for chunk in assistant_chunks(text, model=model, completion_id=completion_id):
        yield sse(chunk)
    if ext is not None:
        yield sse(extension_chunk(ext, model=model, completion_id=completion_id))
    yield DONE
