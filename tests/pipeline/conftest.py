"""The pipeline tests drive the proxy with the proxy suite's helpers."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for folder in ("server",):
    path = str(_TESTS / folder)
    if path not in sys.path:
        sys.path.append(path)
