"""``vlmguard synth``: run the three-stage synthesis, show its status, export SFT rows, render typography."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from vlmguard.cli.options import (
    checked,
    concurrency_option,
    json_option,
    max_tokens_option,
    out_option,
    retries_option,
    seed_option,
    timeout_option,
)


@click.group()
def synth() -> None:
    """Synthesise rewriter training data with a teacher VLM (three reasoning stages)."""


@synth.command("run")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML config (flags override it)."
)
@out_option("Run folder; an existing one is resumed.", required=False)
@click.option(
    "--seeds",
    multiple=True,
    help="Seed source LOADER:PATH[?opt=v] (repeatable), e.g. vlguard:train.json?images=DIR.",
)
@click.option("--limit", type=int, help="Use at most this many seeds.")
@click.option(
    "--teacher", multiple=True, help="Teacher backend spec (repeatable: several endpoints share the load)."
)
@click.option("--weak", help="Weakly aligned model spec for missing unsafe responses.")
@click.option("--strong", help="Strong model spec for missing safe / helpful responses.")
@concurrency_option("Records in flight at once.")
@click.option("--parse-attempts", type=int, help="Tries per stage when the answer does not parse.")
@retries_option("Retries of a call after a timeout or server error.")
@timeout_option("Per-call time limit in seconds.", "timeout_s")
@max_tokens_option("Teacher answer length limit.")
@click.option(
    "--verify-target",
    "verify_targets",
    multiple=True,
    help="Verify rewrites against this target (repeatable).",
)
@click.option("--judge", help="Judge for verification: offline, llm:SPEC, or a model spec.")
@click.option("--call-log", help="Append one JSON line per model call to this file.")
@click.option(
    "--retry-failed", is_flag=True, default=None, help="Also retry records whose answers did not parse."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option("Print the summary as JSON.")
def run_cmd(
    config_path: Path | None,
    out: Path | None,
    seeds: tuple[str, ...],
    limit: int | None,
    teacher: tuple[str, ...],
    weak: str | None,
    strong: str | None,
    concurrency: int | None,
    parse_attempts: int | None,
    retries: int | None,
    timeout_s: float | None,
    max_tokens: int | None,
    verify_targets: tuple[str, ...],
    judge: str | None,
    call_log: str | None,
    retry_failed: bool | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Run (or resume) synthesis: responses -> hindsight -> causal -> optimize (-> verify)."""
    from vlmguard.synth.config import load_config
    from vlmguard.synth.pipeline import run_synthesis

    overrides: dict[str, Any] = {
        "out": str(out) if out is not None else None,
        "seeds": seeds,
        "limit": limit,
        "teacher": teacher,
        "weak": weak,
        "strong": strong,
        "concurrency": concurrency,
        "parse_attempts": parse_attempts,
        "retries": retries,
        "timeout_s": timeout_s,
        "max_tokens": max_tokens,
        "call_log": call_log,
        "retry_failed": retry_failed,
    }
    if verify_targets or judge:
        if not (verify_targets and judge):
            raise click.UsageError("verification needs both --verify-target and --judge")
        overrides["verify"] = {"targets": list(verify_targets), "judge": judge}
    config = load_config(config_path, overrides)
    summary = asyncio.run(run_synthesis(config, progress=not no_progress and not as_json))
    if as_json:
        click.echo(summary.model_dump_json(indent=2))
        return
    click.echo(
        f"{summary.done}/{summary.total} records done, {summary.failed} failed; "
        f"this run: {summary.processed} "
        f"records in {summary.elapsed_s:.1f}s ({summary.records_per_s:.2f} rec/s), "
        f"{summary.teacher_calls} teacher calls, {summary.other_calls} other model calls"
    )
    for key, count in sorted(summary.failures.items()):
        click.echo(f"  failed at {key}: {count}")


@synth.command("status")
@click.argument("folder", type=click.Path(path_type=Path))
@json_option("Print JSON.")
def status_cmd(folder: Path, as_json: bool) -> None:
    """Counts of a run per stage, category, decision and failure."""
    from rich.console import Console
    from rich.table import Table

    from vlmguard.synth.status import run_status

    report = run_status(folder)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    console = Console()
    console.print(
        f"[bold]{report.folder}[/]: {report.total} records, {report.done} done, "
        f"{report.failed} failed, {report.pending} pending, {report.teacher_calls} teacher calls"
    )
    for title, counts in (
        ("stage (finished)", report.stages),
        ("kind", report.kinds),
        ("category", report.categories),
        ("decision", report.decisions),
        ("failure", report.failures),
        ("verification", report.verification),
    ):
        if not counts:
            continue
        table = Table(title=title, show_header=False)
        for key, value in counts.items():
            table.add_row(key, str(value))
        console.print(table)
    for line in report.failure_examples:
        console.print(f"[red]failed[/] {line}")


