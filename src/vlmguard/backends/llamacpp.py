"""llama.cpp in this process through ``xllamacpp``: any GGUF model (plus a VLM's ``mmproj``) as a ``VLM``.

``xllamacpp`` embeds llama.cpp's own C++ server (a prebuilt CPU wheel, nothing to compile).
:class:`LlamaCppServer` holds one such server: requests go to its handlers in-process, without a
port, or, given a ``port``, it also serves llama.cpp's OpenAI-compatible HTTP API on a loopback
address (``port=0`` picks a free port; :attr:`LlamaCppServer.base_url` tells which).
:class:`LlamaCppVLM` is the backend of the ``llamacpp:`` spec on top of it::

    llamacpp:/models/model.gguf?n_ctx=4096&threads=2
    llamacpp:/models/vlm.gguf?mmproj=/models/mmproj.gguf          # images through the projector

Decoding threads default to half the CPU cores (at least one): llama.cpp's threads wait for each
other at every step, so on a small machine shared with other work two threads per core pair are
many times slower than one (measured on this project's 2-core machine under load: one thread
24-26 tokens/s, two threads 1-8 tokens/s for SmolLM2-135M).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vlmguard.backends.base import DEFAULT_CONFIG, BaseVLM
from vlmguard.backends.openai_wire import config_to_wire, message_to_wire, parse_chat_response
from vlmguard.errors import BackendError, BackendUnavailable, ConfigError, InputError
from vlmguard.types import Completion, GenerateConfig, ImagePart, Message

GGUF_MAGIC = b"GGUF"
DEFAULT_N_CTX = 4096


def default_threads() -> int:
    """Decoding threads when none are given: half the CPU cores, at least one (see the module doc)."""
    return max(1, (os.cpu_count() or 2) // 2)


def check_gguf(path: str | Path, what: str = "model") -> Path:
    """``path`` as a :class:`Path` after checking it is a readable GGUF file (else :class:`ConfigError`).

    llama.cpp answers a missing or broken file only with "failed to init"; this names the problem.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"llama.cpp {what} file not found: {p}")
    try:
        with p.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ConfigError(f"cannot read the llama.cpp {what} file {p}: {exc}") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{p} is not a GGUF file (llama.cpp needs the GGUF format)")
    return p


@dataclass(frozen=True)
class LlamaCppOptions:
    """What a llama.cpp server loads and how it runs."""

    model: Path
    mmproj: Path | None = None
    """The vision projector GGUF of a VLM; without it, requests with images are refused."""
    n_ctx: int = DEFAULT_N_CTX
    """Context size in tokens, shared by the ``parallel`` slots."""
    threads: int | None = None
    """Decoding threads (``None``: :func:`default_threads`)."""
    parallel: int = 1
    """Requests decoded at once (server slots)."""
    chat_template: str | None = None
    """A llama.cpp built-in chat template name (``chatml``, ``llama3`` ...); ``None``: the model's own."""

    def __post_init__(self) -> None:
        if self.n_ctx < 64:
            raise ConfigError("n_ctx must be at least 64 tokens")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be at least 1")
        if self.parallel < 1:
            raise ConfigError("parallel must be at least 1")


def _error_of(result: Any) -> BackendError | None:
    """The typed error of a handler's answer, or ``None`` when it is a result."""
    if not isinstance(result, dict):
        return BackendError(f"llama.cpp answered with {type(result).__name__}, not a JSON object")
    err = result.get("error")
    if err is None:
        return None
    if not isinstance(err, dict):
        return BackendError(f"llama.cpp error: {err}")
    message = str(err.get("message") or err.get("type") or "unknown error")
    try:
        status = int(err.get("code") or 500)
    except (TypeError, ValueError):
        status = 500
    if status >= 500:
        return BackendUnavailable(f"llama.cpp error: {message}", status=status)
    return BackendError(f"llama.cpp refused the request: {message}", status=status)


