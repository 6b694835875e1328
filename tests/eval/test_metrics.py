"""Metrics are pure functions: rates, unparseable handling, errors, gains, bootstrap intervals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vlmguard.eval.judges.base import Judgement, Verdict
from vlmguard.eval.metrics import (
    bootstrap_interval,
    by_category,
    group_metrics,
    relative_gain,
    safety_values,
)
from vlmguard.eval.record import ResultRecord
from vlmguard.eval.sample import Expected


def rec(
    verdict: Verdict | None,
    *,
    score: float | None = None,
    refused: bool | None = None,
    expected: Expected = Expected.HARMFUL,
    groups: list[str] | None = None,
    error: str | None = None,
    overhead: float = 0.0,
    extra: int = 0,
    sid: str = "x",
    helpful: float | None = None,
) -> ResultRecord:
    judgement = None
    if verdict is not None:
        judgement = Judgement(
            judge="t",
            judge_model="m",
            verdict=verdict,
            safety_score=score,
            refused=refused,
            helpfulness=helpful,
        )
    return ResultRecord(
        benchmark="b",
        defense="d",
        sample_id=sid,
        expected=expected,
        status="error" if error else "ok",
        error_type=error,
        error="reason" if error else None,
        judgement=judgement,
        groups=groups or ["all"],
        overhead_s=overhead,
        extra_calls=extra,
        target_calls=1,
    )


def test_unparseable_is_counted_as_not_safe_and_errors_are_excluded() -> None:
    records = [
        rec(Verdict.SAFE),
        rec(Verdict.SAFE),
        rec(Verdict.UNSAFE),
        rec(Verdict.UNPARSEABLE),
        rec(None, error="UnsupportedError"),
    ]
    m = group_metrics(records)
    assert m.n == 5 and m.judged == 4 and m.errors == 1 and m.unparseable == 1
    assert m.safety_rate is not None and m.safety_rate.value == 0.5
    assert m.error_types == {"UnsupportedError": 1}
    assert safety_values([rec(Verdict.NOT_JUDGED)]) == []


def test_defense_success_and_over_refusal_split_by_expectation() -> None:
    records = [
        rec(Verdict.SAFE, refused=True),
        rec(Verdict.UNSAFE, refused=False),
        rec(Verdict.SAFE, refused=True),
        rec(Verdict.NOT_JUDGED, refused=True, expected=Expected.BENIGN),
        rec(Verdict.NOT_JUDGED, refused=False, expected=Expected.BENIGN),
    ]
    m = group_metrics(records)
    assert m.defense_success_rate is not None and abs(m.defense_success_rate.value - 2 / 3) < 1e-9
    assert m.over_refusal_rate is not None and m.over_refusal_rate.value == 0.5


def test_scores_costs_and_categories() -> None:
    records = [
        rec(Verdict.SAFE, score=10, helpful=2, groups=["ocr", "math"], overhead=0.2, extra=2),
        rec(Verdict.UNSAFE, score=4, helpful=6, groups=["ocr"], overhead=0.4, extra=0),
    ]
    m = group_metrics(records)
    assert m.safety_score is not None and m.safety_score.value == 7
    assert m.helpfulness is not None and m.helpfulness.value == 4
    assert abs((m.overhead_s or 0) - 0.3) < 1e-9 and m.extra_calls == 1 and m.target_calls == 1
    assert m.added_calls == 1  # (1 + 2 - 1 + 1 + 0 - 1) / 2
    cats = by_category(records)
    assert set(cats) == {"ocr", "math"} and len(cats["ocr"]) == 2 and len(cats["math"]) == 1


def test_relative_gain() -> None:
    assert relative_gain(7.5, 5.0) == 50.0
    assert relative_gain(4.0, 5.0) == -20.0
    assert relative_gain(5.0, 0.0) is None and relative_gain(None, 3.0) is None


def test_bootstrap_is_reproducible_and_brackets_the_mean() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    a = bootstrap_interval(values, seed=1)
    b = bootstrap_interval(values, seed=1)
    assert a == b and a is not None
    assert a.low < a.value < a.high and a.n == 8
    assert bootstrap_interval([]) is None
    same = bootstrap_interval([3.0, 3.0])
    assert same is not None and same.low == same.high == 3.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=1, max_size=30))
def test_bootstrap_interval_stays_within_the_data(values: list[float]) -> None:
    interval = bootstrap_interval(values, resamples=200)
    assert interval is not None
    assert min(values) - 1e-9 <= interval.low <= interval.value <= interval.high <= max(values) + 1e-9
