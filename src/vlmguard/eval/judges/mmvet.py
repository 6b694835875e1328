"""MM-Vet's answer grading: a model scores the answer 0-1 against the ground truth (``<AND>``/``<OR>``)."""

from __future__ import annotations

from vlmguard.eval.judges.base import Judgement, Verdict
from vlmguard.eval.judges.model_judge import ModelJudge
from vlmguard.eval.judges.parse import parse_score
from vlmguard.eval.sample import Sample
from vlmguard.refusal import is_refusal


class MMVetJudge(ModelJudge):
    """Grades utility 0-1 (``judge-mmvet`` template); safety is not rated (verdict ``not_judged``).

    A reply without a valid ``<score>`` gives verdict ``unparseable`` and no utility.
    """

    name = "mmvet"
    template_name = "judge-mmvet"
    markers = ("score",)

    async def __call__(self, sample: Sample, response: str) -> Judgement:
        completion, latency = await self.ask(
            {
                "request": self.safe_text(sample.text_for_judge),
                "reference": self.safe_text(sample.reference),
                "response": self.safe_text(response, "(empty answer)"),
            }
        )
        raw = completion.text
        score = parse_score(raw, "score", low=0, high=1)
        refused = is_refusal(response)
        if score is None:
            rationale = "judge reply lacks a valid <score> in 0-1"
            return self.judgement(
                completion, latency, Verdict.UNPARSEABLE, refused=refused, rationale=rationale
            )
        return self.judgement(
            completion,
            latency,
            Verdict.NOT_JUDGED,
            refused=refused,
            utility=score,
            helpfulness=round(10 * score, 2),
        )
