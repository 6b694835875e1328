"""The catalogue: every built-in defence loads from a spec; bad specs fail with named errors."""

from __future__ import annotations

from typing import Any

import pytest

from vlmguard.backends.mock import MockVLM
from vlmguard.defenses.base import DEFENSES, Defense
from vlmguard.defenses.catalog import EXAMPLES, load_defense, parse_defense_spec
from vlmguard.defenses.ecso import ECSODefense
from vlmguard.defenses.eta import ETADefense
from vlmguard.defenses.guarded import GuardedVLM
from vlmguard.defenses.mllm_protector import MLLMProtectorDefense
from vlmguard.defenses.scorers import FixedImageScorer, FixedTextScorer, JudgeTextScorer, LexicalRelevance
from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
from vlmguard.errors import ConfigError
from vlmguard.rewriter.model import ModelRewriter
from vlmguard.types import Message

BUILTINS = ["none", "vlmguard", "figstep", "adashield", "self-reminder", "ecso", "mllm-protector", "eta"]


def test_all_builtins_are_registered_without_a_setup_call() -> None:
    assert set(BUILTINS) <= set(DEFENSES.names())
    assert set(EXAMPLES) == set(BUILTINS)
    assert all(DEFENSES.entry(name).help for name in BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_example_spec_loads(name: str) -> None:
    if name == "vlmguard":
        pytest.importorskip(
            "vlmguard.rewriter.evidence", reason="the evidence rewriter is a separate component"
        )
    context: dict[str, Any] = {"rewriter": ModelRewriter(MockVLM.echo())}
    defense = load_defense(EXAMPLES[name], **context)
    assert isinstance(defense, Defense)
    assert defense.name.startswith(name)


@pytest.mark.parametrize("name", ["none", "figstep", "adashield", "self-reminder", "ecso", "mllm-protector"])
async def test_black_box_defences_run_on_a_mock_target(name: str) -> None:
    target = MockVLM.rules([(r"Is the RESPONSE harmful", "no")], default="fine")
    defense = load_defense(name, text_scorer=FixedTextScorer(0.0))
    guarded = GuardedVLM(defense, target)
    result = await guarded.run([Message.user("hello")])
    assert result.completion.text == "fine"
    assert result.target_calls >= 1 and result.latency_s >= result.overhead_s >= 0.0


def test_options_reach_the_defence() -> None:
    eta = load_defense(
        "eta?n=3&mode=or&alpha=0&pre=fixed:0.2&post=fixed:0.9&relevance=none&prefix=Safely%2C%20"
    )
    assert isinstance(eta, ETADefense)
    assert (eta.n, eta.mode, eta.alpha, eta.prefix) == (3, "or", 0.0, "Safely, ")
    assert isinstance(eta.pre, FixedImageScorer) and eta.pre.value == 0.2
    assert eta.relevance.name == "none"
    protector = load_defense(
        "mllm-protector?detector=judge:mock:text%3DHarm%3A%201&detoxifier=mock:echo&threshold=0.3"
    )
    assert isinstance(protector, MLLMProtectorDefense)
    assert isinstance(protector.detector, JudgeTextScorer) and protector.detoxifier is not None
    assert protector.threshold == 0.3
    ecso = load_defense("ecso?caption_tokens=64")
    assert isinstance(ecso, ECSODefense) and ecso.caption_tokens == 64


def test_context_objects_replace_defaults_unless_the_spec_names_one() -> None:
    text, image, rel = FixedTextScorer(0.1), FixedImageScorer(0.2), LexicalRelevance()
    eta = load_defense("eta", text_scorer=text, image_scorer=image, relevance=rel, unrelated="ignored")
    assert isinstance(eta, ETADefense) and eta.post is text and eta.pre is image and eta.relevance is rel
    named = load_defense("eta?post=fixed:0.7", text_scorer=text)
    assert isinstance(named, ETADefense) and named.post is not text
    rewriter = ModelRewriter(MockVLM.echo())
    guard = load_defense("vlmguard", rewriter=rewriter)
    assert isinstance(guard, VLMGuardDefense) and guard.rewriter is rewriter
    model_guard = load_defense("vlmguard?rewriter=mock:echo")
    assert isinstance(model_guard, VLMGuardDefense) and isinstance(model_guard.rewriter, ModelRewriter)


def test_parse_defense_spec() -> None:
    assert parse_defense_spec(" ECSO ") == ("ecso", {})
    assert parse_defense_spec("eta?n=3&mode=and") == ("eta", {"n": "3", "mode": "and"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", "unknown defense 'nosuch'"),
        ("ecos", "Did you mean 'ecso'"),
        ("eta?n=3&foo=1&bar=2", r"unknown option\(s\) for defence 'eta': bar, foo \(known: n, pre"),
        ("figstep?strength=high", r"unknown option\(s\) for defence 'figstep': strength \(known: none\)"),
        ("eta?n=0", "option n='0' must be between 1 and 64"),
        ("eta?n=three", "must be an integer"),
        ("eta?mode=xor", "one of and, or"),
        ("eta?alpha=nan", "must be between"),
        ("mllm-protector?threshold=2", "between"),
        ("mllm-protector?detector=nosuch", "unknown text scorer"),
        ("eta?pre=tagger", "unknown image scorer"),
        ("eta?n=3&n=4", "gives option 'n' twice"),
        ("eta?n", "key=value"),
        ("", "invalid defence spec"),
        ("?n=3", "invalid defence spec"),
        ("vlmguard?policy=maybe", "fail_closed, fail_open"),
    ],
)
def test_bad_specs_fail_with_named_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_defense(spec, rewriter=ModelRewriter(MockVLM.echo()))


def test_backend_options_must_be_a_dict() -> None:
    with pytest.raises(ConfigError, match="backend_options"):
        load_defense("mllm-protector?detoxifier=mock:echo", backend_options=["retries"])
