"""Training the risk model's head on frozen embeddings (scikit-learn's logistic regression).

:func:`fit_head` turns embeddings and their :class:`~vlmguard.perception.risk_data.LabelledText`
rows into a :class:`~vlmguard.perception.risk_model.RiskHead`:

- **Weights** balance the data: every (source, label) group weighs ``n ** balance`` in all (so a
  large source does not drown a small one), harmful and benign weigh the same in all, and within
  each language harmful and benign rows are given the same total weight where both exist.
- **Language directions**: for every language with parallel rows (the same request in English and in
  that language, rows sharing a ``group``), the mean difference of their embeddings is a direction
  that says "this language" and nothing about harm; the features are projected away from them.
- **Operating point**: the threshold is chosen on out-of-fold predictions where each fold leaves out
  whole sources, so it is set on sources the fold's model never saw: the threshold that maximises
  the mean recall over harmful sources minus ``benign_cost`` times the mean flag rate over benign
  sources (with cost 1, Youden's J over sources). A benign request flagged by mistake is reframed,
  not refused, so a missed harmful request costs more.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import InputError
from vlmguard.perception.risk_data import LabelledText, data_hash
from vlmguard.perception.risk_model import HeadMeta, RiskHead


class TrainOptions(BaseModel):
    """Options of :func:`fit_head` (recorded in the head's metadata)."""

    model_config = ConfigDict(extra="forbid")
    c: float = Field(default=0.1, gt=0)
    """Inverse regularisation strength of the logistic regressions."""
    balance: float = Field(default=0.5, ge=0.0, le=1.0)
    """A (source, label) group of n rows weighs n ** balance in all (0: every group the same; 1: every
    row the same)."""
    language_neutral: bool = True
    benign_cost: float = Field(default=1.0, gt=0.0)
    """Weight of the benign flag rate against harmful recall when choosing the operating point."""
    folds: int = Field(default=5, ge=2)
    min_category_rows: int = Field(default=5, ge=1)
    """Categories with fewer harmful rows are not given a head."""


def sample_weights(rows: Sequence[LabelledText], balance: float) -> Any:
    """Per-row weights: (source, label) groups balanced, classes equal, languages label-balanced."""
    import numpy as np

    groups = Counter((r.source, r.label) for r in rows)
    w = np.array([groups[(r.source, r.label)] ** balance / groups[(r.source, r.label)] for r in rows])
    # within a language that has both labels, harmful and benign weigh the same
    by_lang: dict[tuple[str, str], float] = defaultdict(float)
    for r, wi in zip(rows, w, strict=True):
        by_lang[(r.lang, r.label)] += wi
    for i, r in enumerate(rows):
        other = "benign" if r.harmful else "harmful"
        if by_lang.get((r.lang, other), 0.0) > 0:
            w[i] *= (
                0.5
                * (by_lang[(r.lang, "harmful")] + by_lang[(r.lang, "benign")])
                / by_lang[(r.lang, r.label)]
            )
    harmful = np.array([r.harmful for r in rows])
    total = w.sum()
    for mask in (harmful, ~harmful):
        if mask.any():
            w[mask] *= 0.5 * total / w[mask].sum()
    return w * (len(rows) / w.sum())


def language_basis(embeddings: Any, rows: Sequence[LabelledText]) -> Any:
    """Orthonormal rows spanning the language directions found in parallel rows (may be empty)."""
    import numpy as np

    english: dict[str, list[int]] = defaultdict(list)
    others: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        if not r.group:
            continue
        (english[r.group] if r.lang == "en" else others[r.lang][r.group]).append(i)
    directions = []
    for _lang, groups in sorted(others.items()):
        diffs = [
            embeddings[idx].mean(axis=0) - embeddings[english[g]].mean(axis=0)
            for g, idx in groups.items()
            if g in english
        ]
        if len(diffs) >= 5:
            directions.append(np.mean(diffs, axis=0))
    if not directions:
        return np.zeros((0, embeddings.shape[1]), dtype=np.float32)
    q, _ = np.linalg.qr(np.asarray(directions, dtype=np.float64).T)
    return q.T.astype(np.float32)


def _category_names(rows: Sequence[LabelledText], min_rows: int) -> list[str]:
    counts = Counter(c for r in rows if r.harmful for c in r.categories)
    return sorted(c for c, n in counts.items() if n >= min_rows)


def _fit_arrays(
    x: Any, rows: Sequence[LabelledText], weights: Any, categories: list[str], c: float
) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    y = np.array([r.harmful for r in rows], dtype=int)
    harm = LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=weights)
    cat_w = np.zeros((x.shape[1], len(categories)), dtype=np.float32)
    cat_b = np.full(len(categories), -10.0, dtype=np.float32)
    labelled = [i for i, r in enumerate(rows) if r.harmful and r.categories]
    for k, name in enumerate(categories):
        target = np.array([name in rows[i].categories for i in labelled], dtype=int)
        if 0 < target.sum() < len(target):
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x[labelled], target)
            cat_w[:, k] = model.coef_[0]
            cat_b[k] = model.intercept_[0]
    return {
        "harm_w": harm.coef_[0].astype(np.float32),
        "harm_b": np.asarray([harm.intercept_[0]], dtype=np.float32),
        "cat_w": cat_w,
        "cat_b": cat_b,
    }


