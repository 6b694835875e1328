"""``vlmguard serve``: the key-hashing helper and config errors (the running server is tested elsewhere)."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from vlmguard.cli.serve_cmd import serve
from vlmguard.server.auth import verify_key


def test_hash_key_prints_a_verifiable_hash_and_not_the_key() -> None:
    for algo in ("scrypt", "sha256"):
        result = CliRunner().invoke(serve, ["--hash-key", "--hash-algo", algo], input="my-secret-key\n")
        assert result.exit_code == 0, result.output
        stored = result.output.strip()
        assert stored.startswith(f"{algo}$") and "my-secret-key" not in stored
        assert verify_key("my-secret-key", stored) and not verify_key("other", stored)


def test_serve_without_upstream_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vlmguard.cli.main", "serve"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "no upstream URL" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_with_unknown_config_key_is_a_clear_error(tmp_path) -> None:
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text("upstream:\n  urls: [http://localhost:8000/v1]\nextensionz: true\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "vlmguard.cli.main", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "extensionz: unknown key" in proc.stderr
