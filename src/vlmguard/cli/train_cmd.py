"""``vlmguard train``: fine-tune a rewriter (SFT) from synthesised rows."""

from __future__ import annotations

import json
import logging

import click


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--config",
    "config_file",
    default=None,
    help="SFT config YAML, or the name of a shipped one (sft-tiny-cpu, sft-smolvlm, sft-qwen2vl-7b-lora).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the config, the base model's architecture and the data, print the data report, stop.",
)
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as YAML and stop.")
@click.option(
    "--merge",
    "merge_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Merge the LoRA adapters of a finished run folder into RUN/merged and stop.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.argument("overrides", nargs=-1)
def train(
    config_file: str | None,
    dry_run: bool,
    print_config: bool,
    merge_dir: str | None,
    as_json: bool,
    overrides: tuple[str, ...],
) -> None:
    """Fine-tune a rewriter: vlmguard train --config sft.yaml [key=value ...].

    Settings are layered: defaults < the YAML file < VLMGUARD_TRAIN_<KEY> environment variables <
    key=value overrides. Unknown keys are refused.
    """
    from vlmguard.configs import config_path
    from vlmguard.train.config import load_sft_config

    if merge_dir is not None:
        from vlmguard.train.export import merge_run

        click.echo(f"merged model written to {merge_run(merge_dir)}")
        return

    path = config_path(config_file) if config_file else None
    config = load_sft_config(path, overrides)
    if print_config:
        click.echo(config.to_yaml(), nl=False)
        return
    if dry_run:
        from vlmguard.train.prepare import prepare_run

        prepared = prepare_run(config)
        for report in prepared.reports:
            click.echo(report.summary())
            for problem in report.problems:
                click.echo(f"  {problem}")
        click.echo(
            f"architecture: {prepared.family.name}; precision: {prepared.precision}; "
            f"resume from: {prepared.checkpoint or 'none'}"
        )
        return

    from vlmguard.train.trainer import run_sft

    logging.getLogger("vlmguard.train").setLevel(logging.INFO)

    def show_data(reports: list) -> None:  # type: ignore[type-arg]
        for report in reports:
            click.echo(report.summary(), err=True)

    summary = run_sft(config, on_data=show_data)
    if as_json:
        click.echo(json.dumps(summary.model_dump(), indent=2, default=str))
        return
    click.echo(
        f"steps: {summary.global_step}  train loss: {summary.train_loss}  "
        f"validation loss: {summary.eval_loss}"
    )
    click.echo(
        f"model: {summary.model_dir}" + (f"  merged: {summary.merged_dir}" if summary.merged_dir else "")
    )
    if summary.method == "full" or summary.merged_dir:
        click.echo(f"use it with: --rewriter hf:{summary.servable_dir}")
    else:
        click.echo(f"to serve it, merge the adapters first: vlmguard train --merge {summary.output_dir}")
