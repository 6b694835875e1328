"""``vlmguard risk-model``: train the learned text risk model on labelled data, and evaluate one."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vlmguard.cli.options import json_option, out_option
from vlmguard.perception.encoders import ENCODERS


@click.group("risk-model")
def risk_model() -> None:
    """Train or evaluate the learned text risk model of the evidence guard."""


@contextmanager
def _progress(console: Console, what: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _encoders(value: str) -> list[str]:
    names = [n.strip() for n in value.split("+") if n.strip()]
    unknown = [n for n in names if n not in ENCODERS]
    if not names or unknown:
        raise click.BadParameter(
            f"unknown encoder {', '.join(unknown) or value!r}; known: {', '.join(sorted(ENCODERS))}"
        )
    return names


@risk_model.command("train")
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(path_type=Path),
    help="JSONL or CSV with text, label, optional category (repeatable).",
)
@click.option(
    "--pool",
    type=click.Path(path_type=Path),
    help="The text-safety pool folder (one JSONL per source; evaluation-only sources are left out).",
)
@click.option(
    "--vlguard",
    type=click.Path(path_type=Path),
    help="VLGuard's train.json: its instructions join the training data.",
)
@click.option(
    "--everyday",
    is_flag=True,
    help="Add vlmguard's own benign everyday requests (request forms x activities).",
)
@click.option(
    "--twins", is_flag=True, help="Add benign twins of the harmful how-to requests (same act, safe intent)."
)
@click.option(
    "--headings",
    is_flag=True,
    help='Add the how-to requests written as titles ("How to X", "Steps to X."), each with its label.',
)
@click.option(
    "--exemplars",
    is_flag=True,
    help="Add the exemplar sentences of the offline judge's tagger (keeps the judge from being independent).",
)
@click.option(
    "--compositions/--no-compositions",
    default=False,
    help="Add prompt+image compositions made from the English rows.",
)
@click.option("--exclude", multiple=True, help="Leave this source out (repeatable).")
@click.option(
    "--encoder", default="minilm", show_default=True, help="Frozen encoder(s): minilm, e5, or minilm+e5."
)
@click.option("--c", "c", type=float, default=0.1, show_default=True, help="Inverse regularisation strength.")
@click.option(
    "--benign-cost",
    type=float,
    default=1.0,
    show_default=True,
    help="Operating point: weight of benign false flags against harmful recall (on held-out folds).",
)
@out_option("Folder to write the model into.")
def train(
    data: tuple[Path, ...],
    pool: Path | None,
    vlguard: Path | None,
    everyday: bool,
    twins: bool,
    headings: bool,
    exemplars: bool,
    compositions: bool,
    exclude: tuple[str, ...],
    encoder: str,
    c: float,
    benign_cost: float,
    out: Path,
) -> None:
    """Train a risk model head on labelled texts and write it (with its model card) into --out.

    Files of --data keep their own category names: a model trained on another policy's categories
    reports those categories. Use the folder with Guard(rewriter="evidence?risk_model=DIR").
    """
    from vlmguard.eval.benchmarks.vlguard import labelled_instructions
    from vlmguard.perception.risk_augment import augmented
    from vlmguard.perception.risk_build import build_risk_model
    from vlmguard.perception.risk_data import read_labelled
    from vlmguard.perception.risk_sources import (
        everyday_requests,
        read_exemplars,
        read_pool,
    )
    from vlmguard.perception.risk_train import TrainOptions

    if not (data or pool or vlguard or everyday or exemplars):
        raise click.UsageError("give training data with --data FILE, --pool DIR or --vlguard FILE")
    try:
        options = TrainOptions(c=c, benign_cost=benign_cost)
    except ValueError as exc:
        raise click.BadParameter(str(exc).splitlines()[-1]) from None
    names = _encoders(encoder)
    console = Console(stderr=True)
    rows = []
    for path in data:
        rows.extend(read_labelled(path, map_categories=False))
    if pool is not None:
        rows.extend(read_pool(pool, exclude=exclude))
    if vlguard is not None:
        rows.extend(labelled_instructions(vlguard))
    if everyday:
        rows.extend(everyday_requests())
    if exemplars:
        rows.extend(read_exemplars())
    rows = [r for r in rows if r.source not in set(exclude)]
    rows.extend(augmented(rows, twins=twins, headings=headings, compositions=compositions))
    console.print(
        f"training on {len(rows):,} rows ({sum(r.harmful for r in rows):,} harmful) with {'+'.join(names)}"
    )
    command = (
        "vlmguard risk-model train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if sys.argv[1:2] == ["risk-model"]
        else ""
    )
    with _progress(console, "embedding") as update:
        head = build_risk_model(
            rows, out, encoders=names, options=options, command=command.strip(), progress=update
        )
    meta = head.meta
    named = {c for r in rows for c in r.categories}
    dropped = sorted(named - set(meta.categories))
    if dropped:
        console.print(
            f"[yellow]categories with fewer than {options.min_category_rows} harmful rows get no head:[/] "
            + ", ".join(dropped)
        )
    console.print(
        f"wrote {out}: threshold {meta.threshold}, {len(meta.categories)} categories, "
        f"train recall {meta.metrics.get('train_harmful_recall')}, "
        f"train benign flagged {meta.metrics.get('train_benign_flagged')}"
    )


@risk_model.command("eval")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    help="A trained model folder (default: the packaged model).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="JSONL or CSV with text and label (repeatable).",
)
@json_option("Print the results as JSON.")
def eval_(model_dir: Path | None, data: tuple[Path, ...], as_json: bool) -> None:
    """Score labelled texts and print, per source, the share flagged (recall or false flags)."""
    from vlmguard.perception.risk_build import evaluate_rows
    from vlmguard.perception.risk_data import read_labelled
    from vlmguard.perception.risk_model import RiskModel

    if model_dir is not None and not model_dir.is_dir():
        raise click.BadParameter(f"no such folder: {model_dir}", param_hint="--model")
    model = RiskModel(model_dir)
    rows = [row for path in data for row in read_labelled(path, map_categories=model_dir is None)]
    console = Console(stderr=True)
    with _progress(console, "scoring") as update:
        result = evaluate_rows(model, rows, update)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    table = Table(title=f"risk model at threshold {result.threshold}")
    for column in ("source", "label", "rows", "flagged", "category accuracy"):
        table.add_column(column)
    for s in result.sources:
        accuracy = "" if s.category_accuracy is None else f"{s.category_accuracy:.1%}"
        table.add_row(s.source, s.label, str(s.rows), f"{s.flagged:.1%}", accuracy)
    out = Console()
    out.print(table)
    out.print(", ".join(f"{k} {v:.1%}" for k, v in result.summary().items()))


__all__ = ["risk_model"]
