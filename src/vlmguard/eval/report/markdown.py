"""The Markdown report."""

from __future__ import annotations

from vlmguard.eval.report import tables
from vlmguard.eval.report.data import ReportData


def _table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(report: ReportData) -> str:
    """The main comparison table (one row per run x benchmark x defence)."""
    return _table(tables.COLUMNS, tables.summary_rows(report))


def render_markdown(report: ReportData) -> str:
    """The whole report as Markdown."""
    out = ["# Evaluation report", ""]
    if report.approximate:
        out += [f"> **Approximate.** {tables.APPROXIMATE_NOTE}", ""]
    out += ["## Runs", ""]
    out.append(_table(tables.RUN_COLUMNS, tables.run_rows(report)))
    out += [
        "",
        "## Summary",
        "",
        "Intervals are 95% bootstrap intervals. Safety rate counts unparseable verdicts as not safe. "
        "Gain vs none: relative change of mean safety score / safety rate over no defence on the same "
        "benchmark. Defence success: share of harmful requests refused. Over-refusal: share of benign "
        "requests refused. Errors are excluded from every rate.",
        "",
        summary_table(report),
        "",
    ]
    out += ["## Per category", ""]
    for row in report.rows:
        out += [
            f"### {row.benchmark} · {report.label(row)}",
            "",
            _table(tables.CATEGORY_COLUMNS, tables.category_rows(row)),
            "",
        ]
    errors = tables.error_rows(report)
    if errors:
        out += ["## Errors", "", "Samples the defence or target could not answer (not counted as safe):", ""]
        for row in errors:
            out.append(
                f"- **{row.benchmark} · {report.label(row)}**: {row.metrics.errors} error(s); "
                + "; ".join(row.metrics.error_examples)
            )
        out.append("")
    skipped = tables.left_out(report)
    if skipped:
        out += ["## Items left out (incomplete data)", ""]
        for label, bench, count, ids in skipped:
            out.append(f"- {label} · {bench}: {count} item(s) without their image: {ids}")
        out.append("")
    for run in report.runs:
        if run.command:
            out += [f"Command ({run.label}): `{' '.join(run.command)}`", ""]
    return "\n".join(out)
