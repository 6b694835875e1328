"""The LiteLLM guardrail through LiteLLM's own code: its proxy's pre-call hook runner and its registry
of guardrails configured in a proxy config.

These cases need LiteLLM, which lives in the second environment ``.venv-litellm`` (its pins do not
fit the main lock); ``test_litellm.py`` runs this file there. By hand::

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv-litellm/bin/python -m pytest tests/server/litellm_hook_cases.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proxy_helpers import SAFE_PROMPT, chat_body, data_uri, serve_in_thread, write_rules

from vlmguard.server.fake_upstream import FakeUpstream


@pytest.fixture(autouse=True)
def _offline_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM reads its model price map from its own package instead of fetching it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


async def test_through_litellm_proxy_hooks_and_sdk(tmp_path: Path, png_bytes: bytes) -> None:
    """Load the class the way a LiteLLM proxy config does and run LiteLLM's own pre-call hook runner."""
    import litellm
    from litellm.caching import DualCache
    from litellm.proxy._types import UserAPIKeyAuth
    from litellm.proxy.types_utils.utils import get_instance_fn
    from litellm.proxy.utils import ProxyLogging

    rules = write_rules(tmp_path / "rules.json")
    cls = get_instance_fn("vlmguard.server.litellm_guardrail.VLMGuardGuardrail")
    guard = cls(
        guardrail_name="vlmguard", event_hook="pre_call", default_on=True, rewriter=f"mock:rules={rules}"
    )
    assert isinstance(guard, litellm.integrations.custom_guardrail.CustomGuardrail)
    previous = list(litellm.callbacks)
    litellm.callbacks = [guard]
    try:
        hooks = ProxyLogging(user_api_key_cache=DualCache())
        user = UserAPIKeyAuth(api_key="sk-test")
        fake = FakeUpstream()
        with serve_in_thread(fake) as upstream:
            data = await hooks.pre_call_hook(
                user_api_key_dict=user,
                call_type="completion",
                data=chat_body("REFRAMEME", data_uri(png_bytes)) | {"model": "openai/fake"},
            )
            assert data["messages"][0]["content"][-1] == {"type": "text", "text": SAFE_PROMPT}
            response = await litellm.acompletion(
                model="openai/fake", api_base=upstream + "/v1", api_key="x", messages=data["messages"]
            )
            assert response.choices[0].message.content == f"echo: {SAFE_PROMPT} [images: 1]"
            assert fake.requests[-1]["messages"][0]["content"][0]["image_url"]["url"] == data_uri(png_bytes)

            refused = await hooks.pre_call_hook(
                user_api_key_dict=user,
                call_type="completion",
                data=chat_body("REFUSEME") | {"model": "openai/fake"},
            )
            calls = fake.calls
            answer = await litellm.acompletion(
                model="openai/fake",
                api_base=upstream + "/v1",
                api_key="x",
                messages=refused["messages"],
                mock_response=refused["mock_response"],
            )
            assert "illegal activity" in answer.choices[0].message.content
            assert fake.calls == calls  # the model was not called
    finally:
        litellm.callbacks = previous


async def test_litellm_registry_builds_it_from_config_params(tmp_path: Path) -> None:
    """The path a LiteLLM proxy config takes: ``guardrails[].litellm_params`` -> the guardrail instance."""
    from litellm.proxy.guardrails.guardrail_registry import InMemoryGuardrailHandler
    from litellm.types.guardrails import LitellmParams

    rules = write_rules(tmp_path / "rules.json")
    target = "vlmguard.server.litellm_guardrail.VLMGuardGuardrail"
    params = LitellmParams(
        guardrail=target,
        mode="pre_call",
        default_on=True,
        rewriter=f"mock:rules={rules}",
        on_refuse="respond",
    )
    guard = InMemoryGuardrailHandler().initialize_custom_guardrail(
        guardrail={"guardrail_name": "vlmguard"},
        guardrail_type=target,
        litellm_params=params,
        config_file_path=str(tmp_path / "config.yaml"),
    )
    out = await guard.async_pre_call_hook(None, None, chat_body("REFRAMEME"), "completion")
    assert out["messages"][0]["content"][-1]["text"] == SAFE_PROMPT
    refused = await guard.async_pre_call_hook(None, None, chat_body("REFUSEME"), "completion")
    assert "illegal activity" in refused["mock_response"]
