"""``vlmguard eval`` (run defences x benchmarks against a target, judged, resumable) and the listings
``vlmguard benchmarks``, ``vlmguard defenses``, ``vlmguard judges``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from vlmguard.cli.options import (
    concurrency_option,
    max_tokens_option,
    out_option,
    retries_option,
    timeout_option,
)

DEFAULT_FOLDERS = {
    "figstep": "figstep",
    "siuo": "siuo",
    "mmvet": "mm-vet",
    "mossbench": "mossbench",
    "vlguard": "vlguard",
    "mmsafetybench": "mm-safetybench",
}
"""Sub-folders looked for under ``--data`` when several benchmarks share one data root."""


def resolve_data(name: str, data: Path | None) -> Path:
    """The data path of benchmark ``name``: ``--data/<default folder>`` when that exists, else ``--data``."""
    if data is None:
        raise click.UsageError(f"benchmark {name!r} needs data: --data DIR or --benchmark {name}=DIR")
    sub = DEFAULT_FOLDERS.get(name)
    if sub and (data / sub).is_dir():
        return data / sub
    return data


@click.command("eval")
@click.option(
    "-b",
    "--benchmark",
    "benchmarks",
    multiple=True,
    required=True,
    metavar="NAME[=DIR]",
    help="Benchmark to run (repeatable); NAME=DIR gives its data folder (or file for jsonl/csv).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Data folder (or a root holding one sub-folder per benchmark, e.g. ../shared/data).",
)
@click.option(
    "--images", type=click.Path(path_type=Path), help="Images folder (SIUO, VLGuard: distributed apart)."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N samples per benchmark.")
@click.option("--category", "categories", multiple=True, help="Keep only this category (repeatable).")
@click.option(
    "--variant",
    help="Benchmark variant (figstep: figstep|text; mmsafetybench: SD|SD_TYPO|TYPO|text; "
    "vlguard: safe_safes|safe_unsafes|unsafes).",
)
@click.option(
    "--stratify/--no-stratify",
    default=True,
    show_default=True,
    help="With --limit, spread samples over categories instead of taking the first N.",
)
@click.option(
    "-d",
    "--defense",
    "defenses",
    multiple=True,
    default=("none",),
    show_default=True,
    help="Defence spec (repeatable), e.g. none, vlmguard?rewriter=evidence, ecso, eta?n=3.",
)
@click.option("-t", "--target", default="smollm2:", show_default=True, help="Target model backend spec.")
@click.option(
    "-j",
    "--judge",
    default="offline",
    show_default=True,
    help="Judge: offline, refusal, llm:SPEC, siuo:SPEC, mmvet:SPEC, auto[:SPEC].",
)
@out_option("Run folder (created; an existing one is resumed).", short=True)
@concurrency_option("Samples in flight at once.", 4, short=True)
@retries_option("Retries of retryable backend errors.", 2)
@click.option(
    "--cache", type=click.Path(path_type=Path), help="Response cache file [default: RUN/cache.sqlite]."
)
@click.option("--no-cache", is_flag=True, help="Do not cache responses.")
@timeout_option("Seconds per sample before it is recorded as an error.")
@click.option("--retry-errors", is_flag=True, help="On resume, run again the samples recorded as errors.")
@max_tokens_option("Answer length limit given to the target.", 256)
@click.option(
    "--temperature",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 2),
    help="Target sampling temperature (0: greedy, reproducible and cacheable).",
)
@click.option("--report/--no-report", default=True, show_default=True, help="Write RUN/report/ when done.")
def eval_cmd(
    benchmarks: tuple[str, ...],
    data: Path | None,
    images: Path | None,
    limit: int | None,
    categories: tuple[str, ...],
    variant: str | None,
    stratify: bool,
    defenses: tuple[str, ...],
    target: str,
    judge: str,
    out: Path,
    concurrency: int,
    retries: int,
    cache: Path | None,
    no_cache: bool,
    timeout: float | None,
    retry_errors: bool,
    max_tokens: int,
    temperature: float,
    report: bool,
) -> None:
    """Evaluate defences on benchmarks against a target, judge every answer, and store the results.

    Re-running the same command resumes: finished samples are skipped, so a killed run ends with
    every sample judged exactly once.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vlmguard.eval.benchmarks import BenchmarkOptions
    from vlmguard.eval.record import ResultRecord
    from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval
    from vlmguard.types import GenerateConfig

    if cache is not None and no_cache:
        raise click.UsageError("--cache and --no-cache contradict each other; give one of them")
    specs = []
    for item in benchmarks:
        name, sep, path = item.partition("=")
        folder = Path(path) if sep else resolve_data(name, data)
        specs.append(
            BenchmarkSpec(
                name=name,
                options=BenchmarkOptions(
                    data=folder,
                    images=images,
                    limit=limit,
                    categories=categories,
                    variant=variant,
                    stratify=stratify,
                ),
            )
        )
    config = RunConfig(
        benchmarks=specs,
        defenses=list(dict.fromkeys(defenses)),
        target=target,
        judge=judge,
        generate=GenerateConfig(max_tokens=max_tokens, temperature=temperature),
        concurrency=concurrency,
        retries=retries,
        cache=cache,
        use_cache=not no_cache,
        timeout_s=timeout,
        retry_errors=retry_errors,
    )
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    )
    task = progress.add_task("", total=None)
    try:  # the bar appears with the first record: a run refused up front prints only its error line

        def on_record(record: ResultRecord, done: int, total: int) -> None:
            if not progress.live.is_started:
                progress.start()
            status = "" if record.status == "ok" else f"[red]{record.error_type}[/red] "
            progress.update(
                task,
                completed=done,
                total=total,
                description=f"{status}{record.benchmark} {record.defense} {record.sample_id}",
            )

        summary = asyncio.run(run_eval(config, out, progress=on_record, command=["vlmguard", *sys.argv[1:]]))
    finally:
        progress.stop()
    skipped = "".join(
        f"; {n} {b} item(s) left out (missing images, listed in the manifest)"
        for b, n in summary.skipped_items.items()
    )
    click.echo(
        f"{out}: {summary.completed} judged, {summary.errors} error(s), {summary.already_done} already done "
        f"(resumed); {summary.model_calls} target model call(s), {summary.judge_calls} judge call(s); "
        f"{summary.wall_s:.1f}s{skipped}"
    )
    if report:
        from vlmguard.eval.report import write_reports

        paths = write_reports([out], out / "report")
        click.echo(f"report: {paths['markdown']}  {paths['html']}")


