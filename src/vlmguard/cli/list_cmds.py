"""``vlmguard backends`` and ``vlmguard rewriters``: what can be used."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vlmguard.registry import Registry


def _print_registry(registry: Registry[Any], title: str, example: dict[str, str]) -> None:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("what it is")
    table.add_column("example")
    table.add_column("extra")
    for entry in registry.entries():
        table.add_row(entry.name, entry.help, example.get(entry.name, ""), entry.extra or "")
    Console().print(table)


@click.command()
def backends() -> None:
    """List model backends and their spec syntax."""
    from vlmguard.backends.spec import BACKENDS

    _print_registry(
        BACKENDS,
        "backends (spec KIND:TARGET[?opt=value])",
        {
            "mock": "mock:echo",
            "openai": "openai:Qwen/Qwen2-VL-7B-Instruct@http://a:8000/v1,http://b:8000/v1?strategy=least_busy",
            "hf": "hf:./my-rewriter?device=cuda&dtype=bfloat16&max_batch=8",
            "llamacpp": "llamacpp:/models/model.gguf?mmproj=/models/mmproj.gguf",
            "evidence": "evidence:mock:echo",
            "smollm2": "smollm2:default",
        },
    )


@click.command()
def rewriters() -> None:
    """List rewriters (any backend spec also works as a model-based rewriter)."""
    from vlmguard.rewriter.base import REWRITERS

    _print_registry(REWRITERS, "rewriters", {"evidence": "--rewriter evidence"})
