"""What every synthesis stage shares: the :class:`Stage` protocol, the seed's images, and the two ways
a stage ends a record's step (:func:`stage_done` or :func:`failed`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from vlmguard.backends.base import VLM
from vlmguard.synth.parsing import STAGE_MARKERS
from vlmguard.synth.records import StageFailure, StageName, SynthRecord
from vlmguard.text import neutralize
from vlmguard.types import ImageData

RAW_KEEP_CHARS = 2000
"""How much of an unusable model answer a failure keeps (the end of it)."""


class Stage(Protocol):
    """One step of a record's synthesis."""

    name: StageName
    fields: tuple[str, ...]
    """The record fields this stage sets (what the store persists for it)."""

    async def __call__(self, record: SynthRecord, teacher: VLM) -> SynthRecord:
        """Return ``record`` with this stage done, or with ``failure`` set."""
        ...


@lru_cache(maxsize=512)
def _load_path(path: str) -> ImageData:
    from vlmguard.images import load_image

    return load_image(path)


def record_images(record: SynthRecord) -> list[ImageData]:
    """The seed's images, loaded and validated (file loads are cached)."""
    return [_load_path(i) if isinstance(i, str) else i for i in record.seed.images]


def untrusted(text: str | None, empty: str = "(none)") -> str:
    """``text`` stripped and with the stage markers neutralised, for a template; ``empty`` when blank."""
    value = (text or "").strip()
    return neutralize(value, STAGE_MARKERS) if value else empty


def failed(
    record: SynthRecord,
    stage: StageName,
    kind: str,
    reason: str,
    *,
    attempts: int = 0,
    raw: str | None = None,
    calls: int = 0,
) -> SynthRecord:
    """``record`` marked failed at ``stage``."""
    failure = StageFailure(
        stage=stage,
        kind=kind,
        reason=reason,
        attempts=attempts,  # type: ignore[arg-type]
        raw_output=raw[-RAW_KEEP_CHARS:] if raw else None,
    )
    return record.model_copy(update={"failure": failure, "calls": {**record.calls, stage.value: calls}})


def stage_done(
    record: SynthRecord,
    stage: StageName,
    updates: dict[str, Any],
    *,
    calls: int,
    template: str | None = None,
    model: str | None = None,
) -> SynthRecord:
    """``record`` with ``stage`` finished: ``updates`` applied, any failure cleared, and the stage's
    call count, template id and model recorded (a ``None`` template or model leaves those as they were)."""
    extra: dict[str, Any] = {}
    if template is not None:
        extra["templates"] = {**record.templates, stage.value: template}
    if model is not None:
        extra["models"] = {**record.models, stage.value: model}
    return record.model_copy(
        update={
            **updates,
            "failure": None,
            "finished": [*record.finished, stage],
            "calls": {**record.calls, stage.value: calls},
            **extra,
        }
    )
