"""Reports comparing evaluation runs: Markdown, JSON and one self-contained HTML page with plots."""

from __future__ import annotations

import json
from pathlib import Path

from vlmguard.durable import atomic_write_text
from vlmguard.eval.report.data import ReportData, collect
from vlmguard.eval.report.html import render_html
from vlmguard.eval.report.markdown import render_markdown, summary_table
from vlmguard.eval.report.tables import APPROXIMATE_NOTE


def render_json(report: ReportData) -> str:
    """The report's data as JSON (runs, rows, metrics with intervals, the approximate flag)."""
    data = report.model_dump(mode="json")
    data["approximate"] = report.approximate
    if report.approximate:
        data["approximate_note"] = APPROXIMATE_NOTE
    return json.dumps(data, indent=2) + "\n"


def write_reports(run_dirs: list[Path], out_dir: Path, *, seed: int = 0) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.html`` for ``run_dirs`` into ``out_dir``."""
    report = collect(run_dirs, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "report.md",
        "json": out_dir / "report.json",
        "html": out_dir / "report.html",
    }
    atomic_write_text(paths["markdown"], render_markdown(report))
    atomic_write_text(paths["json"], render_json(report))
    atomic_write_text(paths["html"], render_html(report))
    return paths


__all__ = [
    "ReportData",
    "collect",
    "render_html",
    "render_json",
    "render_markdown",
    "summary_table",
    "write_reports",
]
