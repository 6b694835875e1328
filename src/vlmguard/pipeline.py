"""The request pipeline: the only code that turns a conversation into a judged request and a plan.

Every front end judges a conversation through :class:`RequestPipeline` (``Guard``, the
``vlmguard guard`` command, the proxy and eval's ``vlmguard`` defence); they only translate their
input into :class:`~vlmguard.types.Message` lists and the :class:`Plan` into their output.

1. **Find the turns to judge** (:func:`select_turns`): the last user turn is the request; before it,
   a window of earlier turns (:class:`ConversationWindow`: at most ``max_turns`` turns and
   ``max_chars`` characters of their text, the most recent first). System messages are not turns.
   Earlier user turns come with their images; assistant turns are untrusted content (they can carry
   text an earlier upstream answer or a tool put there). When the last user turn has no image of its
   own, the images of the latest earlier user turn are analysed with it (the text may refer to them).
2. **Clean the text**: the request through :func:`vlmguard.text.clean_prompt` (length limit; a
   request needs text or an image), earlier turns through :func:`vlmguard.text.normalize_text`.
3. **Run the rewriter** under a time limit, with the earlier turns as its ``history``.
4. **Apply the fail policy**, here and nowhere else, whenever the guard could not judge: the
   rewriter raised (anything but :class:`~vlmguard.errors.InputError`, which is the caller's fault
   and propagates), did not answer in time, or returned an unusable rewrite (its own fallback, or a
   reframe without a prompt). ``fail_closed`` sends a conservative safety rewrite (or, with
   ``fail_closed_action="refuse"``, refuses); ``fail_open`` forwards unchanged. The rewrite records
   the policy and the reason.
5. **Plan**: ``forward`` (the messages exactly as they came), ``send_rewritten`` (the last user
   turn's text replaced by the rewritten prompt; its images and every other message untouched) or
   ``refuse`` (the target is not called; the refusal text names the risks found).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import InputError, VLMGuardError
from vlmguard.refusal import refusal_message
from vlmguard.rewriter.base import Rewriter
from vlmguard.rewriter.fallback import fallback_rewrite
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS, clean_prompt, normalize_text
from vlmguard.types import (
    Decision,
    FallbackPolicy,
    Finding,
    ImageData,
    Message,
    Modality,
    Rewrite,
    RiskReport,
    Severity,
    StrEnum,
    Turn,
)

log = logging.getLogger("vlmguard.pipeline")

FailClosedAction = Literal["rewrite", "refuse"]
FailureKind = Literal["error", "timeout", "unusable"]


class ConversationWindow(BaseModel):
    """How much of the conversation before the last user turn the guard reads.

    Turns are taken from the most recent backwards until ``max_turns`` turns or ``max_chars``
    characters of text are read; a turn that does not fit whole is cut to the characters left (its
    start kept) and older turns are not read. ``max_turns=0`` judges the last user turn alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_turns: int = Field(8, ge=0)
    """Earlier turns (user and assistant) read at most."""
    max_chars: int = Field(8000, ge=0)
    """Characters of earlier turns' text read at most."""


class PipelineConfig(BaseModel):
    """The settings of the request pipeline, the same for every front end."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    fail_policy: FallbackPolicy = "fail_closed"
    """What happens when the guard cannot judge a request (rewriter error, timeout, unusable output)."""
    fail_closed_action: FailClosedAction = "rewrite"
    """What ``fail_closed`` does: a conservative safety rewrite, or a refusal."""
    refusal_message: str | None = None
    """The answer of a refusal; ``None`` writes one naming the risks found."""
    rewriter_timeout_s: float | None = Field(None, gt=0)
    """The rewriter's time limit per request (``None``: no limit)."""
    max_prompt_chars: int = Field(DEFAULT_MAX_PROMPT_CHARS, ge=1)
    """The length limit of the last user turn's text."""
    window: ConversationWindow = Field(default_factory=ConversationWindow)


class GuardRequest(BaseModel):
    """The turns the guard judges: the last user turn (the request) and the window of turns before it."""

    model_config = ConfigDict(frozen=True)
    index: int
    """The last user turn's position in the messages (system messages included)."""
    turn: int
    """The last user turn's turn number (0-based, over user and assistant messages; as ``Turn.index``)."""
    prompt: str
    """Its cleaned text."""
    images: tuple[ImageData, ...] = ()
    """The images analysed with it: its own, or the latest earlier user turn's."""
    history: tuple[Turn, ...] = ()
    """The earlier turns read, oldest first."""


