"""``vlmguard guard`` end to end (local OpenAI-compatible server, tiny hf models) and its error lines."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlmguard.cli.main import main
from vlmguard.rewriter import format_rewriter_output
from vlmguard.testing import tiny_vlm_path
from vlmguard.testing.fake_openai import FakeOpenAIServer, free_port
from vlmguard.types import Decision, RiskReport, Severity

SAFE_BLOCK = format_rewriter_output(
    RiskReport(decision=Decision.REFRAME, severity=Severity.MEDIUM, analysis="roof edge"), "SAFE REWRITE"
)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def script_file(tmp_path: Path) -> Path:
    path = tmp_path / "rewriter.json"
    path.write_text(json.dumps([SAFE_BLOCK]))
    return path


def test_guard_with_openai_rewriter_and_target(
    server: FakeOpenAIServer, png_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script = [SAFE_BLOCK]
    code, out, err = run_cli(
        [
            "guard",
            "--image",
            str(png_file),
            "--prompt",
            "can I jump from here?",
            "--rewriter",
            f"openai:rw@{server.url('script')}",
            "--target",
            f"openai:tg@{server.url('ok')}",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["rewrite"]["prompt"] == "SAFE REWRITE"
    assert payload["rewrite"]["report"]["decision"] == "reframe"
    assert (
        payload["answer"] == "reply:SAFE REWRITE"
        and payload["target"] == "tg"
        and payload["refused"] is False
    )
    target_request = server.requests[1]
    parts = target_request["messages"][-1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1]["text"] == "SAFE REWRITE"


def test_guard_human_output_without_target(
    script_file: Path, png_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["guard", "--image", str(png_file), "--prompt", "hello", "--rewriter", f"mock:script={script_file}"],
        capsys,
    )
    assert code == 0, err
    assert "decision: reframe" in out and "SAFE REWRITE" in out and "roof edge" in out


def test_guard_with_tiny_hf_models(png_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewriter, target = tiny_vlm_path("llava"), tiny_vlm_path("idefics3")
    code, out, err = run_cli(
        [
            "guard",
            "--image",
            str(png_file),
            "--prompt",
            "what is this?",
            "--rewriter",
            f"hf:{rewriter}",
            "--target",
            f"hf:{target}",
            "--max-tokens",
            "4",
            "--rewriter-max-tokens",
            "8",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    payload = json.loads(out)
    # a random tiny rewriter cannot follow the format: the fail-closed policy decides, and says so
    assert payload["rewrite"]["fallback"] == "fail_closed"
    assert payload["rewrite"]["report"]["decision"] == "reframe"
    assert isinstance(payload["answer"], str) and payload["target"] == f"hf:{target.name}"


def _bomb(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")))
    return path


BAD = [
    ("empty prompt", lambda t, s, p: ["--prompt", "   ", "--image", str(p)], "prompt is empty"),
    ("zero-width prompt", lambda t, s, p: ["--prompt", "\u200b\u200b", "--image", str(p)], "prompt is empty"),
    ("200k prompt", lambda t, s, p: ["--prompt", "x" * 200_000, "--image", str(p)], "over the limit"),
    (
        "missing image",
        lambda t, s, p: ["--prompt", "hi", "--image", str(t / "nope.png")],
        "image file not found",
    ),
    (
        "corrupt image",
        lambda t, s, p: ["--prompt", "hi", "--image", _file(t / "c.png", b"\x89PNG\r\n\x1a\nxx")],
        "image",
    ),
    (
        "non-image",
        lambda t, s, p: ["--prompt", "hi", "--image", _file(t / "a.txt", b"hello world")],
        "not a recognised image",
    ),
    (
        "unsupported format",
        lambda t, s, p: ["--prompt", "hi", "--image", _file(t / "a.ico", _ico())],
        "unsupported format",
    ),
    (
        "over-size image",
        lambda t, s, p: ["--prompt", "hi", "--image", str(_bomb(t / "bomb.png"))],
        "decompression bomb",
    ),
    (
        "unreachable target",
        lambda t, s, p: ["--prompt", "hi", "--target", f"openai:m@http://127.0.0.1:{free_port()}/v1"],
        "cannot connect",
    ),
    (
        "garbage target",
        lambda t, s, p: ["--prompt", "hi", "--target", f"openai:m@{s.url('garbage')}"],
        "not JSON",
    ),
    ("500 target", lambda t, s, p: ["--prompt", "hi", "--target", f"openai:m@{s.url('e500')}"], "HTTP 500"),
    (
        "unknown backend",
        lambda t, s, p: ["--prompt", "hi", "--target", "opnai:m@http://x/v1"],
        "Did you mean",
    ),
    ("bad hf path", lambda t, s, p: ["--prompt", "hi", "--target", f"hf:{t / 'no-model'}"], "not found"),
    ("bad max-tokens", lambda t, s, p: ["--prompt", "hi", "--max-tokens", "0"], "max-tokens"),
]


def _file(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _ico() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, format="ICO")
    return buf.getvalue()


@pytest.mark.parametrize(("label", "make_args", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_one_readable_line_and_nonzero_exit(
    label: str,
    make_args,
    message: str,
    tmp_path: Path,
    server: FakeOpenAIServer,
    png_file: Path,  # type: ignore[no-untyped-def]
    script_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["guard", "--rewriter", f"mock:script={script_file}", *make_args(tmp_path, server, png_file)]
    code, out, err = run_cli(args, capsys)
    assert code != 0
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.strip()]
    if label == "bad max-tokens":  # a usage error: click's usage line, hint and one error line
        assert code == 2 and lines[-1].startswith("Error:") and message in lines[-1]
        return
    assert len(lines) == 1, err
    assert message in lines[0]


def test_backends_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["backends"], capsys)
    assert code == 0
    for name in ("mock", "openai", "hf"):
        assert name in out


def test_console_script_end_to_end(script_file: Path, png_file: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("vlmguard")
    ok = subprocess.run(
        [
            str(exe),
            "guard",
            "--image",
            str(png_file),
            "--prompt",
            "hi",
            "--rewriter",
            f"mock:script={script_file}",
            "--target",
            "mock:echo",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["answer"] == "SAFE REWRITE"
    bad = subprocess.run(
        [
            str(exe),
            "guard",
            "--image",
            str(tmp_path / "missing.png"),
            "--prompt",
            "hi",
            "--rewriter",
            f"mock:script={script_file}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "image file not found" in bad.stderr
