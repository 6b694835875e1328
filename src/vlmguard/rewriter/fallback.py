"""What a rewriter does when it cannot produce a usable rewrite: fail closed or fail open."""

from __future__ import annotations

from vlmguard.types import Decision, FallbackPolicy, Finding, Modality, Rewrite, RiskReport, Severity

SAFETY_PREAMBLE = (
    "Answer the request below helpfully and specifically. Before answering, consider the image(s) and "
    "the text together: if any part of the request could lead to harm to the user or others (violence, "
    "self-harm, illegal acts, dangerous activities, hateful or sexual content, privacy invasion, fraud), "
    "do not provide that part; say briefly why, and offer safe, concrete alternatives or resources. "
    "Otherwise answer normally."
)


def fallback_rewrite(
    prompt: str,
    policy: FallbackPolicy,
    *,
    rewriter: str,
    error: str,
    latency_s: float = 0.0,
    raw_output: str | None = None,
    model_calls: int = 0,
) -> Rewrite:
    """The rewrite a ``policy`` gives when the rewriter failed with ``error``.

    - ``fail_closed``: a conservative safety rewrite that keeps the user's request (decision reframe).
    - ``fail_open``: the original prompt, forwarded unchanged (decision forward).
    Either way the result records the policy and the error.
    """
    finding = Finding(
        modality=Modality.CROSS_MODAL,
        severity=Severity.LOW,
        source="fallback",
        evidence=f"rewriter output unusable ({error}); {policy} policy applied",
    )
    if policy == "fail_closed":
        report = RiskReport(
            findings=[finding],
            severity=Severity.LOW,
            decision=Decision.REFRAME,
            analysis="The risk could not be analysed; a conservative safety rewrite was applied.",
        )
        new_prompt = f"{SAFETY_PREAMBLE}\n\nRequest: {prompt}"
    else:
        report = RiskReport(
            findings=[finding],
            severity=Severity.NONE,
            decision=Decision.FORWARD,
            analysis="The risk could not be analysed; the prompt was forwarded unchanged (fail-open).",
        )
        new_prompt = prompt
    return Rewrite(
        original_prompt=prompt,
        prompt=new_prompt,
        report=report,
        rewriter=rewriter,
        latency_s=latency_s,
        fallback=policy,
        error=error,
        raw_output=raw_output,
        model_calls=model_calls,
    )
