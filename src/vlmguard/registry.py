"""One generic registry: name -> lazily imported factory, with "did you mean" and install hints.

Built-ins register the same way plugins do: with a ``"module:attribute"`` target that is only
imported when the name is used. A registry is created with its built-in entries (a table of
:class:`Entry`), so every lookup finds them without any set-up call. Third-party packages add
entries through the entry-point group ``vlmguard.<registry name>s``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar, cast
from urllib.parse import parse_qsl

from vlmguard.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One registered name."""

    name: str
    target: str | Callable[..., object]
    help: str = ""
    extra: str | None = None
    """The optional-dependency extra that provides what the target needs (for install hints)."""


class Registry(Generic[T]):
    """Names to factories of ``T``, imported lazily on first use.

    ``builtins`` are registered at once (their targets are strings, so nothing is imported);
    entry-point plugins are read on the first lookup and never replace a built-in.
    """

    def __init__(self, kind: str, builtins: Iterable[Entry] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False
        for entry in builtins:
            self.register(entry.name, entry.target, help=entry.help, extra=entry.extra)  # type: ignore[arg-type]

    def register(
        self, name: str, target: str | Callable[..., T], *, help: str = "", extra: str | None = None
    ) -> None:
        """Register ``name``. ``target`` is a factory or a ``"package.module:attribute"`` string."""
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, help, extra)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"vlmguard.{self.kind}s"):
            if ep.name not in self._entries:
                self._entries[ep.name] = Entry(ep.name, ep.value, help=f"plugin from {ep.value}")

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry]:
        """Every entry, sorted by name."""
        self._load_plugins()
        for name in sorted(self._entries):
            yield self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        """The entry registered as ``name``; :class:`ConfigError` with close matches otherwise."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}.{hint} Available: {known}") from None

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name`` (imports it on first use)."""
        entry = self.entry(name)
        target = entry.target
        if callable(target):
            return cast(Callable[..., T], target)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f" Install it with: pip install 'vlmguard[{entry.extra}]'" if entry.extra else ""
            missing = f"needs a package that is not installed ({exc.name})"
            raise ConfigError(f"{self.kind} {name!r} {missing}.{hint}") from exc
        try:
            return cast(Callable[..., T], getattr(module, attr))
        except AttributeError:
            raise ConfigError(f"{self.kind} {name!r} points to {target}, which does not exist") from None

    def create(self, name: str, *args: object, **kwargs: object) -> T:
        """Build the object registered under ``name``."""
        return self.get(name)(*args, **kwargs)


def parse_named_spec(spec: str, what: str, example: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME?key=value&...`` into the lower-cased name and its options.

    Malformed or repeated options raise :class:`ConfigError` naming ``what`` (e.g. "defence") and
    showing ``example``.
    """
    name, _, query = spec.strip().partition("?")
    name = name.strip().lower()
    if not name:
        raise ConfigError(f"invalid {what} spec {spec!r}: expected NAME[?key=value&...], e.g. {example!r}")
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ConfigError(
                f"invalid options in {what} spec {spec!r}: expected key=value pairs joined by '&'"
            ) from None
        for key, value in pairs:
            if key in options:
                raise ConfigError(f"{what} spec {spec!r} gives option {key!r} twice")
            options[key] = value
    return name, options