class Action(StrEnum):
    """What a front end does with a judged request."""

    FORWARD = "forward"
    """Send the messages exactly as they came."""
    SEND_REWRITTEN = "send_rewritten"
    """Send the messages with the last user turn's text replaced by the rewritten prompt."""
    REFUSE = "refuse"
    """Do not call the target; answer with the refusal text."""


class Plan(BaseModel):
    """A judged request and what to do with it."""

    request: GuardRequest
    rewrite: Rewrite
    action: Action
    messages: list[Message] | None = None
    """What the target gets (``None`` when refused)."""
    refusal: str | None = None
    """The answer written by the guard when refused."""
    rewrite_s: float = 0.0
    """Time spent judging (the rewriter and the fail policy)."""
    failure: FailureKind | None = None
    """Why the fail policy decided, when it did: the rewriter raised (``error``), did not answer in
    time (``timeout``) or gave unusable output (``unusable``)."""

    @property
    def fallback(self) -> FallbackPolicy | None:
        """The fail policy applied, if any."""
        return self.rewrite.fallback


def _turn_numbers(messages: Sequence[Message]) -> list[int]:
    """Each message's turn number (system messages share the number of the next turn; they are skipped)."""
    out, n = [], 0
    for message in messages:
        out.append(n)
        n += message.role != "system"
    return out


def select_turns(
    messages: Sequence[Message],
    *,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    window: ConversationWindow | None = None,
) -> GuardRequest:
    """The turns of ``messages`` the guard judges (step 1-2 of the module docstring).

    Raises :class:`InputError` (``no_user_message``, ``empty_prompt``, ``prompt_too_long``...) with
    ``param`` naming the message at fault.
    """
    window = window or ConversationWindow()
    index = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if index is None:
        raise InputError("the conversation has no user message", code="no_user_message", param="messages")
    last = messages[index]
    param = f"messages.{index}.content"
    try:
        prompt = clean_prompt(last.text, max_chars=max_prompt_chars, allow_empty=True)
    except InputError as exc:
        raise InputError(str(exc), code=exc.code, param=param) from None
    if not prompt and not last.images:
        raise InputError(
            "prompt is empty: the last user message has neither text nor an image",
            code="empty_prompt",
            param=param,
        )
    images, borrowed = list(last.images), None
    if not images:
        earlier = (i for i in range(index - 1, -1, -1) if messages[i].role == "user" and messages[i].images)
        borrowed = next(earlier, None)
        images = messages[borrowed].images if borrowed is not None else []
    numbers = _turn_numbers(messages)
    history: list[Turn] = []
    budget = window.max_chars
    for i in range(index - 1, -1, -1):
        if len(history) >= window.max_turns or budget <= 0:
            break
        message = messages[i]
        if message.role == "system":
            continue
        text = normalize_text(message.text).strip()[:budget]
        budget -= len(text)
        turn_images = () if i == borrowed else tuple(message.images)  # judged as the request's own
        if text or turn_images:
            history.append(Turn(role=message.role, text=text, images=turn_images, index=numbers[i]))
    return GuardRequest(
        index=index,
        turn=numbers[index],
        prompt=prompt,
        images=tuple(images),
        history=tuple(reversed(history)),
    )


def policy_of(rewriter: Rewriter) -> FallbackPolicy:
    """The fail policy a rewriter was built with (a model rewriter's ``policy``), else ``fail_closed``:
    the default of front ends that are given a ready rewriter and no policy."""
    policy = getattr(rewriter, "policy", None)
    return policy if policy in ("fail_closed", "fail_open") else "fail_closed"  # type: ignore[return-value]


def _unusable(rewrite: Rewrite) -> str | None:
    """Why ``rewrite`` cannot be used, or ``None`` when it can."""
    if rewrite.fallback is not None:
        return rewrite.error or "the rewriter could not produce a usable rewrite"
    if rewrite.decision == Decision.REFRAME and not rewrite.prompt.strip():
        return "the rewriter returned a reframe without a rewritten prompt"
    return None


