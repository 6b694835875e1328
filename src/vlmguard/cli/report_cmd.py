"""``vlmguard report RUN... --out DIR``: Markdown, JSON and one self-contained HTML page comparing runs."""

from __future__ import annotations

from pathlib import Path

import click

from vlmguard.cli.options import out_option, seed_option


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@out_option("Folder for the report files.", short=True)
@seed_option("Seed of the bootstrap intervals.")
@click.option("--print/--no-print", "show", default=True, show_default=True, help="Print the summary table.")
def report(runs: tuple[Path, ...], out: Path, seed: int, show: bool) -> None:
    """Compare evaluation runs side by side: report.md, report.json and report.html in --out."""
    from vlmguard.eval.report import collect, write_reports
    from vlmguard.eval.report.markdown import summary_table
    from vlmguard.eval.report.tables import APPROXIMATE_NOTE

    paths = write_reports(list(runs), out, seed=seed)
    if show:
        data = collect(list(runs), seed=seed)
        if data.approximate:
            click.echo(f"Approximate: {APPROXIMATE_NOTE}\n")
        click.echo(summary_table(data))
    click.echo(f"\nwrote {paths['markdown']}, {paths['json']}, {paths['html']}")
