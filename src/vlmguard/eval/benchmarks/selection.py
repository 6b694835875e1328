"""Which samples of a benchmark a run takes: the category filter and the (stratified) limit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vlmguard.errors import ConfigError
from vlmguard.eval.benchmarks.base import BenchmarkOptions
from vlmguard.eval.sample import Sample


def category_matches(sample: Sample, wanted: Sequence[str]) -> bool:
    """True when ``sample``'s category or own label is one of ``wanted`` (case-insensitive)."""
    if not wanted:
        return True
    return bool({w.strip().lower() for w in wanted} & _names(sample))


def _names(sample: Sample) -> set[str]:
    """The names ``sample`` answers to: its label (with and without a parenthesised gloss), its groups
    and its taxonomy category, lower-cased."""
    label = sample.label.lower()
    own = {label, label.split(" (")[0]} | {g.lower() for g in sample.groups}
    if sample.category is not None:
        own.add(sample.category.value)
    return own


def check_categories(samples: Sequence[Sample], wanted: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a ``wanted`` category that is neither a taxonomy name nor a
    label of ``samples``, listing the known ones (a typo must not run zero samples)."""
    from vlmguard.taxonomy import RiskCategory

    known: set[str] = {c.value for c in RiskCategory}
    for sample in samples:
        known |= _names(sample) - {""}
    unknown = [w for w in wanted if w.strip().lower() not in known]
    if unknown:
        listed = sorted(known)
        shown = ", ".join(listed[:60]) + (f", ... ({len(listed)} in all)" if len(listed) > 60 else "")
        names = ", ".join(repr(u) for u in unknown)
        raise ConfigError(f"unknown category {names}; known categories: {shown}")


def select(samples: Iterable[Sample], options: BenchmarkOptions) -> list[Sample]:
    """Apply the category filter and the limit (round-robin over labels when ``stratify``).

    Raises :class:`ConfigError` for an unknown category (see :func:`check_categories`).
    """
    samples = list(samples)
    if options.categories:
        check_categories(samples, options.categories)
    kept = [s for s in samples if category_matches(s, options.categories)]
    if options.limit is None or options.limit >= len(kept):
        return kept
    if not options.stratify:
        return kept[: options.limit]
    groups: dict[str, list[Sample]] = {}
    for sample in kept:
        groups.setdefault(sample.label or (sample.category.value if sample.category else ""), []).append(
            sample
        )
    chosen: list[Sample] = []
    queues = [list(g) for g in groups.values()]
    depth = 0
    while len(chosen) < options.limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < options.limit:
                chosen.append(queue[depth])
        depth += 1
    order = {s.key: i for i, s in enumerate(kept)}
    return sorted(chosen, key=lambda s: order[s.key])