def _head(embeddings: Any, rows: Sequence[LabelledText], options: TrainOptions, meta: HeadMeta) -> RiskHead:
    import numpy as np

    basis = (
        language_basis(embeddings, rows) if options.language_neutral else np.zeros((0, embeddings.shape[1]))
    )
    projected = embeddings - (embeddings @ basis.T) @ basis if basis.size else embeddings
    mean = projected.mean(axis=0)
    scale = projected.std(axis=0) + 1e-6
    x = (projected - mean) / scale
    arrays = _fit_arrays(x, rows, sample_weights(rows, options.balance), meta.categories, options.c)
    arrays.update(
        language_basis=basis.astype(np.float32), mean=mean.astype(np.float32), scale=scale.astype(np.float32)
    )
    return RiskHead(meta, arrays)


def choose_threshold(p: Any, rows: Sequence[LabelledText], benign_cost: float = 1.0) -> float:
    """The threshold maximising mean harmful recall minus ``benign_cost`` x mean benign flag rate, the
    means taken over sources (each source counts once, whatever its size)."""
    import numpy as np

    def groups(harmful: bool) -> list[Any]:
        sources = sorted({r.source for r in rows if r.harmful == harmful})
        return [
            np.array([p[i] for i, r in enumerate(rows) if r.source == s and r.harmful == harmful])
            for s in sources
        ]

    harmful, benign = groups(True), groups(False)
    if not harmful or not benign:
        return 0.5
    grid = np.linspace(0.05, 0.99, 189)
    gain = [
        np.mean([(v >= t).mean() for v in harmful]) - benign_cost * np.mean([(v >= t).mean() for v in benign])
        for t in grid
    ]
    best = np.flatnonzero(np.isclose(gain, max(gain)))
    return float(round(grid[int(best[len(best) // 2])], 3))  # the middle of the best plateau


def source_folds(rows: Sequence[LabelledText], folds: int) -> dict[str, int]:
    """The fold of each source (sources in order, round robin over at most ``folds`` folds)."""
    sources = sorted({r.source for r in rows})
    return {s: i % min(folds, len(sources)) for i, s in enumerate(sources)}


def out_of_fold(embeddings: Any, rows: Sequence[LabelledText], options: TrainOptions) -> Any:
    """Each row's ``p_harmful`` from a head trained on folds that hold none of its source."""
    import numpy as np

    fold_of = source_folds(rows, options.folds)
    folds = len(set(fold_of.values()))
    p = np.zeros(len(rows), dtype=np.float32)
    for k in range(folds):
        train = [i for i, r in enumerate(rows) if fold_of[r.source] != k]
        test = [i for i, r in enumerate(rows) if fold_of[r.source] == k]
        train_rows = [rows[i] for i in train]
        if len({r.label for r in train_rows}) < 2:
            p[test] = 0.5
            continue
        meta = HeadMeta(encoders=[], categories=[], threshold=0.5)
        head = _head(embeddings[train], train_rows, options, meta)
        p[test], _ = head.predict(embeddings[test])
    return p


def fit_head(
    embeddings: Any,
    rows: Sequence[LabelledText],
    encoders: Sequence[str],
    options: TrainOptions | None = None,
) -> RiskHead:
    """Train a head on ``embeddings`` (rows aligned with ``rows``) and choose its operating point."""
    options = options or TrainOptions()
    labels = {r.label for r in rows}
    if labels != {"harmful", "benign"}:
        raise InputError("training needs both harmful and benign rows")
    if len({r.source for r in rows}) >= 2:
        threshold = choose_threshold(out_of_fold(embeddings, rows, options), rows, options.benign_cost)
    else:
        threshold = 0.5
    meta = HeadMeta(
        encoders=list(encoders),
        categories=_category_names(rows, options.min_category_rows),
        threshold=threshold,
        trained_on=dict(sorted(Counter(r.source for r in rows).items())),
        data_sha256=data_hash(rows),
        options=options.model_dump(),
    )
    return _head(embeddings, rows, options, meta)


__all__ = [
    "TrainOptions",
    "choose_threshold",
    "fit_head",
    "language_basis",
    "out_of_fold",
    "sample_weights",
    "source_folds",
]
