"""The generic registry: built-ins given at construction, lazy targets, plugins, suggestions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vlmguard import registry as registry_module
from vlmguard.errors import ConfigError
from vlmguard.registry import Entry, Registry


def test_builtins_are_found_without_a_setup_call() -> None:
    reg: Registry[object] = Registry("thing", (Entry("path", "pathlib:PurePosixPath", "a path"),))
    assert reg.names() == ["path"]
    assert "path" in reg
    assert str(reg.create("path", "a", "b")) == "a/b"


def test_a_builtin_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        Registry("thing", (Entry("x", "pathlib:Path"), Entry("x", "pathlib:Path")))


def test_a_plugin_does_not_replace_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = [
        SimpleNamespace(name="path", value="os:getcwd"),
        SimpleNamespace(name="extra", value="os:getcwd"),
    ]
    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: plugins if group == "vlmguard.things" else []
    )
    reg: Registry[object] = Registry("thing", (Entry("path", "pathlib:PurePosixPath"),))
    assert reg.names() == ["extra", "path"]
    assert reg.entry("path").target == "pathlib:PurePosixPath"


def test_unknown_name_suggests_close_ones() -> None:
    reg: Registry[object] = Registry("thing", (Entry("figstep", "pathlib:Path"),))
    with pytest.raises(ConfigError, match="Did you mean 'figstep'"):
        reg.entry("figstep2")


def test_missing_dependency_names_the_extra() -> None:
    reg: Registry[object] = Registry("thing", (Entry("gone", "no_such_module_xyz:f", extra="hf"),))
    with pytest.raises(ConfigError, match=r"pip install 'vlmguard\[hf\]'"):
        reg.get("gone")
