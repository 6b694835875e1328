"""Files shipped inside installed packages (model weights, GGUF files), found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vlmguard.errors import ConfigError


def package_file(package: str, relative: str, *, needed_for: str, install: str) -> Path:
    """The file ``relative`` inside the installed package ``package`` (the package is not imported).

    :class:`ConfigError` when the package is not installed (naming ``needed_for`` and the ``install``
    command) or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{needed_for} needs the {package.replace('_', '-')!r} package: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigError(f"{Path(relative).name} not found at {path}")
    return path
