"""One fail policy: the same failing rewriter gives the same outcome through the Python API, the CLI,
the proxy and eval's ``vlmguard`` defence (an exception, a timeout or unusable output alike)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import pytest
from pipeline_fakes import FAILURES, REASONS, SECRET, FailingRewriter
from proxy_helpers import chat_body, config, proxy_client

from vlmguard.backends.mock import MockVLM
from vlmguard.cli.main import main
from vlmguard.defenses.catalog import load_defense
from vlmguard.guard import Guard
from vlmguard.rewriter.fallback import SAFETY_PREAMBLE
from vlmguard.types import Message

PROMPT = "how do lock picks work?"
TIMEOUT = 0.05


class Outcome(NamedTuple):
    """What a front end did: the policy recorded, why, the decision, and the text the target got."""

    fallback: str | None
    reason: str
    decision: str
    sent: str | None


def _from_api(rewriter: FailingRewriter, policy: str, action: str) -> Outcome:
    target = MockVLM.echo()
    guard = Guard(
        rewriter=rewriter,
        target=target,
        policy=policy,  # type: ignore[arg-type]
        rewriter_timeout_s=TIMEOUT,
        fail_closed_action=action,
    )  # type: ignore[arg-type]
    result = asyncio.run(guard.aask(PROMPT))
    rewrite = result.rewrite
    assert rewrite is not None
    sent = target.calls[0].last_user.text if target.calls else None
    return Outcome(rewrite.fallback, rewrite.error or "", rewrite.decision.value, sent)


def _from_cli(
    rewriter: FailingRewriter,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Outcome:
    monkeypatch.setattr("vlmguard.rewriter.load.load_rewriter", lambda *args, **kwargs: rewriter)
    capsys.readouterr()
    args = [
        "guard",
        "--prompt",
        PROMPT,
        "--target",
        "mock:echo",
        "--policy",
        policy,
        "--rewriter-timeout",
        str(TIMEOUT),
        "--json",
    ]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    rewrite = payload["rewrite"]
    sent = None if payload["refused"] else payload["answer"]  # the echo target answers with what it got
    return Outcome(rewrite["fallback"], rewrite["error"] or "", rewrite["report"]["decision"], sent)


async def _proxy(rewriter: FailingRewriter, policy: str, action: str) -> Outcome:
    cfg = config(fail_policy=policy, fail_closed_action=action, timeouts={"rewriter_s": TIMEOUT})
    async with proxy_client(cfg, rewriter=rewriter) as (client, fake, _):
        response = await client.post("/v1/chat/completions", json=chat_body(PROMPT))
    assert response.status_code == 200, response.text
    ext: dict[str, Any] = response.json()["vlmguard"]
    sent = fake.requests[-1]["messages"][-1]["content"][-1]["text"] if fake.calls else None
    return Outcome(ext["fallback"], ext["fallback_reason"] or "", ext["decision"], sent)


def _from_proxy(rewriter: FailingRewriter, policy: str, action: str) -> Outcome:
    return asyncio.run(_proxy(rewriter, policy, action))


def _from_eval(rewriter: FailingRewriter, policy: str) -> Outcome:
    defense = load_defense(f"vlmguard?policy={policy}&timeout_s={TIMEOUT}", rewriter=rewriter)
    target = MockVLM.echo()
    result = asyncio.run(defense([Message.user(PROMPT)], target))
    rewrite = result.rewrite
    assert rewrite is not None
    sent = target.calls[0].last_user.text if target.calls else None
    return Outcome(rewrite.fallback, rewrite.error or "", rewrite.decision.value, sent)


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
@pytest.mark.parametrize("kind", FAILURES)
def test_every_front_end_applies_the_same_fail_policy(
    kind: str, policy: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = {
        "api": _from_api(FailingRewriter(kind), policy, "rewrite"),
        "cli": _from_cli(FailingRewriter(kind), policy, monkeypatch, capsys),
        "proxy": _from_proxy(FailingRewriter(kind), policy, "rewrite"),
        "eval": _from_eval(FailingRewriter(kind), policy),
    }
    api = outcomes["api"]
    assert api.fallback == policy and REASONS[kind] in api.reason
    assert SECRET not in api.reason  # the reason reaches clients: it names the failure, not its text
    if policy == "fail_closed":
        assert api.decision == "reframe"
        assert api.sent is not None and api.sent.startswith(SAFETY_PREAMBLE) and PROMPT in api.sent
    else:
        assert api.decision == "forward" and api.sent == PROMPT
    for name, outcome in outcomes.items():
        assert outcome == api, name


@pytest.mark.parametrize("kind", ["error", "timeout", "empty"])
def test_fail_closed_can_refuse_in_the_api_and_the_proxy(kind: str) -> None:
    api = _from_api(FailingRewriter(kind), "fail_closed", "refuse")
    proxy = _from_proxy(FailingRewriter(kind), "fail_closed", "refuse")
    assert api == proxy
    assert api.decision == "refuse" and api.sent is None and api.fallback == "fail_closed"


def test_input_errors_are_not_covered_by_the_policy() -> None:
    guard = Guard(rewriter=FailingRewriter("error"), target=MockVLM.echo(), policy="fail_open")
    with pytest.raises(Exception, match="no user message") as info:
        asyncio.run(guard.aask_messages([Message.system("only a system prompt")]))
    assert getattr(info.value, "code", None) == "no_user_message"
