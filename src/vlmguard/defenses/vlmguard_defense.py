"""The VLMGuard defence: the request pipeline in front of a target (eval's ``vlmguard`` defence)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from vlmguard.backends.base import VLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.pipeline import Action, ConversationWindow, PipelineConfig, RequestPipeline, policy_of
from vlmguard.rewriter.base import Rewriter
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS
from vlmguard.types import Completion, FallbackPolicy, GenerateConfig, Message


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
        start = time.perf_counter()
        plan = await self.pipeline.run(messages)
        rewrite = plan.rewrite
        extra = rewrite.model_calls
        if plan.action == Action.REFUSE or plan.messages is None:
            elapsed = time.perf_counter() - start
            completion = Completion(text=plan.refusal or "", model="vlmguard", latency_s=elapsed,
                                    finish_reason="refused", rewrite=rewrite, calls=0)
            return DefenseResult(completion=completion, rewrite=rewrite, extra_calls=extra, latency_s=elapsed,
                                 overhead_s=elapsed, refused=True)
        sent = plan.messages
        before_target = time.perf_counter()
        answer = await target.generate(sent, config)
        end = time.perf_counter()
        return DefenseResult(
            completion=answer.model_copy(update={"rewrite": rewrite}),
            sent=sent, rewrite=rewrite, target_calls=1, extra_calls=extra,
            latency_s=end - start, overhead_s=(end - start) - (end - before_target),
        )
