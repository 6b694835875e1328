"""The dependency direction of the package, checked by reading every module's imports.

core (types, errors, taxonomy, registry, text, images, words, refusal, durable, ...) <- perception
<- backends <- rewriter <- pipeline <- defenses <- guard, eval, server, train, testing <- synth <- cli
(drawn in ``docs/architecture.md``)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vlmguard

PACKAGE = Path(vlmguard.__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """Every ``vlmguard`` module ``path`` imports (at any level: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "vlmguard"}


def modules_under(part: str) -> list[Path]:
    target = PACKAGE / part
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def _hits(imported: set[str], forbidden: tuple[str, ...]) -> list[str]:
    prefixes = tuple(f"vlmguard.{bad}" for bad in forbidden)
    return sorted(n for n in imported if n in prefixes or n.startswith(tuple(p + "." for p in prefixes)))


ABOVE_THE_CORE = (
    "perception",
    "backends",
    "rewriter",
    "pipeline",
    "defenses",
    "guard",
    "eval",
    "server",
    "train",
    "testing",
    "synth",
    "cli",
)
CORE = (
    "types",
    "errors",
    "taxonomy",
    "registry",
    "text",
    "images",
    "words",
    "refusal",
    "durable",
    "appendlog",
    "packaged",
    "config_file",
    "runtime",
    "prompts",
    "configs",
)
TOP = ("guard", "eval", "server", "train", "testing", "synth", "cli")
RULES = [
    *((core, ABOVE_THE_CORE) for core in CORE),
    ("perception", ("backends", "rewriter", "pipeline", "defenses", *TOP)),
    ("backends", ("rewriter", "pipeline", "defenses", *TOP)),
    ("rewriter", ("pipeline", "defenses", *TOP)),
    ("pipeline", ("defenses", *TOP)),
    ("defenses", TOP),
    ("server", ("defenses", "guard", "eval", "train", "synth", "cli")),
    ("eval", ("guard", "server", "train", "synth", "cli")),
    ("train", ("pipeline", "defenses", "guard", "eval", "server", "synth", "cli")),
    ("synth", ("guard", "server", "train", "cli")),
]


@pytest.mark.parametrize(("part", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_dependencies_point_one_way(part: str, forbidden: tuple[str, ...]) -> None:
    files = modules_under(part)
    assert files and all(f.exists() for f in files)
    wrong = {str(f.relative_to(PACKAGE)): hits for f in files if (hits := _hits(imports_of(f), forbidden))}
    assert wrong == {}


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from vlmguard.server.app import create_app\n    import vlmguard.cli\n")
    hits = _hits(imports_of(module), ("server", "cli"))
    assert hits == ["vlmguard.cli", "vlmguard.server.app", "vlmguard.server.app.create_app"]
    assert _hits({"vlmguard.serverless"}, ("server",)) == []
