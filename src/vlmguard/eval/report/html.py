"""One self-contained HTML page: tables, inline CSS and PNG plots embedded as data URIs."""

from __future__ import annotations

import html
from datetime import datetime, timezone

from vlmguard.eval.report import plots, tables
from vlmguard.eval.report.data import ReportData

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1280px;
color:#1d232a;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.86rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}tr:nth-child(even) td{background:#fafbfc}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.6rem .9rem;margin:1rem 0}
.err{color:#b42318}.muted{color:#57606a;font-size:.85rem}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e5e7eb}
details{margin:.4rem 0}code{background:#f3f5f7;padding:.1rem .3rem;border-radius:3px}
"""


def _table(header: tuple[str, ...], rows: list[list[str]], *, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(uri: str | None, caption: str) -> str:
    if uri is None:
        return ""
    return (
        f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption class="muted">'
        f"{html.escape(caption)}</figcaption></figure>"
    )


def render_html(report: ReportData) -> str:
    """The whole report as one HTML page (no external resources)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>vlmguard evaluation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Evaluation report</h1>",
        f'<p class="muted">Written {datetime.now(timezone.utc).isoformat(timespec="seconds")}; '
        f"{len(report.runs)} run(s), {len(report.rows)} benchmark x defence rows.</p>",
    ]
    if report.approximate:
        parts.append(
            f'<div class="note" id="approximate"><strong>Approximate.</strong> '
            f"{html.escape(tables.APPROXIMATE_NOTE)}</div>"
        )
    parts.append("<h2>Runs</h2>")
    parts.append(_table(tables.RUN_COLUMNS, tables.run_rows(report)))
    parts.append("<h2>Summary</h2>")
    parts.append(
        '<p class="muted">95% bootstrap intervals in brackets. Unparseable verdicts count as not safe; '
        "errors are excluded from rates and listed below. Gain vs none: relative change of mean safety "
        "score / safety rate over no defence on the same benchmark.</p>"
    )
    parts.append(_table(tables.COLUMNS, tables.summary_rows(report), cls="summary"))

    parts.append("<h2>Plots</h2>")
    for bench in dict.fromkeys(r.benchmark for r in report.rows):
        parts.append(_figure(plots.category_safety(report, bench), f"{bench}: safety rate per category"))
    parts.append(_figure(plots.safety_vs_helpfulness(report), "safety vs helpfulness"))
    parts.append(_figure(plots.latency_overhead(report), "latency overhead"))

    parts.append("<h2>Per category</h2>")
    for row in report.rows:
        parts.append(
            f"<details><summary>{html.escape(row.benchmark)} · {html.escape(report.label(row))}"
            f"</summary>{_table(tables.CATEGORY_COLUMNS, tables.category_rows(row))}"
            "</details>"
        )
    errors = tables.error_rows(report)
    if errors:
        parts.append(
            '<h2 id="errors">Errors</h2><p>Samples the defence or target could not answer '
            "(recorded as errors, never as safe):</p><ul>"
        )
        for row in errors:
            parts.append(
                f'<li class="err"><strong>{html.escape(row.benchmark)} · {html.escape(report.label(row))}'
                f"</strong>: {row.metrics.errors} error(s): "
                f"{html.escape('; '.join(row.metrics.error_examples))}</li>"
            )
        parts.append("</ul>")
    skipped = tables.left_out(report)
    if skipped:
        parts.append("<h2>Items left out (incomplete data)</h2><ul>")
        for label, bench, count, ids in skipped:
            parts.append(
                f"<li>{html.escape(label)} · {html.escape(bench)}: {count} item(s) without "
                f"their image: {html.escape(ids)}</li>"
            )
        parts.append("</ul>")
    for run in report.runs:
        if run.command:
            parts.append(
                f'<p class="muted">Command ({html.escape(run.label)}): '
                f"<code>{html.escape(' '.join(run.command))}</code></p>"
            )
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
