"""Building a risk model folder: embed the rows, fit the head, measure it, write the head and its card.

:func:`build_risk_model` is what ``vlmguard risk-model train`` runs; :func:`evaluate_rows` is what
``vlmguard risk-model eval`` runs. Both report progress through an optional callback (the CLI draws
a progress bar with it).
"""

from __future__ import annotations

import platform
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlmguard.errors import InputError
from vlmguard.perception.encoders import TextEncoder, build_encoder
from vlmguard.perception.risk_data import LabelledText, iter_batches
from vlmguard.perception.risk_model import RiskHead, RiskModel, windows
from vlmguard.perception.risk_sources import POOL_LICENCES
from vlmguard.perception.risk_train import TrainOptions, fit_head

Progress = Callable[[int, int], None]
"""Called with (texts done, texts in all) while embedding."""
EMBED_BATCH = 256


def embed_rows(
    texts: Sequence[str], encoders: Sequence[TextEncoder], progress: Progress | None = None
) -> Any:
    """The concatenated embeddings of ``texts`` under ``encoders``, in batches, reporting progress.

    Each text is read as the model reads it at run time: long texts by their first window.
    """
    import numpy as np

    texts = [(windows(t) or [""])[0] for t in texts]

    total = len(texts) * len(encoders)
    done = 0
    parts = []
    for encoder in encoders:
        chunks = []
        for batch in iter_batches(list(texts), EMBED_BATCH):
            chunks.append(np.asarray(encoder.encode(batch), dtype=np.float32))
            done += len(batch)
            if progress is not None:
                progress(done, total)
        parts.append(np.concatenate(chunks, axis=0))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


class SourceResult(BaseModel):
    """How a model does on one source (or one label of a source)."""

    source: str
    label: str
    rows: int
    flagged: float
    """Share of the rows flagged (recall for harmful rows, false-flag rate for benign ones)."""
    category_accuracy: float | None = None
    """Share of harmful rows with categories whose top category is one of them."""


class EvalResult(BaseModel):
    """Per-source results of a model on labelled rows."""

    threshold: float
    sources: list[SourceResult] = Field(default_factory=list)

    def summary(self) -> dict[str, float]:
        harmful = [s.flagged for s in self.sources if s.label == "harmful"]
        benign = [s.flagged for s in self.sources if s.label == "benign"]
        out: dict[str, float] = {}
        if harmful:
            out.update(harmful_recall_mean=sum(harmful) / len(harmful), harmful_recall_worst=min(harmful))
        if benign:
            out.update(benign_flagged_mean=sum(benign) / len(benign), benign_flagged_worst=max(benign))
        return {k: round(v, 4) for k, v in out.items()}


def evaluate_rows(
    model: RiskModel, rows: Sequence[LabelledText], progress: Progress | None = None
) -> EvalResult:
    """Score ``rows`` with ``model`` and report per (source, label) flag rates."""
    scores = []
    for n, batch in enumerate(iter_batches([r.text for r in rows], EMBED_BATCH)):
        scores.extend(model.score_many(batch))
        if progress is not None:
            progress(min(len(rows), (n + 1) * EMBED_BATCH), len(rows))
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[(r.source, r.label)].append(i)
    results = []
    for (source, label), idx in sorted(groups.items()):
        flagged = sum(scores[i].flagged for i in idx) / len(idx)
        with_cats = [i for i in idx if rows[i].categories]
        accuracy = None
        if label == "harmful" and with_cats:
            hits = sum(
                bool(set(scores[i].top_categories(0.5, 1)) & set(rows[i].categories)) for i in with_cats
            )
            accuracy = round(hits / len(with_cats), 4)
        results.append(
            SourceResult(
                source=source,
                label=label,
                rows=len(idx),
                flagged=round(flagged, 4),
                category_accuracy=accuracy,
            )
        )
    return EvalResult(threshold=model.threshold, sources=results)


def model_card(
    head: RiskHead, rows: Sequence[LabelledText], command: str, licences: dict[str, str] | None = None
) -> str:
    """The Markdown model card of a head: data, counts, training command, metrics, data hash."""
    meta = head.meta
    counts = Counter((r.source, r.label) for r in rows)
    langs = Counter(r.lang for r in rows)
    lines = [
        "# Risk model card",
        "",
        f"- Encoders (frozen, packaged): {', '.join(meta.encoders)}",
        f"- Head: language-neutral projection ({head.arrays['language_basis'].shape[0]} directions), "
        f"logistic regression for harm, one per category ({len(meta.categories)})",
        f"- Operating threshold: p_harmful >= {meta.threshold} "
        "(chosen on out-of-fold predictions, folds by source)",
        f"- Categories: {', '.join(meta.categories) or 'none'}",
        f"- Training data SHA-256: `{meta.data_sha256}`",
        f"- Trained with: `{command}` (Python {platform.python_version()})",
        f"- Options: {meta.options}",
        "",
        "## Data",
        "",
        "| source | licence | harmful | benign |",
        "|---|---|---:|---:|",
    ]
    for source in sorted({s for s, _ in counts}):
        licence = {**POOL_LICENCES, **(licences or {})}.get(source, "the user's own data")
        lines.append(
            f"| {source} | {licence} | {counts[(source, 'harmful')]} | {counts[(source, 'benign')]} |"
        )
    lines += ["", "Languages: " + ", ".join(f"{k} {v}" for k, v in sorted(langs.items())), ""]
    if meta.metrics:
        lines += ["## Metrics", ""] + [f"- {k}: {v}" for k, v in sorted(meta.metrics.items())] + [""]
    return "\n".join(lines)


def build_risk_model(
    rows: Sequence[LabelledText],
    out: str | Path,
    *,
    encoders: Sequence[str] = ("minilm",),
    options: TrainOptions | None = None,
    command: str = "",
    licences: dict[str, str] | None = None,
    progress: Progress | None = None,
    encoder_objects: dict[str, TextEncoder] | None = None,
) -> RiskHead:
    """Embed ``rows``, fit a head, and write it with its model card into ``out``."""
    if not rows:
        raise InputError("no training rows")
    objects = [(encoder_objects or {}).get(name) or build_encoder(name) for name in encoders]
    embeddings = embed_rows([r.text for r in rows], objects, progress)
    head = fit_head(embeddings, rows, list(encoders), options)
    harm, _ = head.predict(embeddings)
    labels = [r.harmful for r in rows]
    flagged = [p >= head.meta.threshold for p in harm.tolist()]
    n_h = max(1, sum(labels))
    n_b = max(1, len(labels) - sum(labels))
    head.meta.metrics.update(
        train_harmful_recall=round(sum(f and y for f, y in zip(flagged, labels, strict=True)) / n_h, 4),
        train_benign_flagged=round(sum(f and not y for f, y in zip(flagged, labels, strict=True)) / n_b, 4),
    )
    head.save(out, card=model_card(head, rows, command, licences))
    return head


__all__ = [
    "EvalResult",
    "Progress",
    "SourceResult",
    "build_risk_model",
    "embed_rows",
    "evaluate_rows",
    "model_card",
]
