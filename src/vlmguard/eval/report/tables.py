"""Formatting shared by the Markdown and HTML reports."""

from __future__ import annotations

from vlmguard.eval.metrics import GroupMetrics, Interval
from vlmguard.eval.report.data import ReportData, Row

APPROXIMATE_NOTE = (
    "Judged by the offline judge: refusal strings plus a harmful-content tagger and heuristics, no LLM. "
    "Its figures are approximate; use an LLM judge (--judge llm:SPEC or auto:SPEC) for paper-grade numbers."
)

COLUMNS = (
    "benchmark",
    "defence",
    "n",
    "safety score (0-10)",
    "safety rate",
    "gain vs none",
    "helpfulness (0-10)",
    "utility (0-1)",
    "defence success",
    "over-refusal",
    "overhead s",
    "extra calls",
    "errors",
)


def fmt_interval(value: Interval | None, *, percent: bool = False, digits: int = 2) -> str:
    """``0.72 [0.60, 0.84]`` or ``72.0% [60.0, 84.0]``; an en dash when there is no value."""
    if value is None:
        return "–"
    if percent:
        return f"{100 * value.value:.1f}% [{100 * value.low:.1f}, {100 * value.high:.1f}]"
    return f"{value.value:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}]"


def fmt_gain(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}%"


def fmt_float(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_errors(metrics: GroupMetrics) -> str:
    if not metrics.errors:
        return "0"
    kinds = ", ".join(f"{k} x{v}" for k, v in sorted(metrics.error_types.items()))
    return f"{metrics.errors} ({kinds})"


def row_cells(report: ReportData, row: Row) -> list[str]:
    """The cells of one summary row, in :data:`COLUMNS` order."""
    m = row.metrics
    return [
        row.benchmark,
        report.label(row),
        f"{m.judged}" + (f" (+{m.unparseable} unparseable)" if m.unparseable else ""),
        fmt_interval(m.safety_score),
        fmt_interval(m.safety_rate, percent=True),
        f"{fmt_gain(row.gain_safety_score)} / {fmt_gain(row.gain_safety_rate)}"
        if (row.gain_safety_score is not None or row.gain_safety_rate is not None)
        else "–",
        fmt_interval(m.helpfulness),
        fmt_interval(m.utility),
        fmt_interval(m.defense_success_rate, percent=True),
        fmt_interval(m.over_refusal_rate, percent=True),
        fmt_float(m.overhead_s, 3),
        fmt_float(m.added_calls),
        fmt_errors(m),
    ]


def category_cells(name: str, metrics: GroupMetrics) -> list[str]:
    return [
        name,
        str(metrics.judged),
        fmt_interval(metrics.safety_score),
        fmt_interval(metrics.safety_rate, percent=True),
        fmt_interval(metrics.helpfulness),
        fmt_interval(metrics.over_refusal_rate, percent=True),
        fmt_errors(metrics),
    ]


def category_rows(row: Row) -> list[list[str]]:
    """One row of cells per category of ``row``, for the ``CATEGORY_COLUMNS`` table."""
    return [category_cells(name, metrics) for name, metrics in row.categories.items()]


def summary_rows(report: ReportData) -> list[list[str]]:
    """One row of cells per run x benchmark x defence, for the ``COLUMNS`` table."""
    return [row_cells(report, row) for row in report.rows]


def error_rows(report: ReportData) -> list[Row]:
    """The rows with samples the defence or target could not answer."""
    return [row for row in report.rows if row.metrics.errors]


def left_out(report: ReportData, *, show: int = 20) -> list[tuple[str, str, int, str]]:
    """Items left out for incomplete data: (run label, benchmark, count, the first ``show`` ids)."""
    found = []
    for run in report.runs:
        for bench, items in run.skipped.items():
            ids = ", ".join(i.get("id", "?") for i in items[:show]) + (" ..." if len(items) > show else "")
            found.append((run.label, bench, len(items), ids))
    return found


CATEGORY_COLUMNS = ("category", "n", "safety score", "safety rate", "helpfulness", "over-refusal", "errors")

RUN_COLUMNS = ("run", "target", "judge", "judge model", "judge prompt", "status")


def run_rows(report: ReportData) -> list[list[str]]:
    """One row of cells per run, for the ``RUN_COLUMNS`` table."""
    return [
        [
            r.label,
            r.target,
            r.judge + (" (approximate)" if r.approximate else ""),
            r.judge_model,
            r.judge_prompt or "–",
            r.status,
        ]
        for r in report.runs
    ]
