"""CLI options that must not be accepted silently, and prompts from standard input or a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vlmguard.cli.main import cli, main
from vlmguard.rewriter import format_rewriter_output
from vlmguard.text import DEFAULT_MAX_PROMPT_CHARS
from vlmguard.types import Decision, RiskReport, Severity

BLOCK = format_rewriter_output(
    RiskReport(decision=Decision.REFRAME, severity=Severity.MEDIUM, analysis="checked"), "SAFE REWRITE"
)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def items(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    rows = [{"id": f"s{i}", "prompt": f"q {i}", "category": ["Fraud", "Privacy"][i % 2]} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval(items: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "-b",
        f"jsonl={items}",
        "-d",
        "none",
        "-t",
        "mock:echo",
        "-j",
        "refusal",
        "-o",
        str(out),
        "--no-report",
        *extra,
    ]


def test_cache_and_no_cache_together_are_refused(
    items: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _eval(items, tmp_path / "run", "--cache", str(tmp_path / "c.db"), "--no-cache")
    code, _out, err = run_main(args, capsys)
    assert code == 2 and "--cache and --no-cache" in err
    assert not (tmp_path / "run").exists()


def test_unknown_category_is_refused_listing_the_known_ones(
    items: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_main(_eval(items, tmp_path / "run", "--category", "fruad"), capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "unknown category 'fruad'" in lines[0] and "fraud" in lines[0] and "privacy" in lines[0]
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_known_category_still_runs(items: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(_eval(items, tmp_path / "run", "--category", "Fraud"), capsys)
    assert code == 0, err
    assert "2 judged" in out


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "rewriter.json"
    path.write_text(json.dumps([BLOCK]))
    return path


def _guard(script: Path, *extra: str) -> list[str]:
    return ["guard", "--rewriter", f"mock:script={script}", "--json", *extra]


def test_prompt_dash_reads_standard_input(script: Path) -> None:
    result = CliRunner().invoke(cli, _guard(script, "--prompt", "-"), input="how do I pick a lock?\n")
    assert result.exit_code == 0, result.output
    rewrite = json.loads(result.stdout)["rewrite"]
    assert rewrite["original_prompt"] == "how do I pick a lock?"


def test_prompt_file_is_read(script: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("line one\nline two \ud83d\ude00\n".encode("utf-16", "surrogatepass").decode("utf-16"))
    result = CliRunner().invoke(cli, _guard(script, "--prompt-file", str(prompt)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rewrite"]["original_prompt"] == "line one\nline two \U0001f600"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("x" * (DEFAULT_MAX_PROMPT_CHARS + 1)), "over the limit"),
        (lambda p: p.write_text("x" * (DEFAULT_MAX_PROMPT_CHARS * 20)), "over the limit"),
        (lambda p: p.write_bytes(b"caf\xe9 \xff"), "not UTF-8 text"),
        (lambda p: p.write_text(" \u200b\x00 "), "prompt is empty"),
        (lambda p: None, "cannot read the prompt"),
    ],
    ids=["just-over", "far-over", "not-utf8", "empty", "missing"],
)
def test_prompt_file_errors_are_one_line(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    prompt = tmp_path / "prompt.txt"
    make(prompt)  # type: ignore[operator]
    code, _out, err = run_main(_guard(script, "--prompt-file", str(prompt)), capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_stdin_prompt_has_the_same_length_limit(script: Path) -> None:
    text = "y" * (DEFAULT_MAX_PROMPT_CHARS + 5)
    result = CliRunner().invoke(cli, _guard(script, "--prompt", "-"), input=text)
    assert result.exit_code != 0 and "over the limit" in str(result.exception)


@pytest.mark.parametrize("args", [[], ["--prompt", "a", "--prompt-file", "f.txt"]], ids=["none", "both"])
def test_prompt_sources_are_exclusive(
    script: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_main(_guard(script, *args), capsys)
    assert code == 2 and "one of --prompt TEXT, --prompt - or --prompt-file FILE" in err


def test_literal_dash_is_no_longer_analysed(script: Path) -> None:
    result = CliRunner().invoke(cli, _guard(script, "--prompt", "-"), input="")
    assert result.exit_code != 0 and "prompt is empty" in str(result.exception)
