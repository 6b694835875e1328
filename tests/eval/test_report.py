"""Reports: Markdown, JSON and a self-contained HTML page, checked in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from vlmguard.backends.base import VLM
from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.base import DefenseResult
from vlmguard.errors import UnsupportedError
from vlmguard.eval.benchmarks import BenchmarkOptions
from vlmguard.eval.judges.offline import HarmSignal, OfflineJudge
from vlmguard.eval.report import collect, render_html, render_markdown, write_reports
from vlmguard.eval.runner import BenchmarkSpec, RunConfig, run_eval
from vlmguard.types import Completion, GenerateConfig, Message

FIX = Path(__file__).parent / "fixtures"


class RefuseAll:
    name = "refuse-all"

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult:
        text = "I can't help with that request."
        return DefenseResult(
            completion=Completion(text=text, model="guard", calls=0),
            refused=True,
            extra_calls=1,
            overhead_s=0.01,
            latency_s=0.01,
        )


class BlackBoxError:
    name = "whitebox"

    async def __call__(
        self, messages: Sequence[Message], target: VLM, config: GenerateConfig | None = None
    ) -> DefenseResult:
        raise UnsupportedError("needs a white-box target")


def detector(text: str) -> HarmSignal:
    return (
        HarmSignal(categories=["illegal_activity"], score=0.9) if "Step 1" in text else HarmSignal(score=0.05)
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    out = tmp_path_factory.mktemp("runs") / "demo"
    cfg = RunConfig(
        benchmarks=[
            BenchmarkSpec(name="figstep", options=BenchmarkOptions(data=FIX / "figstep")),
            BenchmarkSpec(name="mossbench", options=BenchmarkOptions(data=FIX / "mossbench")),
        ],
        defenses=["none", "refuse-all", "whitebox"],
        target="mock:echo",
        judge="offline",
        retries=0,
    )
    target = MockVLM.rules(
        [(r"numbered 1, 2, and 3", "Step 1: get the tools. Step 2: ...")],
        default="Here is a fun and safe idea for your toys and kitchen.",
    )
    asyncio.run(
        run_eval(
            cfg,
            out,
            target=target,
            judge=OfflineJudge(detector),
            defenses={"refuse-all": RefuseAll(), "whitebox": BlackBoxError()},
            command=["vlmguard", "eval", "..."],
        )
    )
    return out


def test_rows_gains_and_errors(run_dir: Path) -> None:
    report = collect([run_dir])
    rows = {(r.benchmark, r.defense): r for r in report.rows}
    assert set(rows) == {(b, d) for b in ("figstep", "mossbench") for d in ("none", "refuse-all", "whitebox")}
    none, refuse = rows[("figstep", "none")], rows[("figstep", "refuse-all")]
    assert none.metrics.safety_rate is not None and none.metrics.safety_rate.value == 0.0
    assert refuse.metrics.safety_rate is not None and refuse.metrics.safety_rate.value == 1.0
    assert refuse.gain_safety_score is not None and refuse.gain_safety_score > 0
    moss = rows[("mossbench", "refuse-all")].metrics
    assert moss.over_refusal_rate is not None and moss.over_refusal_rate.value == 1.0
    assert rows[("figstep", "whitebox")].metrics.errors == 3
    assert report.approximate and set(refuse.categories) == {"Illegal Activity", "Hate Speech"}


def test_markdown_and_json(run_dir: Path, tmp_path: Path) -> None:
    paths = write_reports([run_dir, run_dir], tmp_path)
    md = paths["markdown"].read_text()
    assert "**Approximate.**" in md and "offline judge" in md
    assert (
        "| figstep | demo:none |" in md and "| figstep | demo-2:refuse-all |" in md
    )  # two runs side by side
    assert "UnsupportedError x3" in md and "needs a white-box target" in md
    assert "without their image: 3" in md
    data = json.loads(paths["json"].read_text())
    assert data["approximate"] is True and len(data["rows"]) == 12
    assert data["runs"][0]["judge_model"].startswith("offline-heuristics")


def test_html_is_self_contained_with_plots(run_dir: Path) -> None:
    page = render_html(collect([run_dir]))
    assert page.count('src="data:image/png;base64,') >= 3  # per-category (x2), scatter, latency
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load external resources"
    assert 'id="approximate"' in page and "UnsupportedError" in page
    assert render_markdown(collect([run_dir])).startswith("# Evaluation report")


def _chromium() -> str | None:
    return next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )


def test_html_renders_in_a_real_headless_browser(run_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary found (Debian: apt-get install chromium)")
    paths = write_reports([run_dir], tmp_path / "report")
    url = paths["html"].resolve().as_uri()
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Evaluation report" in dom.stdout and "refuse-all" in dom.stdout
    assert dom.stdout.count("<img") >= 3
    # The images decode in the browser: a script measures them after load.
    probe = tmp_path / "probe.html"
    probe.write_text(
        paths["html"]
        .read_text()
        .replace(
            "</body>",
            "<script>window.onload=()=>{"
            "const ok=[...document.images].every(i=>i.complete&&i.naturalWidth>100);"
            "document.title='IMAGES:'+(ok?'ok':'broken')+':'+document.images.length;"
            "document.body.setAttribute('data-probe',document.title);};</script></body>",
        )
    )
    checked = subprocess.run(
        [*base, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'data-probe="IMAGES:ok:' in checked.stdout, checked.stdout[-500:]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, "--window-size=1300,2200", f"--screenshot={shot}", url], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_a_run_without_none_is_compared_with_an_earlier_runs_baseline(run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "only-refuse"
    other.mkdir()
    shutil.copy(run_dir / "manifest.json", other / "manifest.json")
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (other / "results.jsonl").write_text("\n".join(x for x in lines if '"defense":"refuse-all"' in x) + "\n")
    report = collect([run_dir, other])
    row = next(r for r in report.rows if r.run == "only-refuse" and r.benchmark == "figstep")
    assert row.gain_safety_score is not None and row.gain_safety_score > 0
