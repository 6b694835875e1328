"""Response collection, the first stage: the safe and unsafe answers the teacher stages compare.

Y_unsafe comes from a weakly aligned model, Y_safe from a safety-prompted strong model (or the seed's
data), and a benign seed's helpful answer from the strong model. A backend error marks the record
failed (kind ``teacher``), an empty answer after every attempt too (kind ``parse``).
"""

from __future__ import annotations

from typing import Any

from vlmguard.backends.base import VLM
from vlmguard.errors import BackendError, ImageError
from vlmguard.prompts import load_prompt
from vlmguard.synth.call_context import CallContext, call_with_context
from vlmguard.synth.records import StageName, SynthRecord
from vlmguard.synth.stage_common import failed, record_images, stage_done
from vlmguard.types import GenerateConfig, ImageData, Message

DEFAULT_RESPONSE_CONFIG = GenerateConfig(max_tokens=512, temperature=0.0)


class ResponseStage:
    """Response collection: Y_unsafe from a weakly aligned model, Y_safe from a safety-prompted strong
    model (or the data), a helpful answer from the strong model for benign seeds. Only missing
    responses are asked for; an empty answer is asked again up to ``attempts`` times.
    """

    name: StageName = StageName.RESPONSES
    fields: tuple[str, ...] = ("y_safe", "y_unsafe")

    def __init__(
        self,
        *,
        weak: VLM | None = None,
        strong: VLM | None = None,
        attempts: int = 2,
        config: GenerateConfig = DEFAULT_RESPONSE_CONFIG,
    ) -> None:
        self.weak = weak
        self.strong = strong
        self.attempts = max(1, attempts)
        self.config = config
        self.templates = {
            "weak": load_prompt("synth-respond-weak"),
            "safe": load_prompt("synth-respond-safe"),
            "helpful": load_prompt("synth-respond-helpful"),
        }

    @staticmethod
    def needs(record: SynthRecord) -> list[str]:
        """Which responses the record still lacks: ``weak`` (Y_unsafe), ``safe`` or ``helpful`` (Y_safe)."""
        out: list[str] = []
        if record.seed.kind == "unsafe":
            if not record.y_unsafe:
                out.append("weak")
            if not record.y_safe:
                out.append("safe")
        elif not record.y_safe:
            out.append("helpful")
        return out

    async def __call__(self, record: SynthRecord, teacher: VLM) -> SynthRecord:
        needs = self.needs(record)
        updates: dict[str, Any] = {}
        calls = 0
        templates: list[str] = []
        models: list[str] = []
        images: list[ImageData] = []
        if needs:
            try:
                images = record_images(record)
            except ImageError as exc:
                return failed(record, self.name, "input", str(exc))
        for need in needs:
            model = self.weak if need == "weak" else self.strong
            if model is None:
                which = "weak model (Y_unsafe)" if need == "weak" else "strong model (Y_safe)"
                return failed(
                    record, self.name, "config", f"no {which} configured and the seed has none", calls=calls
                )
            template = self.templates[need]
            system, user = template.render(user_prompt=record.seed.prompt)
            messages = ([Message.system(system)] if system else []) + [Message.user(user, *images)]
            text = ""
            for attempt in range(1, self.attempts + 1):
                calls += 1
                context = CallContext(record.id, self.name.value, attempt, role=need)
                try:
                    completion = await call_with_context(model, messages, self.config, context)
                except BackendError as exc:
                    return failed(
                        record,
                        self.name,
                        "teacher",
                        f"{need} model: {type(exc).__name__}: {exc}",
                        attempts=attempt,
                        calls=calls,
                    )
                text = completion.text.strip()
                if text:
                    models.append(f"{need}={completion.model}")
                    break
            if not text:
                return failed(
                    record,
                    self.name,
                    "parse",
                    f"{need} model gave an empty answer {self.attempts} time(s)",
                    attempts=self.attempts,
                    calls=calls,
                )
            updates["y_unsafe" if need == "weak" else "y_safe"] = text
            templates.append(template.id)
        return stage_done(
            record,
            self.name,
            updates,
            calls=calls,
            template=",".join(templates) or None,
            model=",".join(models) or None,
        )
