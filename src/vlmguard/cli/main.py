"""The ``vlmguard`` command group. Subcommands live one per module and are imported on use."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from vlmguard.errors import VLMGuardError

# name -> (module:attribute, one-line help). One module per subcommand.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "guard": ("vlmguard.cli.guard_cmd:guard", "Analyse and rewrite one request; optionally ask a target."),
    "backends": ("vlmguard.cli.list_cmds:backends", "List model backends."),
    "rewriters": ("vlmguard.cli.list_cmds:rewriters", "List rewriters."),
    "demo": ("vlmguard.cli.demo_cmd:demo", "Run the default guard over a sample of the bundled benchmarks."),
    "eval": ("vlmguard.cli.eval_cmd:eval_cmd", "Evaluate a defence on a benchmark."),
    "benchmarks": ("vlmguard.cli.eval_cmd:benchmarks", "List benchmarks."),
    "defenses": ("vlmguard.cli.eval_cmd:defenses", "List defences."),
    "judges": ("vlmguard.cli.eval_cmd:judges", "List judges."),
    "report": ("vlmguard.cli.report_cmd:report", "Write reports comparing evaluation runs."),
    "synth": ("vlmguard.cli.synth_cmd:synth", "Synthesise rewriter training data (three-stage pipeline)."),
    "train": ("vlmguard.cli.train_cmd:train", "Fine-tune a rewriter (SFT)."),
    "serve": ("vlmguard.cli.serve_cmd:serve", "Run the OpenAI-compatible guard proxy."),
    "risk-model": (
        "vlmguard.cli.risk_model_cmd:risk_model",
        "Train or evaluate the learned text risk model.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            target, _ = SUBCOMMANDS[cmd_name]
            module_name, _, attr = target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("vlmguard"):
                    raise click.ClickException(f"'{cmd_name}' is not available in this version") from None
                raise click.ClickException(
                    f"'{cmd_name}' needs a package that is not installed ({exc.name}); "
                    "install the matching extra, e.g. pip install 'vlmguard[all]'"
                ) from None
            command = getattr(module, attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(SUBCOMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vlmguard")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option(
    "--omp-wait-policy",
    type=click.Choice(["passive", "active", "inherit"]),
    default="passive",
    show_default=True,
    help="OMP_WAIT_POLICY for torch's threads (a value in the environment wins; inherit: leave it).",
)
@click.option(
    "--torch-threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="torch's intra-op thread count (default: torch's own, all cores).",
)
def cli(verbose: int, omp_wait_policy: str, torch_threads: int | None) -> None:
    """vlmguard: a reasoning-driven prompt rewriter that keeps vision-language models safe."""
    from vlmguard.runtime import ThreadSettings, apply_thread_settings

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    apply_thread_settings(
        ThreadSettings(openmp_wait_policy=omp_wait_policy, torch_threads=torch_threads)  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> Any:
    """Entry point: runs the CLI, turning vlmguard errors into one line on stderr and exit code 2."""
    try:
        return cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except VLMGuardError as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug or an unexpected environment problem: still one line, unless debugging
        if os.environ.get("VLMGUARD_DEBUG"):
            raise
        hint = "set VLMGUARD_DEBUG=1 for the traceback"
        click.echo(f"error: unexpected {type(exc).__name__}: {_one_line(exc)} ({hint})", err=True)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    """An error message on one line (servers and libraries sometimes put newlines in theirs)."""
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    main()
