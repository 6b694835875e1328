"""Process-wide thread settings: options with documented defaults, applied by the CLI and the proxy.

Library code never sets them: a program that uses vlmguard as a library keeps its own settings, and
calls :func:`apply_thread_settings` itself if it wants the defaults the command line uses.

Why the defaults: torch's OpenMP worker threads spin while they wait for work. On a small machine
shared with other work that is disastrous (measured on 2 busy cores: EfficientNet-Lite0 took
1020 ms per image with spinning threads and 64 ms without; SmolLM2 on the transformers engine
generated 0.8 tokens/s instead of 10.8), so the command line asks OpenMP to let them sleep.
"""

from __future__ import annotations

import os
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OMP_WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


class ThreadSettings(BaseModel):
    """Thread settings of one process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    openmp_wait_policy: Literal["passive", "active", "inherit"] = "passive"
    """``OMP_WAIT_POLICY`` for torch's OpenMP threads: ``passive`` (sleep while idle, the default),
    ``active`` (spin), ``inherit`` (leave the environment alone). A value already in the environment
    wins, and the setting has no effect once torch is imported."""
    torch_threads: int | None = Field(None, ge=1, le=1024)
    """torch's intra-op thread count (``torch.set_num_threads``); ``None`` leaves torch's default
    (all cores). Setting it imports torch when it is installed."""


def apply_thread_settings(settings: ThreadSettings) -> None:
    """Apply ``settings`` to this process (call it once at start, before any model loads)."""
    if settings.openmp_wait_policy != "inherit" and "torch" not in sys.modules:
        os.environ.setdefault(OMP_WAIT_POLICY_ENV, settings.openmp_wait_policy.upper())
    if settings.torch_threads is not None:
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(settings.torch_threads)
