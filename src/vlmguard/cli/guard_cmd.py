"""``vlmguard guard``: analyse and rewrite one request; with a target, also get its answer."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from vlmguard.cli.options import fail_policy_option, json_option, max_tokens_option, rewriter_option
from vlmguard.errors import InputError
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS
from vlmguard.types import Rewrite


def render_rewrite(console: Console, rewrite: Rewrite) -> None:
    """Print a rewrite's risk report and rewritten prompt for a person."""
    report = rewrite.report
    colour = {"forward": "green", "reframe": "yellow", "refuse": "red"}[report.decision.value]
    console.print(
        f"[bold {colour}]decision: {report.decision.value}[/]  severity: {report.severity.value}  "
        f"categories: {', '.join(c.value for c in report.categories) or 'none'}  "
        f"rewriter: {rewrite.rewriter}  ({rewrite.latency_s * 1000:.0f} ms)"
    )
    if rewrite.fallback:
        console.print(f"[red]fallback {rewrite.fallback}:[/] {rewrite.error}")
    if report.findings:
        table = Table(show_header=True, header_style="bold")
        table.add_column("modality")
        table.add_column("category")
        table.add_column("severity")
        table.add_column("evidence")
        table.add_column("source")
        for f in report.findings:
            category = f.category.value if f.category else ""
            table.add_row(f.modality.value, category, f.severity.value, f.evidence, f.source)
        console.print(table)
    if report.analysis:
        console.print(Panel(report.analysis, title="analysis", expand=False))
    console.print(Panel(rewrite.prompt or "(none: refused)", title="rewritten prompt", expand=False))


def read_prompt(
    prompt: str | None, prompt_file: Path | None, *, max_chars: int = DEFAULT_MAX_PROMPT_CHARS
) -> str:
    """The prompt given by ``--prompt TEXT``, ``--prompt -`` (standard input) or ``--prompt-file FILE``.

    Exactly one source must be given. Stdin and files are read as UTF-8, at most a few bytes past
    the length limit (the limit itself and every other check are the Guard's, as for ``--prompt TEXT``).
    """
    if (prompt is None) == (prompt_file is None):
        raise click.UsageError("give the prompt with one of --prompt TEXT, --prompt - or --prompt-file FILE")
    if prompt is not None and prompt != "-":
        return prompt
    limit = (max_chars * 4 + 1) * 4  # UTF-8 takes at most 4 bytes a character
    where = "standard input" if prompt_file is None else str(prompt_file)
    try:
        if prompt_file is None:
            raw = sys.stdin.buffer.read(limit)
        else:
            with prompt_file.open("rb") as handle:
                raw = handle.read(limit)
    except OSError as exc:
        message = f"cannot read the prompt from {where}: {exc.strerror}"
        raise InputError(message, code="invalid_prompt") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if len(raw) < limit:  # not a character cut by the read limit: the text is not UTF-8
            raise InputError(f"the prompt in {where} is not UTF-8 text", code="invalid_prompt") from None
        return raw.decode("utf-8", errors="ignore")  # over the limit anyway: the Guard says so


@click.command()
@click.option(
    "--image", "images", multiple=True, type=click.Path(path_type=Path), help="Image file (repeatable)."
)
@click.option("--prompt", default=None, help="The user's text prompt ('-': read it from standard input).")
@click.option(
    "--prompt-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the prompt from this UTF-8 text file.",
)
@rewriter_option(
    "'evidence' or a backend spec for the model-based rewriter (e.g. hf:./rewriter).", default="evidence"
)
@click.option("--target", default=None, help="Backend spec of the target model; omit to only rewrite.")
@fail_policy_option(
    "--policy",
    default="fail_closed",
    help="What to do when the guard cannot judge the request (rewriter error, timeout or unusable output).",
)
@click.option(
    "--rewriter-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds the rewriter may take before the fail policy decides (default: no limit).",
)
@max_tokens_option("Target answer length limit.", 512)
@max_tokens_option(
    "Length limit of a model-based rewriter's analysis and rewrite.", 1024, flag="--rewriter-max-tokens"
)
@json_option("Print one JSON object instead of tables.")
def guard(
    images: tuple[Path, ...],
    prompt: str | None,
    prompt_file: Path | None,
    rewriter: str,
    target: str | None,
    policy: str,
    rewriter_timeout: float | None,
    max_tokens: int,
    rewriter_max_tokens: int,
    as_json: bool,
) -> None:
    """Analyse a prompt (and image) for risk and print the report and rewritten prompt."""
    from vlmguard.defenses.base import DefenseResult
    from vlmguard.guard import Guard
    from vlmguard.types import GenerateConfig

    prompt = read_prompt(prompt, prompt_file)

    console = Console()
    progress = Console(stderr=True)

    async def _go() -> tuple[Rewrite | None, DefenseResult | None]:
        guard_ = Guard(
            rewriter=rewriter,
            target=target,
            policy=policy,  # type: ignore[arg-type]
            rewriter_config=GenerateConfig(max_tokens=rewriter_max_tokens),
            rewriter_timeout_s=rewriter_timeout,
        )
        try:
            if target is None:
                return await guard_.acheck(prompt, images=images), None
            result = await guard_.aask(prompt, images=images, config=GenerateConfig(max_tokens=max_tokens))
            return result.rewrite, result
        finally:
            await guard_.aclose()

    if as_json:
        rewrite, result = asyncio.run(_go())
    else:
        with progress.status(
            "analysing..." if target is None else "analysing and asking the target...", spinner="dots"
        ):
            rewrite, result = asyncio.run(_go())
    if as_json:
        payload: dict[str, object] = {"rewrite": rewrite.model_dump(mode="json") if rewrite else None}
        if result is not None:
            payload["answer"] = result.completion.text
            payload["target"] = result.completion.model
            payload["refused"] = result.refused
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if rewrite is not None:
        render_rewrite(console, rewrite)
    if result is not None:
        completion = result.completion
        title = f"answer ({completion.model})"
        if result.refused:
            title = "answer (written by the guard; the target was not called)"
        console.print(Panel(completion.text, title=title, expand=False))
