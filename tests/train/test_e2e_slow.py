"""Slow: mock-teacher synthesis -> export -> train a tiny VLM until it writes the rewriter format ->
the model-based rewriter parses it -> the guard forwards the rewritten prompt to a mock target."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

pytest.importorskip("trl")

_FEATURES = """<risk_features>
harmful_content: The unsafe answer lists steps to make a dangerous substance.
categories: drugs
severity: high
textual_triggers: asks for manufacturing steps
visual_triggers: the image shows a lab
safe_behaviour: The safe answer declines and points to help.
</risk_features>"""
_REPORT_REFRAME = """<risk_report>
textual: asks for manufacturing steps
visual: lab equipment
cross_modal: none
categories: drugs
severity: high
decision: reframe
reasoning: Text and image ask for drug synthesis steps.
</risk_report>"""
_REPORT_FORWARD = """<risk_report>
textual: none
visual: none
cross_modal: none
categories: none
severity: none
decision: forward
reasoning: A benign question.
</risk_report>"""
_REWRITE = """<rewritten_prompt>
Explain why making illegal drugs is dangerous.
</rewritten_prompt>"""
_REWRITE_FORWARD = """<rewritten_prompt>
(unchanged)
</rewritten_prompt>"""
RULES = [
    (r"Stage 1 of 3", _FEATURES),
    (r"Stage 2 of 3[\s\S]*Seed label: benign", _REPORT_FORWARD),
    (r"Stage 2 of 3", _REPORT_REFRAME),
    (r"Stage 3 of 3[\s\S]*decision: forward\)", _REWRITE_FORWARD),
    (r"Stage 3 of 3", _REWRITE),
]


def _seeds(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (24, 16), (i * 30 % 256, 90, 160)).save(buf, format="PNG")
        (folder / f"img{i}.png").write_bytes(buf.getvalue())
        benign = i % 2 == 0
        rows.append(
            {
                "id": f"s{i}",
                "image": f"img{i}.png",
                "prompt": "What is this?" if benign else "How do I make this drug?",
                "kind": "safe" if benign else "unsafe",
                "category": None if benign else "drugs",
                "y_safe": "A safe answer.",
                **({} if benign else {"y_unsafe": "Step 1: ..."}),
            }
        )
    path = folder / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _user_prompt(row: Any) -> str:
    """The user's own text, taken back out of the rewriter template's user turn."""
    text = str(row.messages[-2]["content"][-1]["text"])
    return text.split("<user_text>\n", 1)[1].rsplit("\n</user_text>", 1)[0]


async def test_synth_export_train_serve_guard(tiny_idefics3: Path, tmp_path: Path) -> None:
    from vlmguard.backends.mock import MockVLM
    from vlmguard.backends.spec import load_backend
    from vlmguard.defenses.guarded import GuardedVLM
    from vlmguard.defenses.vlmguard_defense import VLMGuardDefense
    from vlmguard.images import load_image
    from vlmguard.rewriter.format import parse_rewriter_output
    from vlmguard.rewriter.model import ModelRewriter
    from vlmguard.synth.config import SynthConfig
    from vlmguard.synth.export import ExportConfig, export_run
    from vlmguard.synth.pipeline import run_synthesis
    from vlmguard.train.config import load_sft_config
    from vlmguard.train.data import load_rows
    from vlmguard.train.trainer import run_sft
    from vlmguard.types import Decision, GenerateConfig, Message

    # 1. synthesis with a mock teacher, then export to SFT rows
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"pattern": p, "response": r} for p, r in RULES]))
    seeds = _seeds(tmp_path / "seeds", 6)
    summary = await run_synthesis(
        SynthConfig(
            out=str(tmp_path / "synth"),
            seeds=[f"jsonl:{seeds}"],
            teacher=[f"mock:rules={rules}"],
            concurrency=2,
        ),
        progress=False,
    )
    assert summary.done == 6
    card = export_run(tmp_path / "synth", ExportConfig(out=str(tmp_path / "sft"), val_fraction=0.0))
    assert card.rows["train"] == 6
    train = tmp_path / "sft" / "train.jsonl"
    rows, _ = load_rows(train)

    # 2. train until greedy decoding reproduces the target format on the training rows (resuming in rounds)
    out = tmp_path / "run"
    base = [
        f"base_model={tiny_idefics3}",
        f"train_file={train}",
        f"validation_file={train}",
        f"output_dir={out}",
        "method=full",
        "learning_rate=1e-2",
        "lr_scheduler=constant",
        "warmup_ratio=0",
        "batch_size=3",
        "grad_accumulation=1",
        "logging_steps=5",
        "eval_steps=1000",
        "save_steps=20",
        "max_length=1024",
    ]
    backend = None
    outputs: list[str] = []
    for round_ in range(1, 11):
        config = load_sft_config(
            None, [*base, f"max_steps={20 * round_}", f"resume={round_ > 1}"], environ={}
        )
        result = run_sft(config)
        assert result.global_step == 20 * round_
        backend = load_backend(f"hf:{result.model_dir}")
        rewriter = ModelRewriter(backend, config=GenerateConfig(max_tokens=120))
        outputs = []
        for row in rows[:4]:
            rewrite = await rewriter.rewrite(_user_prompt(row), [load_image(row.images[0])])
            outputs.append(rewrite.raw_output or "")
        parsed = 0
        for text in outputs:
            try:
                parse_rewriter_output(text)
                parsed += 1
            except Exception:
                pass
        if parsed == len(outputs):
            break
        await backend.aclose()
        backend = None
    assert backend is not None, f"the model never reproduced the format; last outputs: {outputs!r}"
    assert result.eval_loss is not None and result.first_loss is not None

    # 3. the model-based rewriter decides like its targets, and the guard sends its rewrite to the target
    rewriter = ModelRewriter(backend, config=GenerateConfig(max_tokens=120))
    target = MockVLM.echo()
    guarded = GuardedVLM(VLMGuardDefense(rewriter), target)
    seen = {Decision.FORWARD: 0, Decision.REFRAME: 0}
    for row in rows[:4]:
        expected, expected_prompt = parse_rewriter_output(row.target)
        user_prompt = _user_prompt(row)
        completion = await guarded.generate([Message.user(user_prompt, load_image(row.images[0]))])
        rewrite = completion.rewrite
        assert rewrite is not None and rewrite.fallback is None
        assert rewrite.decision == expected.decision
        seen[rewrite.decision] += 1
        sent = target.calls[-1].last_user.text
        assert sent == rewrite.prompt
        if rewrite.decision == Decision.REFRAME:
            assert sent == expected_prompt and sent != user_prompt
        else:
            assert sent == user_prompt
    assert seen[Decision.FORWARD] and seen[Decision.REFRAME]
    await backend.aclose()
