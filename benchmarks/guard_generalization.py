"""How the learned risk model generalises to sources, languages and wordings it was not trained on.

    .venv/bin/python benchmarks/guard_generalization.py [--data ../shared/data] [--encoder minilm]
        [--sections loso,languages,robustness,eval,compositions,latency] [--json out.json]
        [--headings] [--benign-cost 2]

The training recipe is the shipped model's unless an option changes it: its encoder, options and
made rows (twins and compositions; heading forms only if it was trained with them).

Held-out texts are read as the guard reads them (every window, and the undisguised reading; the
most harmful counts). Every figure is taken at the operating point the training procedure chooses
by itself (the threshold set on out-of-fold predictions of the training part), never tuned on the
evaluated set:

- **loso**: for each source of the pool (and VLGuard's train instructions), train without it and
  report the share of its harmful rows flagged (recall) and of its benign rows flagged; mean and
  worst source.
- **languages**: for each non-English language, train without any row in that language and report
  its harmful recall and benign false flags.
- **robustness**: the held-out sources' harmful rows again under perturbations (spaced letters,
  leetspeak, homoglyphs, random case, typos, role-play and novel wrappers); each source scored by
  the model trained without it (a sample of up to 80 rows per source).
- **eval**: the model trained on everything, on XSTest (never trained on) and VLGuard's test
  instructions (text only).
- **compositions**: prompt + image-text and prompt + concept compositions under carrier prompts that
  are not in the training material, from sources left out of training.
- **latency**: the text-only guard (``Guard().check``) p50 / p95 on 2 cores, cold start, peak RSS.

The bundled image sets (FigStep, MM-Vet, MOSSBench) run through the whole guard in
``benchmarks/evidence_quality.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalization_data import EmbeddingCache, compositions, perturbations

from vlmguard.eval.benchmarks.vlguard import labelled_instructions
from vlmguard.perception.risk_augment import HEADING_SOURCE, augmented
from vlmguard.perception.risk_data import LabelledText, read_labelled
from vlmguard.perception.risk_model import RiskHead, packaged_head_dir, readings, windows
from vlmguard.perception.risk_sources import everyday_requests, read_pool
from vlmguard.perception.risk_train import TrainOptions, fit_head
from vlmguard.perception.risk_twins import TWIN_SOURCE

SECTIONS = ("loso", "languages", "robustness", "eval", "compositions", "latency")


def first_window(texts: Sequence[str]) -> list[str]:
    return [(windows(t) or [""])[0] for t in texts]


class Bench:
    """Training rows, their embeddings, and a way to fit a head without some of them."""

    def __init__(
        self,
        data: Path,
        encoders: list[str],
        options: TrainOptions,
        with_compositions: bool,
        with_headings: bool,
    ) -> None:
        self.data = data
        self.encoders = encoders
        self.options = options
        self.cache = EmbeddingCache(encoders)
        self._heads: dict[str, RiskHead] = {}
        self.rows = (
            read_pool(data / "textsafety")
            + labelled_instructions(data / "vlguard" / "train.json")
            + everyday_requests()
        )
        self.extra = augmented(self.rows, headings=with_headings, compositions=with_compositions)
        self.x = self.embed([r.text for r in self.rows])
        self.x_extra = self.embed([r.text for r in self.extra]) if self.extra else None

    def embed(self, texts: Sequence[str]) -> Any:
        return self.cache.embed(first_window(texts))

    def without_source(self, source: str) -> RiskHead:
        """The head trained without ``source`` (memoised: every section reuses it)."""
        if source not in self._heads:
            self._heads[source] = self.fit(lambda r: r.source != source)
        return self._heads[source]

    def fit(self, keep: Callable[[LabelledText], bool]) -> RiskHead:
        idx = [i for i, r in enumerate(self.rows) if keep(r)]
        rows = [self.rows[i] for i in idx]
        x = self.x[idx]
        if self.extra:
            # compositions made from a left-out row are left out with it
            eidx = [i for i, r in enumerate(self.extra) if self._composition_kept(r, keep)]
            rows += [self.extra[i] for i in eidx]
            x = np.concatenate([x, self.x_extra[eidx]], axis=0)
        return fit_head(x, rows, self.encoders, self.options)

    @staticmethod
    def _composition_kept(row: LabelledText, keep: Callable[[LabelledText], bool]) -> bool:
        parts = row.id.split(":")
        while parts[0] in (TWIN_SOURCE, HEADING_SOURCE) and len(parts) > 1:
            parts = parts[1:]  # a row made from a made row: the source it was made from
        source = parts[0]
        if source == "object":
            return True
        return keep(LabelledText(text="x", label="benign", source=source, lang="en"))

    def flagged(self, head: RiskHead, texts: Sequence[str]) -> Any:
        """Whether ``head`` flags each text as the guard reads it: every window of the text and of its
        undisguised reading, the most harmful counting."""
        per_text = [readings(t) or [""] for t in texts]
        p, _ = head.predict(self.cache.embed([r for rs in per_text for r in rs]))
        ends = np.cumsum([len(rs) for rs in per_text])
        best = np.array([p[end - len(rs) : end].max() for rs, end in zip(per_text, ends, strict=True)])
        return best >= head.meta.threshold


def pct(v: float) -> str:
    return f"{100 * v:5.1f}%"


def section_loso(b: Bench, out: dict[str, Any]) -> None:
    print("\n## Leave one source out (trained without the source, at the chosen operating point)")
    print(f"{'source':32s} {'label':8s} {'rows':>6s} {'flagged':>8s} {'thr':>6s}")
    results: dict[str, dict[str, float]] = {}
    for source in sorted({r.source for r in b.rows}):
        head = b.without_source(source)
        idx = [i for i, r in enumerate(b.rows) if r.source == source]
        f = b.flagged(head, [b.rows[i].text for i in idx])
        labels = np.array([b.rows[i].harmful for i in idx])
        for harmful in (True, False):
            if (labels == harmful).any():
                rate = float(f[labels == harmful].mean())
                label = "harmful" if harmful else "benign"
                results.setdefault(source, {})[label] = rate
                print(
                    f"{source:32s} {label:8s} {int((labels == harmful).sum()):6d} {pct(rate):>8s} "
                    f"{head.meta.threshold:6.3f}"
                )
    harm = [v["harmful"] for v in results.values() if "harmful" in v]
    ben = [v["benign"] for v in results.values() if "benign" in v]
    print(
        f"harmful recall: mean {pct(statistics.mean(harm))}, worst {pct(min(harm))}; "
        f"benign flagged: mean {pct(statistics.mean(ben))}, worst {pct(max(ben))}"
    )
    out["loso"] = results


def section_languages(b: Bench, out: dict[str, Any]) -> None:
    print("\n## Per language (trained without any row in the language)")
    print(f"{'lang':6s} {'harmful rows':>12s} {'recall':>8s} {'benign rows':>12s} {'flagged':>8s}")
    results = {}
    for lang in sorted({r.lang for r in b.rows} - {"en"}):
        idx = [i for i, r in enumerate(b.rows) if r.lang == lang]
        if len(idx) < 20:
            continue
        head = b.fit(lambda r, lang=lang: r.lang != lang)
        f = b.flagged(head, [b.rows[i].text for i in idx])
        labels = np.array([b.rows[i].harmful for i in idx])
        rec = float(f[labels].mean()) if labels.any() else float("nan")
        fp = float(f[~labels].mean()) if (~labels).any() else float("nan")
        results[lang] = {"harmful_recall": rec, "benign_flagged": fp}
        print(f"{lang:6s} {int(labels.sum()):12d} {pct(rec):>8s} {int((~labels).sum()):12d} {pct(fp):>8s}")
    out["languages"] = results


def section_robustness(b: Bench, out: dict[str, Any]) -> None:
    print("\n## Robustness: held-out sources' harmful rows under perturbations (recall)")
    perturb = perturbations()
    rng = random.Random(5)
    sources = sorted({r.source for r in b.rows if r.harmful and r.lang == "en"})
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for source in sources:
        rows = [r for r in b.rows if r.source == source and r.harmful and r.lang == "en"]
        rows = rng.sample(rows, min(80, len(rows)))
        head = b.without_source(source)
        table[source]["plain"] = float(b.flagged(head, [r.text for r in rows]).mean())
        for name, fn in perturb.items():
            table[source][name] = float(b.flagged(head, [fn(r.text) for r in rows]).mean())
    names = ["plain", *perturb]
    print(f"{'source':22s} " + " ".join(f"{n[:10]:>10s}" for n in names))
    for source in sources:
        print(f"{source:22s} " + " ".join(f"{pct(table[source][n]):>10s}" for n in names))
    print(
        f"{'mean':22s} "
        + " ".join(f"{pct(statistics.mean(table[s][n] for s in sources)):>10s}" for n in names)
    )
    out["robustness"] = table


def section_eval(b: Bench, out: dict[str, Any], head: RiskHead) -> None:
    print("\n## Evaluation sets (model trained on everything; never trained or tuned on these)")
    sets = {
        "xstest": read_labelled(b.data / "textsafety" / "xstest.jsonl"),
        "vlguard_test": labelled_instructions(b.data / "vlguard" / "test.json", source="vlguard_test"),
    }
    results = {}
    for name, rows in sets.items():
        f = b.flagged(head, [r.text for r in rows])
        labels = np.array([r.harmful for r in rows])
        results[name] = {
            "harmful_flagged": float(f[labels].mean()),
            "benign_flagged": float(f[~labels].mean()),
        }
        print(
            f"{name:14s} harmful flagged {pct(results[name]['harmful_flagged'])} ({int(labels.sum())}), "
            f"benign flagged {pct(results[name]['benign_flagged'])} ({int((~labels).sum())})"
        )
    out["eval"] = results


def section_compositions(b: Bench, out: dict[str, Any]) -> None:
    print("\n## Compositions under held-out carriers, from held-out sources")
    comps = compositions(b.rows)
    results: dict[str, float] = {}
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(comps):
        by_source[r.source].append(i)
    heads: dict[str, RiskHead] = {}
    for key, idx in sorted(by_source.items()):
        kind, _, source = key.partition(":")
        if kind == "object":
            head = heads.setdefault("all", b.fit(lambda r: True))
        else:
            head = b.without_source(source)
        results[key] = float(b.flagged(head, [comps[i].text for i in idx]).mean())
    for kind in ("act", "neutral", "object"):
        keys = [k for k in results if k.startswith(kind + ":")]
        for k in keys:
            label = comps[by_source[k][0]].label
            print(f"{k:40s} {label:8s} flagged {pct(results[k])}")
    out["compositions"] = results


def section_latency(out: dict[str, Any]) -> None:
    print("\n## Text-only guard latency (Guard().check, warm), cold start, peak RSS")
    from vlmguard import Guard

    start = time.perf_counter()
    guard = Guard()
    guard.check("warm up: how do I bake bread?")
    cold = time.perf_counter() - start
    prompts = [
        f"Question {i}: how can I {w} my {o}?"
        for i, (w, o) in enumerate(
            [
                (w, o)
                for w in ("clean", "fix", "poison", "track", "paint", "sell")
                for o in ("bike", "cat", "laptop", "neighbour", "fence")
            ]
        )
    ]
    times = []
    for p in prompts * 4:
        t = time.perf_counter()
        guard.check(p)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p50, p95 = times[len(times) // 2], times[int(0.95 * (len(times) - 1))]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} prompts; cold start {cold:.1f} s; "
        f"peak RSS {rss:.0f} MB"
    )
    out["latency"] = {"p50_ms": p50, "p95_ms": p95, "cold_s": cold, "peak_rss_mb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    shipped = RiskHead.load(packaged_head_dir()).meta
    ap.add_argument(
        "--encoder",
        default="+".join(shipped.encoders),
        help="minilm, e5 or minilm+e5 (default: the shipped model's, %(default)s)",
    )
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--no-compositions", action="store_true", help="train without composition rows")
    ap.add_argument(
        "--headings",
        action=argparse.BooleanOptionalAction,
        default=HEADING_SOURCE in shipped.trained_on,
        help="train with heading forms (default: as the shipped model, %(default)s)",
    )
    ap.add_argument("--c", type=float, default=shipped.options.get("c", TrainOptions().c))
    ap.add_argument(
        "--benign-cost",
        type=float,
        default=shipped.options.get("benign_cost", TrainOptions().benign_cost),
        help="weight of the benign flag rate against recall when each head chooses its threshold",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sections = args.sections.split(",")
    out: dict[str, Any] = {
        "encoder": args.encoder,
        "benign_cost": args.benign_cost,
        "headings": args.headings,
    }
    if sections != ["latency"]:
        b = Bench(
            args.data,
            args.encoder.split("+"),
            TrainOptions(c=args.c, benign_cost=args.benign_cost),
            not args.no_compositions,
            args.headings,
        )
        print(
            f"{len(b.rows):,} training rows from {len({r.source for r in b.rows})} sources "
            f"(+{len(b.extra):,} made rows), encoder {args.encoder}, headings {args.headings}, "
            f"benign cost {args.benign_cost}"
        )
        if "loso" in sections:
            section_loso(b, out)
        if "languages" in sections:
            section_languages(b, out)
        if "robustness" in sections:
            section_robustness(b, out)
        if "eval" in sections:
            section_eval(b, out, b.fit(lambda r: True))
        if "compositions" in sections:
            section_compositions(b, out)
    if "latency" in sections:
        section_latency(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
