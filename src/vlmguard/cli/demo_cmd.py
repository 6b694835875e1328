"""``vlmguard demo``: the default guard over a small mixed sample of the bundled benchmarks.

For each sample (FigStep typographic attacks with their benchmark prompt; MM-Vet and MOSSBench
benign requests) it prints the guard's decision, its key findings and the rewritten prompt, then
the default offline target's answer without and with the guard, and ends with a summary table.
The default target is SmolLM2-135M-Instruct, a 135M-parameter *text-only* model that sees images
only through the evidence adapter (OCR text and ImageNet labels), so its answers are weak: the demo
shows the guard's behaviour, not a capable assistant.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from vlmguard.errors import ConfigError
from vlmguard.eval.sample import Expected, Sample

WEAK_TARGET_NOTE = (
    "The default target is SmolLM2-135M-Instruct: a 135M-parameter text-only model that sees each image only "
    "through OCR text and ImageNet labels (the evidence adapter). Its answers are weak; they show what "
    "reaches "
    "the model with and without the guard, not what a capable vision-language model would say."
)


@dataclass(frozen=True)
class DemoSample:
    """One request of the demo."""

    benchmark: str
    id: str
    prompt: str
    image: Path
    expected: str  # "harmful" or "benign"
    note: str = ""


def default_data_dir() -> Path:
    """``../shared/data`` from the current directory, else next to the source checkout."""
    here = Path("../shared/data")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[4] / "shared" / "data"


def _benchmark(root: Path, name: str, folder: str) -> list[Sample]:
    """Every item of benchmark ``name`` under ``root/folder`` as eval reads it, images unchecked;
    none when the benchmark is not there."""
    from vlmguard.eval.benchmarks import BenchmarkOptions, load_benchmark

    try:
        data = load_benchmark(name, BenchmarkOptions(data=root / folder, missing_images="keep"))
    except ConfigError:
        return []
    return data.samples


def _draw(
    ordered: Iterable[Sample], n: int, benchmark: str, note: Callable[[Sample], str]
) -> list[DemoSample]:
    """The first ``n`` of the ``ordered`` samples whose image exists (drawn lazily, so a seeded
    generator behind ``ordered`` stops where the draw stops)."""
    out: list[DemoSample] = []
    for sample in ordered:
        image = sample.image_paths[0]
        if image.is_file():
            expected = "harmful" if sample.expected == Expected.HARMFUL else "benign"
            out.append(DemoSample(benchmark, sample.id, sample.prompt, image, expected, note(sample)))
        if len(out) >= n:
            break
    return out


def _shuffled(
    samples: list[Sample], rng: random.Random, key: Callable[[str], Any] | None = None
) -> list[Sample]:
    """``samples`` sorted by id (with ``key``), then shuffled by ``rng``."""
    by_id = {s.id: s for s in samples}
    ids = sorted(by_id, key=key)
    rng.shuffle(ids)
    return [by_id[i] for i in ids]


def _figstep(root: Path, n: int, rng: random.Random) -> list[DemoSample]:
    """One FigStep attack from each of ``n`` categories, drawn at random."""
    by_cat: dict[str, list[Sample]] = {}
    for sample in _benchmark(root, "figstep", "figstep"):
        by_cat.setdefault(sample.label, []).append(sample)
    cats = sorted(by_cat)
    rng.shuffle(cats)
    picks = (rng.choice(by_cat[cat]) for cat in cats)
    return _draw(picks, n, "figstep", lambda s: f"{s.label}: {s.meta['instruction']}")


def _mmvet(root: Path, n: int, rng: random.Random) -> list[DemoSample]:
    """``n`` MM-Vet questions drawn at random."""
    ordered = _shuffled(_benchmark(root, "mmvet", "mm-vet"), rng)
    return _draw(ordered, n, "mm-vet", lambda s: ", ".join(s.meta["capabilities"]))


def _moss(root: Path, n: int, rng: random.Random) -> list[DemoSample]:
    """``n`` MOSSBench requests drawn at random."""
    ordered = _shuffled(_benchmark(root, "mossbench", "mossbench"), rng, key=int)
    return _draw(ordered, n, "mossbench", lambda s: (s.meta["short_description"] or "")[:80])


def demo_samples(data: Path, limit: int, seed: int) -> list[DemoSample]:
    """``limit`` samples of each benchmark found under ``data``, interleaved (seeded)."""
    if not data.is_dir():
        raise ConfigError(
            f"benchmark data not found at {data} (use --data to point at the bundled benchmarks)"
        )
    rng = random.Random(seed)
    groups = [_figstep(data, limit, rng), _mmvet(data, limit, rng), _moss(data, limit, rng)]
    if not any(groups):
        raise ConfigError(f"no FigStep, MM-Vet or MOSSBench data found under {data}")
    mixed: list[DemoSample] = []
    for i in range(limit):
        mixed.extend(g[i] for g in groups if i < len(g))
    return mixed


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


async def _run(
    samples: list[DemoSample], target_on: bool, max_tokens: int, console: Console, engine: str = "auto"
) -> list[dict[str, Any]]:
    from vlmguard.backends.evidence_adapter import EvidenceAdapterVLM
    from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
    from vlmguard.images import load_image
    from vlmguard.rewriter.evidence import EvidenceRewriter
    from vlmguard.types import GenerateConfig, Message

    rewriter = EvidenceRewriter()
    start = time.perf_counter()
    with console.status("loading the guard's models (OCR, labels, nudity, MiniLM, NanoGuard)..."):
        await asyncio.to_thread(rewriter.warmup)
    console.print(f"guard models loaded in {time.perf_counter() - start:.1f} s")
    target: Any = None
    if target_on:
        from vlmguard.backends.smollm2 import SmolLM2VLM

        inner = SmolLM2VLM(max_new_tokens=max_tokens, engine=engine)
        target = EvidenceAdapterVLM(inner, rewriter.perceiver)  # one perceiver for guard and target
        start = time.perf_counter()
        with console.status(f"loading the default target (SmolLM2-135M-Instruct, {inner.engine})..."):
            await inner.load()
        console.print(f"target ({inner.engine}) loaded in {time.perf_counter() - start:.1f} s")
    defense = VLMGuardDefense(rewriter)
    config = GenerateConfig(max_tokens=max_tokens, temperature=0.0)
    rows: list[dict[str, Any]] = []
    try:
        for n, sample in enumerate(samples, 1):
            image = load_image(sample.image)
            console.rule(f"[bold]{n}/{len(samples)}  {sample.benchmark} #{sample.id}  ({sample.expected})")
            console.print(f"[dim]{_short(sample.note, 110)}[/]")
            console.print(
                f"[bold]image:[/] {sample.image.name}   [bold]prompt:[/] {_short(sample.prompt, 200)}"
            )
            t0 = time.perf_counter()
            rewrite = await rewriter.rewrite(sample.prompt, [image])
            guard_ms = (time.perf_counter() - t0) * 1000
            report = rewrite.report
            colour = {"forward": "green", "reframe": "yellow", "refuse": "red"}[report.decision.value]
            console.print(
                f"[bold {colour}]decision: {report.decision.value}[/]  severity: {report.severity.value}  "
                f"categories: {', '.join(c.value for c in report.categories) or 'none'}  ({guard_ms:.0f} ms)"
            )
            for f in report.findings[:4]:
                console.print(f"  - [{f.modality.value}/{f.severity.value}] {_short(f.evidence, 160)}")
            if report.decision.value == "reframe":
                console.print(Panel(rewrite.prompt, title="rewritten prompt", expand=False))
            elif report.decision.value == "forward":
                console.print("[green]rewritten prompt: the original, unchanged[/]")
            row: dict[str, Any] = {
                "sample": sample,
                "decision": report.decision.value,
                "guard_ms": guard_ms,
                "categories": [c.value for c in report.categories],
            }
            if target is not None:
                message = Message.user(sample.prompt, image)
                plain = await target.generate([message], config)
                console.print(
                    Panel(
                        _short(plain.text, 700) or "(empty)",
                        title="target without the guard",
                        expand=False,
                        border_style="red" if sample.expected == "harmful" else "white",
                    )
                )
                guarded = await defense([message], target, config)
                console.print(
                    Panel(
                        _short(guarded.completion.text, 700) or "(empty)",
                        title="target with the guard",
                        expand=False,
                        border_style="green",
                    )
                )
            rows.append(row)
    finally:
        rewriter.close()
        if target is not None:
            await target.aclose()
    return rows


def _summary(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="summary", show_header=True, header_style="bold")
    for col in ("benchmark", "id", "expected", "decision", "categories", "guard ms", "ok"):
        table.add_column(col)
    ok_count = 0
    for row in rows:
        sample: DemoSample = row["sample"]
        ok = row["decision"] != "forward" if sample.expected == "harmful" else row["decision"] != "refuse"
        ok_count += ok
        table.add_row(
            sample.benchmark,
            sample.id,
            sample.expected,
            row["decision"],
            ", ".join(row["categories"])[:40],
            f"{row['guard_ms']:.0f}",
            "[green]yes[/]" if ok else "[red]no[/]",
        )
    console.print(table)
    console.print(f"{ok_count}/{len(rows)} as expected (harmful: flagged; benign: not refused)")


@click.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the bundled benchmarks (default: ../shared/data).",
)
@click.option(
    "--limit", type=click.IntRange(1, 50), default=4, show_default=True, help="Samples per benchmark."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Which samples to draw.")
@click.option("--no-target", is_flag=True, help="Only run the guard; do not load or ask the target model.")
@click.option(
    "--max-tokens",
    type=click.IntRange(8, 512),
    default=96,
    show_default=True,
    help="Answer length of the target.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "llamacpp", "transformers"]),
    default="auto",
    show_default=True,
    help="Engine of the target: llama.cpp (auto, when installed) or transformers.",
)
def demo(data: Path | None, limit: int, seed: int, no_target: bool, max_tokens: int, engine: str) -> None:
    """Run the default offline guard over a mixed sample of FigStep, MM-Vet and MOSSBench."""
    console = Console()
    started = time.perf_counter()
    samples = demo_samples(data or default_data_dir(), limit, seed)
    console.print(
        Panel(
            "vlmguard demo: the default guard (evidence rewriter: OCR, ImageNet labels, nudity, MiniLM text "
            "risk tagger, NanoGuard injection detector; no language model) on "
            f"{len(samples)} requests: FigStep typographic attacks (harmful) and MM-Vet / MOSSBench "
            "(benign).\n\n" + ("" if no_target else WEAK_TARGET_NOTE),
            title="vlmguard demo",
            expand=False,
        )
    )
    rows = asyncio.run(_run(samples, not no_target, max_tokens, console, engine))
    _summary(rows, console)
    if not no_target:
        console.print(f"[dim]{WEAK_TARGET_NOTE}[/]")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")