def _refusal_rewrite(rewrite: Rewrite) -> Rewrite:
    """``rewrite`` (a fail-closed fallback) turned into a refusal."""
    finding = Finding(
        modality=Modality.CROSS_MODAL,
        severity=Severity.LOW,
        source="fallback",
        evidence=f"the request could not be analysed ({rewrite.error}); fail_closed policy applied",
    )
    report = RiskReport(
        findings=[finding],
        severity=Severity.LOW,
        decision=Decision.REFUSE,
        analysis="The risk could not be analysed; the request was refused (fail-closed).",
    )
    return rewrite.model_copy(update={"report": report, "prompt": ""})


class RequestPipeline:
    """Judges conversations with ``rewriter`` under ``config`` (see the module docstring).

    ``redact`` cleans error text before it is logged (the proxy removes its upstream key).
    """

    def __init__(
        self,
        rewriter: Rewriter,
        config: PipelineConfig | None = None,
        *,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.rewriter = rewriter
        self.config = config or PipelineConfig()
        self._redact = redact or (lambda text: text)

    @property
    def name(self) -> str:
        return f"vlmguard[{self.rewriter.name}]"

    def select(self, messages: Sequence[Message]) -> GuardRequest:
        """The turns of ``messages`` to judge, with this pipeline's limits and window."""
        config = self.config
        return select_turns(messages, max_prompt_chars=config.max_prompt_chars, window=config.window)

    async def run(self, messages: Sequence[Message]) -> Plan:
        """Judge ``messages`` and plan what to send. Raises :class:`InputError` for bad input only."""
        return await self.judge(messages, self.select(messages))

    async def judge(self, messages: Sequence[Message], request: GuardRequest) -> Plan:
        """Judge ``request`` (selected from ``messages``) and plan what to send."""
        rewrite, elapsed, failure = await self._rewrite(request)
        judged = {"request": request, "rewrite": rewrite, "rewrite_s": elapsed, "failure": failure}
        if rewrite.decision == Decision.REFUSE:
            text = self.config.refusal_message or refusal_message(rewrite.report)
            return Plan(**judged, action=Action.REFUSE, refusal=text)
        if rewrite.decision == Decision.FORWARD and not rewrite.changed:
            return Plan(**judged, action=Action.FORWARD, messages=list(messages))
        i = request.index
        sent = [*messages[:i], messages[i].with_text(rewrite.prompt), *messages[i + 1 :]]
        return Plan(**judged, action=Action.SEND_REWRITTEN, messages=sent)

    async def _rewrite(self, request: GuardRequest) -> tuple[Rewrite, float, FailureKind | None]:
        start = time.perf_counter()
        timeout = self.config.rewriter_timeout_s
        images = list(request.images)
        rewrite: Rewrite | None = None
        failure: FailureKind | None = None
        reason = ""
        try:
            # history goes only where there is one, so rewriters written for single turns keep working
            if request.history:
                call = self.rewriter.rewrite(request.prompt, images, list(request.history))
            else:
                call = self.rewriter.rewrite(request.prompt, images)
            rewrite = await asyncio.wait_for(call, timeout=timeout)
        except InputError:
            raise
        except Exception as exc:  # the guard could not judge: the fail policy decides below
            if isinstance(exc, asyncio.TimeoutError) and timeout is not None:
                failure, reason = "timeout", f"the rewriter did not answer within {timeout:g} s"
            else:
                code = f": {exc.code}" if isinstance(exc, VLMGuardError) else ""
                failure, reason = "error", f"the rewriter failed ({type(exc).__name__}{code})"
                log.warning("rewriter failed: %s: %s", type(exc).__name__, self._redact(str(exc))[:300])
        elapsed = time.perf_counter() - start
        if rewrite is not None and (unusable := _unusable(rewrite)) is not None:
            failure, reason = "unusable", unusable
        if failure is None and rewrite is not None:
            return rewrite, elapsed, None
        fallback = fallback_rewrite(
            request.prompt,
            self.config.fail_policy,
            rewriter=self.rewriter.name,
            error=reason,
            latency_s=elapsed,
            raw_output=rewrite.raw_output if rewrite is not None else None,
            model_calls=rewrite.model_calls if rewrite is not None else 0,
        )
        if fallback.fallback == "fail_closed" and self.config.fail_closed_action == "refuse":
            fallback = _refusal_rewrite(fallback)
        log.info("fail policy %s applied: %s", self.config.fail_policy, reason)
        return fallback, elapsed, failure


__all__ = [
    "Action",
    "ConversationWindow",
    "GuardRequest",
    "PipelineConfig",
    "Plan",
    "RequestPipeline",
    "policy_of",
    "select_turns",
]
