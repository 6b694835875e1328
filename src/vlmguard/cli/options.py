"""Click options that several subcommands share, defined once: names, types and ranges agree everywhere.

Each factory takes the help text (what the option means for that command) and the default; an option
without a default (``None``) leaves the value to a config file or the library's own default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from vlmguard.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

MAX_TOKENS = click.IntRange(1, 131072)


def _shown(default: object) -> dict[str, Any]:
    return {"default": default, "show_default": default is not None}


def json_option(help: str = "Print the result as JSON.") -> Callable[[F], F]:
    """``--json`` (parameter ``as_json``): machine-readable output instead of tables or lines."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def out_option(help: str, *, required: bool = True, short: bool = False) -> Callable[[F], F]:
    """``--out`` (``-o`` with ``short``): a folder the command writes."""
    names = ("-o", "--out") if short else ("--out",)
    return click.option(*names, required=required, type=click.Path(path_type=Path), help=help)


def seed_option(help: str, default: int = 0) -> Callable[[F], F]:
    """``--seed``: the seed of the command's random choices."""
    return click.option("--seed", type=int, help=help, **_shown(default))


def concurrency_option(help: str, default: int | None = None, *, short: bool = False) -> Callable[[F], F]:
    """``--concurrency`` (``-c`` with ``short``): items in flight at once."""
    names = ("-c", "--concurrency") if short else ("--concurrency",)
    return click.option(*names, type=click.IntRange(1, 1024), help=help, **_shown(default))


def retries_option(help: str, default: int | None = None) -> Callable[[F], F]:
    """``--retries``: retries of a retryable backend error."""
    return click.option("--retries", type=click.IntRange(0, 20), help=help, **_shown(default))


def timeout_option(help: str, name: str = "timeout") -> Callable[[F], F]:
    """``--timeout`` (parameter ``name``): a time limit in seconds, no limit by default."""
    return click.option("--timeout", name, type=click.FloatRange(min=0, min_open=True), help=help)


def max_tokens_option(
    help: str, default: int | None = None, *, flag: str = "--max-tokens"
) -> Callable[[F], F]:
    """``--max-tokens`` (or ``flag``): an answer length limit in tokens."""
    return click.option(flag, type=MAX_TOKENS, help=help, **_shown(default))


def rewriter_option(help: str, default: str | None = None) -> Callable[[F], F]:
    """``--rewriter``: ``evidence`` or a backend spec for the model-based rewriter."""
    return click.option("--rewriter", help=help, **_shown(default))


def fail_policy_option(*flags: str, help: str, default: str | None = None) -> Callable[[F], F]:
    """The fail policy (``fail_closed`` or ``fail_open``) under the given flag name(s)."""
    choice = click.Choice(["fail_closed", "fail_open"])
    return click.option(*flags, type=choice, help=help, **_shown(default))


def checked(model: type[M], **values: Any) -> M:
    """``model(**values)`` from option values; a validation error becomes one :class:`ConfigError`
    line naming each field and its problem."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems) from None
