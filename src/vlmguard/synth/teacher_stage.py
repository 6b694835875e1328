"""The machinery of the three teacher stages: render a versioned template, call the teacher, parse the
answer strictly, and ask again (showing the model its mistake) when it does not parse.

After ``parse_attempts`` unusable answers the record is marked failed (kind ``parse``) with the reason;
a backend error after the backend's own retries marks it failed too (kind ``teacher``), so one bad
request never stops a run. A stage never raises for model misbehaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlmguard.backends.base import VLM
from vlmguard.errors import BackendError, ImageError, ParseError
from vlmguard.prompts import PromptTemplate, load_prompt
from vlmguard.synth.call_context import CallContext, call_with_context
from vlmguard.synth.records import StageName, SynthRecord
from vlmguard.synth.stage_common import failed, record_images, stage_done, untrusted
from vlmguard.taxonomy import RiskCategory
from vlmguard.types import GenerateConfig, ImageData, Message

DEFAULT_TEACHER_CONFIG = GenerateConfig(max_tokens=1024, temperature=0.0)


def correction_message(error: str, format_hint: str) -> Message:
    """What a model is told after an answer that did not parse."""
    return Message.user(
        f"Your answer did not follow the required format ({error}). Answer again, in exactly this format and "
        f"nothing after it:\n{format_hint}"
    )


def base_values(record: SynthRecord, images: Sequence[ImageData]) -> dict[str, str]:
    """The template values every teacher stage fills in: categories, image count, prompt, label."""
    seed = record.seed
    return {
        "categories": ", ".join(c.value for c in RiskCategory),
        "image_count": str(len(images)),
        "user_prompt": untrusted(seed.prompt),
        "kind": "benign" if seed.kind == "safe" else "unsafe",
        "category_hint": seed.category.value if seed.category else "none",
    }


class TeacherStage:
    """Shared machinery of the three teacher stages: render, call, parse, bounded retries.

    A stage sets ``name``, ``template_name``, ``fields`` and ``format_hint`` and implements
    :meth:`values` (the template's values) and :meth:`parse` (the answer's field updates).
    """

    name: StageName
    template_name: str
    fields: tuple[str, ...] = ()
    format_hint: str = ""

    def __init__(
        self,
        *,
        parse_attempts: int = 3,
        config: GenerateConfig = DEFAULT_TEACHER_CONFIG,
        template_version: int | None = None,
    ) -> None:
        if parse_attempts < 1:
            raise ValueError("parse_attempts must be >= 1")
        self.parse_attempts = parse_attempts
        self.config = config
        self.template: PromptTemplate = load_prompt(self.template_name, template_version)

    def values(self, record: SynthRecord, images: Sequence[ImageData]) -> dict[str, str]:
        """The values the stage's template is rendered with."""
        raise NotImplementedError

    def parse(self, text: str, record: SynthRecord) -> dict[str, Any]:
        """Field updates from the model's answer; raises :class:`ParseError`."""
        raise NotImplementedError

    def messages(self, record: SynthRecord, images: Sequence[ImageData]) -> list[Message]:
        """The rendered template as messages, the seed's images on the user turn."""
        system, user = self.template.render(**self.values(record, images))
        out = [Message.system(system)] if system else []
        out.append(Message.user(user, *images))
        return out

    async def __call__(self, record: SynthRecord, teacher: VLM) -> SynthRecord:
        try:
            images = record_images(record)
        except ImageError as exc:
            return failed(record, self.name, "input", str(exc))
        messages = self.messages(record, images)
        error = ""
        raw = ""
        for attempt in range(1, self.parse_attempts + 1):
            context = CallContext(record.id, self.name.value, attempt)
            try:
                completion = await call_with_context(teacher, messages, self.config, context)
            except BackendError as exc:
                return failed(
                    record,
                    self.name,
                    "teacher",
                    f"{type(exc).__name__}: {exc}",
                    attempts=attempt,
                    raw=raw or None,
                    calls=attempt,
                )
            raw = completion.text
            try:
                updates = self.parse(raw, record)
            except ParseError as exc:
                error = str(exc)
                messages = [*messages, Message.assistant(raw), correction_message(error, self.format_hint)]
                continue
            return stage_done(
                record,
                self.name,
                updates,
                calls=attempt,
                template=self.template.id,
                model=completion.model,
            )
        return failed(
            record,
            self.name,
            "parse",
            f"unparseable after {self.parse_attempts} attempt(s): {error}",
            attempts=self.parse_attempts,
            raw=raw,
            calls=self.parse_attempts,
        )