@synth.command("export")
@click.argument("folder", type=click.Path(path_type=Path))
@out_option("Output folder for train/validation JSONL, images and the card.")
@click.option("--mix", help="SAFETY:HELPFULNESS row ratio (the paper: 8904:977); default keeps all rows.")
@click.option("--max-rows", type=int, help="Cap on rows in all.")
@click.option(
    "--val-fraction", type=float, default=0.05, show_default=True, help="Share of images in validation."
)
@seed_option("Seed of the mix sampling and the split.")
@click.option("--no-refuse", is_flag=True, help="Leave out rows whose decision is refuse.")
@json_option("Print the dataset card as JSON.")
def export_cmd(
    folder: Path,
    out: Path,
    mix: str | None,
    max_rows: int | None,
    val_fraction: float,
    seed: int,
    no_refuse: bool,
    as_json: bool,
) -> None:
    """Write SFT rows (TRL vision-language format) and a dataset card from a run."""
    from vlmguard.synth.export import ExportConfig, export_run

    config = checked(
        ExportConfig,
        out=str(out),
        mix=mix,
        max_rows=max_rows,
        val_fraction=val_fraction,
        seed=seed,
        include_refuse=not no_refuse,
    )
    card = export_run(folder, config)
    if as_json:
        click.echo(card.model_dump_json(indent=2))
        return
    click.echo(
        f"wrote {card.rows['total']} rows "
        f"(train {card.rows['train']}, validation {card.rows['validation']}), "
        f"{card.images} images, card: {Path(out) / 'README.md'}"
    )
    if card.standin_teacher:
        click.echo(
            "note: made with the offline stand-in teacher; real use needs a strong teacher VLM", err=True
        )


@synth.command("render-typography")
@click.option(
    "--input", "input_path", type=click.Path(path_type=Path), help="Requests: .txt, .csv or .jsonl."
)
@click.option("--text", "texts", multiple=True, help="A request to render (repeatable).")
@click.option("--column", default="text", show_default=True, help="Text column of a CSV / JSONL input.")
@out_option("Output folder.")
@click.option("--font", default="DejaVuSans-Bold", show_default=True, help="Font name (DejaVu) or .ttf path.")
@click.option("--font-size", type=int, default=52, show_default=True)
@click.option("--width", type=int, default=760, show_default=True)
@click.option("--height", type=int, default=760, show_default=True)
@click.option("--layout", type=click.Choice(["figstep", "plain"]), default="figstep", show_default=True)
@click.option("--items", type=int, default=3, show_default=True, help="Empty list items under the request.")
@click.option("--noise", type=float, default=0.0, show_default=True, help="Pixel noise blend 0-1.")
@click.option("--rotation", type=float, default=0.0, show_default=True, help="Max rotation in degrees.")
@click.option("--jitter", type=int, default=0, show_default=True, help="Max text offset in pixels.")
@seed_option("Seed of the noise, rotation and offset draws.")
def render_cmd(
    input_path: Path | None,
    texts: tuple[str, ...],
    column: str,
    out: Path,
    font: str,
    font_size: int,
    width: int,
    height: int,
    layout: str,
    items: int,
    noise: float,
    rotation: float,
    jitter: int,
    seed: int,
) -> None:
    """Render text requests into FigStep-style typographic images (PNG + index.jsonl)."""
    from vlmguard.durable import atomic_write_bytes, atomic_write_text
    from vlmguard.synth.loaders.text_requests import read_requests
    from vlmguard.synth.typography import TypographyStyle, render_typography

    style = checked(
        TypographyStyle,
        font=font,
        font_size=font_size,
        width=width,
        height=height,
        layout=layout,
        items=items,
        noise=noise,
        rotation=rotation,
        jitter=jitter,
        seed=seed,
    )
    requests = list(texts)
    if input_path is not None:
        requests += [str(r.get(column) or "") for r in read_requests(input_path, column)]
    requests = [r for r in requests if r.strip()]
    if not requests:
        raise click.UsageError("give --input FILE or --text TEXT")
    index: list[str] = []
    for n, text in enumerate(requests, 1):
        image = render_typography(text, style)
        name = f"{n:05d}.png"
        atomic_write_bytes(out / name, image.data)
        index.append(
            json.dumps({"image": name, "text": text, "sha256": image.sha256}, ensure_ascii=False) + "\n"
        )
    atomic_write_text(out / "index.jsonl", "".join(index))
    click.echo(f"rendered {len(requests)} image(s) into {out}")
