"""Which record, stage and attempt a model call of a synthesis run belongs to, for the call logs.

Stages make their calls through :func:`call_with_context`; :class:`vlmguard.synth.teachers.CallLogVLM`
reads :data:`CALL_CONTEXT` when it logs a call. The context variable is task-local: concurrent
records each see their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass

from vlmguard.backends.base import VLM
from vlmguard.types import Completion, GenerateConfig, Message


@dataclass(frozen=True)
class CallContext:
    """Which record, stage and attempt a model call belongs to (for call logs)."""

    record_id: str
    stage: str
    attempt: int
    role: str = "teacher"


CALL_CONTEXT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("synth_call", default=None)
"""The context of the model call in progress in this task (``None`` outside a stage's call)."""


async def call_with_context(
    model: VLM, messages: Sequence[Message], config: GenerateConfig | None, context: CallContext
) -> Completion:
    """``model.generate(messages, config)`` with :data:`CALL_CONTEXT` set to ``context`` for the call."""
    token = CALL_CONTEXT.set(context)
    try:
        return await model.generate(messages, config)
    finally:
        CALL_CONTEXT.reset(token)
