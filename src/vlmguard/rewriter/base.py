"""The rewriter protocol and the rewriter registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vlmguard.registry import Entry, Registry
from vlmguard.types import ImageData, Rewrite, Turn


@runtime_checkable
class Rewriter(Protocol):
    """Reads an image (or several) and a prompt; returns a risk report and a rewritten prompt."""

    @property
    def name(self) -> str: ...

    async def rewrite(
        self, prompt: str, images: Sequence[ImageData] = (), history: Sequence[Turn] = ()
    ) -> Rewrite:
        """Analyse ``prompt`` with ``images`` and return the rewrite. Raises on backend failure.

        ``history`` holds the earlier turns of the conversation (user turns with their images, and
        assistant turns as untrusted content); the rewrite replaces only ``prompt``.
        """
        ...


REWRITERS: Registry[Rewriter] = Registry(
    "rewriter",
    (
        Entry(
            "evidence",
            "vlmguard.rewriter.evidence:EvidenceRewriter",
            "offline rewriter over perception evidence and the learned risk model (default)",
            extra="perception",
        ),
    ),
)
