"""The labelled sources the shipped risk model is built from, and their licences.

- :func:`read_pool`: the text-safety pool (one JSONL per public source), without evaluation-only
  sources (VLGuard's instructions are read by
  :func:`vlmguard.eval.benchmarks.vlguard.labelled_instructions`);
- :func:`everyday_requests`: vlmguard's own benign everyday requests;
- :func:`read_exemplars`: the exemplar sentences of the offline judge's tagger (kept out of the
  shipped model so the judge stays independent of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vlmguard.errors import InputError
from vlmguard.perception.package_data import data_yaml
from vlmguard.perception.risk_data import LabelledText, read_labelled

POOL_LICENCES: dict[str, str] = {
    "xstest": "CC-BY-4.0",
    "simplesafetytests": "CC-BY-4.0",
    "openai_moderation": "MIT",
    "advbench": "MIT",
    "advbench_strings": "MIT",
    "jailbreakbench": "MIT",
    "strongreject": "MIT",
    "dangerousqa": "MIT",
    "harmfulqa": "Apache-2.0",
    "catqa_en": "Apache-2.0",
    "catqa_zh": "Apache-2.0",
    "catqa_vi": "Apache-2.0",
    "multijail": "MIT",
    "purplellama_frr": "MIT",
    "purplellama_frr_multilingual": "MIT",
    "arena_hard": "Apache-2.0",
    "arena_hard_v2": "Apache-2.0",
    "mt_bench": "Apache-2.0",
    "vicuna_bench": "Apache-2.0",
    "self_instruct": "Apache-2.0",
    "gsm8k": "MIT",
    "vlguard_train": "see the VLGuard repository",
    "vlmguard_exemplars": "vlmguard's own sentences (Apache-2.0)",
    "everyday": "vlmguard's own request forms and activities (Apache-2.0)",
    "compositions": "made from the rows above and vlmguard's own composition material (Apache-2.0)",
}
"""Licences of the public prompt sets the shipped risk model is trained on (per the pool's README)."""

EVALUATION_ONLY = frozenset({"xstest"})
"""Sources of the text-safety pool that are never trained or tuned on."""
STATEMENT_SOURCES = frozenset({"advbench_strings"})
"""Sources of harmful statements rather than requests (kept out of the default training set)."""


def read_pool(folder: str | Path, *, exclude: Iterable[str] = ()) -> list[LabelledText]:
    """The text-safety pool (``<data>/textsafety/*.jsonl``) without evaluation-only sources."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder (expected the text-safety pool, one JSONL per source)")
    skip = set(exclude) | EVALUATION_ONLY | STATEMENT_SOURCES
    rows: list[LabelledText] = []
    for file in sorted(root.glob("*.jsonl")):
        if file.stem not in skip:
            rows.extend(read_labelled(file))
    return rows


def read_exemplars(source: str = "vlmguard_exemplars") -> list[LabelledText]:
    """The project's own hand-written sentences (``data/text_exemplars.yaml``): requests per risk
    category, and benign requests that share their words (kitchen knives, plant diseases, antivirus
    software). None is a benchmark item."""
    raw = data_yaml("text_exemplars.yaml")
    rows = [
        LabelledText(
            text=t, label="harmful", categories=(str(category),), source=source, id=f"{category}:{n}"
        )
        for category, items in raw["categories"].items()
        for n, t in enumerate(items)
    ]
    rows += [
        LabelledText(text=t, label="benign", source=source, id=f"benign:{n}")
        for n, t in enumerate(raw["benign"])
    ]
    return rows


def everyday_requests(*, seed: int = 0, limit: int = 1500, source: str = "everyday") -> list[LabelledText]:
    """Benign everyday requests: request forms crossed with ordinary activities (``data/everyday.yaml``),
    a seeded sample of at most ``limit``."""
    import random

    raw = data_yaml("everyday.yaml")
    pairs = [(f, a) for f in raw["forms"] for a in raw["activities"]]
    chosen = random.Random(seed).sample(pairs, min(limit, len(pairs)))
    return [
        LabelledText(text=form.format(activity), label="benign", source=source, id=f"{n}")
        for n, (form, activity) in enumerate(chosen)
    ]


__all__ = [
    "EVALUATION_ONLY",
    "POOL_LICENCES",
    "STATEMENT_SOURCES",
    "everyday_requests",
    "read_exemplars",
    "read_pool",
]
