"""Judges: rate answers for safety, helpfulness, refusal and utility; the ``JUDGES`` registry."""

from __future__ import annotations

from pathlib import Path

from vlmguard.errors import ConfigError
from vlmguard.eval.judges.base import JUDGES, Judge, Judgement, Verdict

NEEDS_MODEL = frozenset({"llm", "siuo", "mmvet"})
"""Judges that need a backend spec: ``NAME:BACKEND_SPEC`` (``llm:openai:gpt-4o@https://...``)."""


def load_judge(
    spec: str, *, retries: int = 0, cache: str | Path | None = None, concurrency: int | None = None
) -> Judge:
    """Build a judge from ``NAME`` or ``NAME:BACKEND_SPEC``.

    ``offline`` and ``refusal`` need no model; ``llm``, ``siuo`` and ``mmvet`` need one; ``auto``
    takes one optionally (offline without). The judge's backend gets ``retries``, ``cache`` and
    ``concurrency`` like the target.
    """
    name, sep, backend_spec = spec.strip().partition(":")
    factory = JUDGES.get(name)
    if not sep or not backend_spec:
        if name in NEEDS_MODEL:
            raise ConfigError(
                f"judge {name!r} needs a model: --judge {name}:BACKEND_SPEC "
                f"(e.g. {name}:openai:gpt-4o@https://api.openai.com/v1)"
            )
        return factory()
    if name not in NEEDS_MODEL and name != "auto":
        raise ConfigError(f"judge {name!r} takes no model (got {backend_spec!r})")
    from vlmguard.backends.spec import load_backend

    backend = load_backend(backend_spec, retries=retries, cache=cache, concurrency=concurrency)
    return factory(backend)


__all__ = ["JUDGES", "NEEDS_MODEL", "Judge", "Judgement", "Verdict", "load_judge"]