def _table(title: str, rows: Sequence[Sequence[str]], columns: tuple[str, ...]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@click.command()
def benchmarks() -> None:
    """List benchmarks, their kind and variants."""
    from vlmguard.eval.benchmarks.base import BENCHMARKS, get_benchmark

    rows = []
    for entry in BENCHMARKS.entries():
        bench = get_benchmark(entry.name)
        rows.append(
            (
                entry.name,
                bench.kind,
                ", ".join(bench.variants) or "–",
                bench.description,
                DEFAULT_FOLDERS.get(entry.name, ""),
            )
        )
    _table(
        "benchmarks (--benchmark NAME[=DIR])",
        rows,
        ("name", "kind", "variants", "what it is", "data sub-folder"),
    )


@click.command()
def defenses() -> None:
    """List defences and an example spec of each."""
    from vlmguard.defenses.base import DEFENSES
    from vlmguard.defenses.catalog import EXAMPLES

    rows = [(e.name, e.help, EXAMPLES.get(e.name, e.name)) for e in DEFENSES.entries()]
    _table("defences (--defense NAME[?key=value&...])", rows, ("name", "what it is", "example"))


@click.command()
def judges() -> None:
    """List judges and whether they need a model."""
    from vlmguard.eval.judges import JUDGES, NEEDS_MODEL

    rows = []
    for entry in JUDGES.entries():
        needs = "yes" if entry.name in NEEDS_MODEL else ("optional" if entry.name == "auto" else "no")
        example = f"{entry.name}:openai:gpt-4o@https://api.openai.com/v1" if needs != "no" else entry.name
        rows.append((entry.name, entry.help, needs, example))
    _table("judges (--judge NAME[:BACKEND_SPEC])", rows, ("name", "what it is", "needs a model", "example"))
