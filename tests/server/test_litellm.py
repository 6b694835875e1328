"""The LiteLLM guardrail: its logic directly here, and through LiteLLM's own hook runner in the LiteLLM
environment (``.venv-litellm``, made by ``scripts/setup.sh``), which runs ``litellm_hook_cases.py``."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from proxy_helpers import SAFE_PROMPT, chat_body, data_uri, mock_rewriter

from vlmguard.server.errors import ProxyError
from vlmguard.server.litellm_guardrail import GuardrailCore, GuardrailRefused


async def test_core_reframe_rewrites_text_and_keeps_images(png_bytes: bytes) -> None:
    marker = object()  # LiteLLM puts live objects in the request dict: they must survive
    data = {
        **chat_body("REFRAMEME", data_uri(png_bytes)),
        "litellm_logging_obj": marker,
        "metadata": {"a": 1},
    }
    original = copy.deepcopy({k: v for k, v in data.items() if k != "litellm_logging_obj"})
    out = await GuardrailCore(mock_rewriter()).apply(data)
    assert out["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": data_uri(png_bytes)}},
        {"type": "text", "text": SAFE_PROMPT},
    ]
    assert out["litellm_logging_obj"] is marker and out["metadata"]["a"] == 1
    assert out["metadata"]["vlmguard"]["decision"] == "reframe"
    assert {k: v for k, v in data.items() if k != "litellm_logging_obj"} == original  # input not mutated


async def test_core_forward_refuse_block_and_bad_input() -> None:
    core = GuardrailCore(mock_rewriter())
    forwarded = await core.apply(chat_body("hello"))
    assert forwarded["messages"] == chat_body("hello")["messages"] and "mock_response" not in forwarded
    refused = await core.apply(chat_body("REFUSEME"))
    assert "illegal activity" in refused["mock_response"]
    assert refused["metadata"]["vlmguard"]["upstream_called"] is False
    with pytest.raises(GuardrailRefused):
        await GuardrailCore(mock_rewriter(), on_refuse="block").apply(chat_body("REFUSEME"))
    with pytest.raises(ProxyError) as info:
        await core.apply({"model": "m", "messages": [{"role": "user", "content": "x" * 40_000}]})
    assert info.value.status == 400 and info.value.code == "prompt_too_long"
    custom = await GuardrailCore(mock_rewriter(), refusal_message="No.", extension=False).apply(
        chat_body("REFUSEME")
    )
    assert custom["mock_response"] == "No." and "vlmguard" not in (custom.get("metadata") or {})


def test_module_imports_without_litellm_attribute_access() -> None:
    import vlmguard.server.litellm_guardrail as mod

    with pytest.raises(AttributeError):
        _ = mod.NoSuchThing


REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("litellm_hook_cases.py")


def _litellm_python() -> Path | None:
    """The interpreter of the LiteLLM environment: ``$VLMGUARD_LITELLM_PYTHON`` or ``.venv-litellm``."""
    configured = os.environ.get("VLMGUARD_LITELLM_PYTHON")
    if configured:
        return Path(configured)
    candidate = REPO / ".venv-litellm" / "bin" / "python"
    return candidate if candidate.is_file() else None


def test_through_litellm_in_its_own_environment(tmp_path: Path) -> None:
    """Every case of ``litellm_hook_cases.py`` runs and passes under LiteLLM (none skipped)."""
    python = _litellm_python()
    if python is None:
        message = "no LiteLLM environment: run scripts/setup.sh (it makes .venv-litellm)"
        if os.environ.get("VLMGUARD_REQUIRE_LITELLM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    report = tmp_path / "litellm.xml"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [str(python), "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "skipped", "failures", "errors")}
    assert counts == {"tests": 2, "skipped": 0, "failures": 0, "errors": 0}, counts
