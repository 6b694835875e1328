"""The perception package's own data files (``vlmguard/perception/data/``): one way to read them."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from vlmguard.errors import ConfigError


def data_text(name: str) -> str:
    """The text of ``data/<name>``."""
    return resources.files("vlmguard.perception").joinpath("data", name).read_text(encoding="utf-8")


def parse_yaml(text: str, what: str) -> Any:
    """``text`` parsed as YAML; a :class:`ConfigError` names ``what`` when it is not valid YAML."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from None


@cache
def data_yaml(name: str) -> Any:
    """``data/<name>`` parsed, read once per process (callers must not change what it returns)."""
    return parse_yaml(data_text(name), name)


__all__ = ["data_text", "data_yaml", "parse_yaml"]