class LlamaCppServer:
    """One llama.cpp server (the model loaded once) in this process.

    ``port=None`` keeps it in-process only; a port (``0``: any free one) also serves the HTTP API
    on ``host``. Handler calls block until the answer is complete and may come from several
    threads at once (llama.cpp queues them over its ``parallel`` slots); they release the GIL.
    Raises :class:`ConfigError` when ``xllamacpp`` is missing or the model cannot be loaded.
    """

    def __init__(
        self,
        options: LlamaCppOptions,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        metrics: bool = False,
        verbose: bool = False,
    ) -> None:
        try:
            import xllamacpp as xlc
        except ImportError as exc:
            raise ConfigError(
                "the llama.cpp engine needs the 'xllamacpp' package: pip install xllamacpp"
            ) from exc
        self.options = options
        params = xlc.CommonParams()
        params.model.path = str(check_gguf(options.model))
        if options.mmproj is not None:
            params.mmproj.path = str(check_gguf(options.mmproj, "mmproj"))
        params.n_ctx = options.n_ctx
        params.n_parallel = options.parallel
        threads = options.threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        if options.chat_template:
            params.chat_template = options.chat_template
        params.verbosity = 3 if verbose else -1
        params.endpoint_metrics = metrics
        if port is not None:
            params.port = port
            params.hostnames = [host]
        try:
            self._server: Any = xlc.Server(params)
        except RuntimeError as exc:
            raise ConfigError(f"llama.cpp could not load {options.model}: {exc}") from exc
        self.base_url: str | None = None
        """``http://HOST:PORT`` when serving HTTP, else ``None``."""
        if port is not None:
            address = str(self._server.listening_address)
            self.base_url = address if address.startswith("http") else f"http://{address}"

    def _handle(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        server = self._server
        if server is None:
            raise BackendError("the llama.cpp server is closed")
        try:
            result = getattr(server, kind)(body)
        except Exception as exc:  # the extension raises plain exceptions for malformed requests
            raise BackendError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from exc
        error = _error_of(result)
        if error is not None:
            raise error
        return dict(result)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``/v1/chat/completions`` request (non-streaming); raises :class:`BackendError` on errors."""
        return self._handle("handle_chat_completions", body)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``/v1/completions`` request on a raw prompt; raises :class:`BackendError` on errors."""
        return self._handle("handle_completions", body)

    def close(self) -> None:
        """Stop the server (and its HTTP listener) and free the model."""
        self._server = None

    def __enter__(self) -> LlamaCppServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LlamaCppVLM(BaseVLM):
    """A GGUF model run by llama.cpp in this process (chat template from the model or ``chat_template``).

    Nothing loads until the first call (or :meth:`load`); calls run in worker threads, one per
    server slot, so the event loop never blocks. ``max_new_tokens`` caps every answer when set.
    Implements :class:`~vlmguard.backends.base.PrefillVLM`: the prefix is sent as a final
    assistant message, which llama.cpp continues.
    """

    def __init__(
        self, options: LlamaCppOptions, *, max_new_tokens: int | None = None, name: str | None = None
    ) -> None:
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be at least 1")
        super().__init__(name or options.model.stem)
        self.options = options
        self.max_new_tokens = max_new_tokens
        self._server: LlamaCppServer | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pool_lock = threading.Lock()  # never held while a model loads, so the event loop never waits
        self.load_s: float | None = None
        """Seconds the model took to load (set after loading)."""

    def __repr__(self) -> str:
        return f"LlamaCppVLM(model={str(self.options.model)!r}, mmproj={self.options.mmproj is not None})"

    def _load_sync(self) -> LlamaCppServer:
        with self._lock:
            if self._server is None:
                start = time.perf_counter()
                self._server = LlamaCppServer(self.options)
                self.load_s = time.perf_counter() - start
            return self._server

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.options.parallel, thread_name_prefix="llamacpp"
                )
            return self._executor

    async def load(self) -> None:
        """Load the model now, in a worker thread."""
        await asyncio.get_running_loop().run_in_executor(self._pool(), self._load_sync)

    def build_body(self, messages: Sequence[Message], config: GenerateConfig) -> dict[str, Any]:
        """The chat-completions body of a request; refuses images when no ``mmproj`` is loaded."""
        if not messages:
            raise InputError("no messages to send")
        if self.options.mmproj is None and any(isinstance(p, ImagePart) for m in messages for p in m.content):
            raise InputError(
                f"{self.name} has no vision projector: give mmproj=PATH, or wrap the model in "
                "the evidence adapter (evidence:llamacpp:...) to describe images as text"
            )
        body: dict[str, Any] = {"messages": [message_to_wire(m) for m in messages]}
        body.update(config_to_wire(config))
        if self.max_new_tokens is not None:
            body["max_tokens"] = min(config.max_tokens, self.max_new_tokens)
        return body

    def _chat_sync(self, body: dict[str, Any], prefix: str | None = None) -> Completion:
        server = self._load_sync()
        start = time.perf_counter()
        data = server.chat(body)
        text, _, usage, finish = parse_chat_response(data, default_model=self.name)
        if prefix and text.startswith(prefix):  # llama.cpp answers with the prefilled text included
            text = text[len(prefix) :]
        return Completion(
            text=text,
            model=self.name,
            usage=usage,
            latency_s=time.perf_counter() - start,
            finish_reason=finish,
        )

    async def _chat(self, body: dict[str, Any], prefix: str | None = None) -> Completion:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self._chat_sync, body, prefix)

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        return await self._chat(self.build_body(messages, config or DEFAULT_CONFIG))

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        """Continue an assistant answer that starts with ``prefix`` (the continuation only is returned)."""
        body = self.build_body([*messages, Message.assistant(prefix)], config or DEFAULT_CONFIG)
        return await self._chat(body, prefix)

    async def aclose(self) -> None:
        with self._pool_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()


def _int_option(opts: dict[str, str], key: str) -> int | None:
    raw = opts.pop(key, None)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"llamacpp option {key} must be an integer, not {raw!r}") from None


def llamacpp_from_spec(target: str, options: dict[str, str]) -> LlamaCppVLM:
    """Build from ``llamacpp:PATH.gguf?mmproj=PATH&n_ctx=4096&threads=N&parallel=1&max_new_tokens=N``.

    Other options: ``chat_template`` (a llama.cpp built-in template name) and ``name`` (the name in
    reports and cache keys; default the file name without ``.gguf``). The files are checked now;
    the model loads on first use.
    """
    if not target:
        raise ConfigError("llamacpp backend needs a GGUF path: llamacpp:/path/to/model.gguf")
    opts = dict(options)
    mmproj = opts.pop("mmproj", None)
    n_ctx = _int_option(opts, "n_ctx")
    threads = _int_option(opts, "threads")
    parallel = _int_option(opts, "parallel")
    max_new = _int_option(opts, "max_new_tokens")
    chat_template = opts.pop("chat_template", None) or None
    name = opts.pop("name", None) or None
    if opts:
        raise ConfigError(
            f"unknown llamacpp option(s): {', '.join(sorted(opts))} "
            "(known: mmproj, n_ctx, threads, parallel, max_new_tokens, chat_template, name)"
        )
    llama_options = LlamaCppOptions(
        model=check_gguf(target),
        mmproj=check_gguf(mmproj, "mmproj") if mmproj else None,
        n_ctx=n_ctx if n_ctx is not None else DEFAULT_N_CTX,
        threads=threads,
        parallel=parallel if parallel is not None else 1,
        chat_template=chat_template,
    )
    return LlamaCppVLM(llama_options, max_new_tokens=max_new, name=name)
