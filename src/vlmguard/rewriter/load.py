"""Build a rewriter from a spec string."""

from __future__ import annotations

from vlmguard.errors import ConfigError
from vlmguard.registry import parse_named_spec
from vlmguard.rewriter.base import REWRITERS, Rewriter
from vlmguard.types import FallbackPolicy, GenerateConfig


def load_rewriter(
    spec: str = "evidence",
    *,
    policy: FallbackPolicy = "fail_closed",
    config: GenerateConfig | None = None,
    **backend_options: object,
) -> Rewriter:
    """Build a rewriter.

    ``spec`` is a registered rewriter name with optional options (``evidence``,
    ``evidence?risk_model=DIR&policy=FILE``), or a backend spec for the model-based
    rewriter, optionally prefixed with ``model:`` (``hf:./my-rewriter``,
    ``model:openai:my-rewriter@http://localhost:8000/v1``). ``config`` sets the model-based
    rewriter's generation settings (default: greedy, 1024 tokens). ``backend_options`` go to
    :func:`vlmguard.backends.load_backend` (retries, concurrency, cache).
    """
    name = spec.removeprefix("model:")
    if ":" not in name.partition("?")[0]:
        registered, options = parse_named_spec(name, "rewriter", "evidence?risk_model=./my-risk-model")
        try:
            return REWRITERS.create(registered, **options)
        except TypeError as exc:
            raise ConfigError(f"invalid options for rewriter {registered!r}: {exc}") from None
    from vlmguard.backends.spec import load_backend
    from vlmguard.rewriter.model import DEFAULT_REWRITER_CONFIG, ModelRewriter

    backend = load_backend(name, **backend_options)  # type: ignore[arg-type]
    return ModelRewriter(backend, policy=policy, config=config or DEFAULT_REWRITER_CONFIG)
