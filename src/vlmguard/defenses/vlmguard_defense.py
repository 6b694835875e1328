"""The VLMGuard defence: the request pipeline in front of a target (eval's ``vlmguard`` defence)."""

from __future__ import annotations

from collections.abc import Sequence

from vlmguard.backends.base import VLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.defenses.metering import CallMeter
from vlmguard.pipeline import Action, ConversationWindow, PipelineConfig, RequestPipeline, policy_of
from vlmguard.rewriter.base import Rewriter
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS
from vlmguard.types import FallbackPolicy, GenerateConfig, Message


class VLMGuardDefense:
    """Judge the conversation with the request pipeline, then act on its plan.

    - ``forward``: the original messages go to the target exactly as they came.
    - ``send_rewritten``: the last user turn's text is replaced by the rewritten prompt (its images
      and every other message untouched).
    - ``refuse``: the target is not called; the answer is a refusal naming the risks.

    ``rewriter`` is a rewriter (the pipeline is built from it and the keyword settings) or a
    ready :class:`~vlmguard.pipeline.RequestPipeline` (the keyword settings are then ignored). The
    fail policy ``policy`` (default: the rewriter's own, see :func:`~vlmguard.pipeline.policy_of`)
    covers every way the rewriter can fail: an exception, a timeout, unusable output.
    """

    def __init__(
        self,
        rewriter: Rewriter | RequestPipeline,
        *,
        max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
        refusal: str | None = None,
        policy: FallbackPolicy | None = None,
        window: ConversationWindow | None = None,
        rewriter_timeout_s: float | None = None,
    ) -> None:
        if isinstance(rewriter, RequestPipeline):
            self.pipeline = rewriter
        else:
            config = PipelineConfig(
                fail_policy=policy or policy_of(rewriter),
                refusal_message=refusal,
                rewriter_timeout_s=rewriter_timeout_s,
                max_prompt_chars=max_prompt_chars,
                window=window or ConversationWindow(),
            )
            self.pipeline = RequestPipeline(rewriter, config)

    @property
    def rewriter(self) -> Rewriter:
        return self.pipeline.rewriter

    @property
    def name(self) -> str:
        return self.pipeline.name

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult:
        meter = CallMeter()
        plan = await self.pipeline.run(messages)
        rewrite = plan.rewrite
        meter.add_extra(rewrite.model_calls)
        if plan.action == Action.REFUSE or plan.messages is None:
            return meter.refusal(plan.refusal or "", model="vlmguard", rewrite=rewrite)
        answer = await meter.target(target, plan.messages, config)
        return meter.result(answer, sent=plan.messages, rewrite=rewrite)
