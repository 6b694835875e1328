"""Quality (and per-sample latency) of the evidence rewriter on FigStep, MM-Vet and MOSSBench.

    .venv/bin/python benchmarks/evidence_quality.py [--data ../shared/data] [--limit N] [--out results.jsonl]

Prints, per benchmark and per split (the text tagger was calibrated on the *tune* half, so the
*report* half is the held-out figure; *all* is the whole benchmark, tune half included):

- FigStep SafeBench (500 typographic attacks with the benchmark's text prompt): flagged
  (decision != forward), refused, and per category; also how many had a risk category identified.
- MM-Vet (218 benign): refused, forwarded unchanged, reframed.
- MOSSBench (300 benign, risky-looking images; 7 images missing in the bundled copy are run
  text-only and reported apart): refused, forwarded.
- VLGuard test instructions, text only (``--benchmarks vlguard``; not in the default set): 558
  benign instructions (forwarded) and 558 harmful ones (flagged). Never used for calibration or
  tuning, so all of it is held out.
- Latency per sample (warm: after one warm-up request), cold start (models loaded), peak RSS.

``--show N`` lists up to N failure cases per benchmark (FigStep forwarded; benign refused or
reframed) with their key finding, for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence_data import SEED, Sample, default_data_dir, figstep, mmvet, mossbench, vlguard_text


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(samples: list[Sample], rewriter: Any) -> list[dict[str, Any]]:
    from vlmguard.images import load_image

    rows = []
    start = time.perf_counter()
    for n, sample in enumerate(samples, 1):
        images = [load_image(sample.image)] if sample.image is not None else []
        t0 = time.perf_counter()
        rewrite = rewriter.rewrite_sync(sample.prompt, images)
        latency = time.perf_counter() - t0
        report = rewrite.report
        key = next((f for f in report.findings if f.modality.value != "visual" or f.severity.rank >= 2), None)
        rows.append(
            {
                "benchmark": sample.benchmark,
                "id": sample.id,
                "category": sample.category,
                "split": sample_split[sample.benchmark, sample.id],
                "has_image": bool(images),
                "decision": report.decision.value,
                "severity": report.severity.value,
                "categories": [c.value for c in report.categories],
                "modalities": sorted({f.modality.value for f in report.findings}),
                "risk_identified": any(
                    f.category is not None
                    and f.category.value != "prompt_injection"
                    and (f.modality.value != "visual" or f.severity.rank >= 2)
                    for f in report.findings
                ),
                "key_finding": key.evidence if key is not None else "",
                "latency_ms": round(latency * 1000, 1),
                "prompt": sample.prompt,
            }
        )
        if n % 100 == 0:
            print(f"  {n}/{len(samples)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return rows


sample_split: dict[tuple[str, str], str] = {}


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}% ({n}/{d})" if d else "   n/a"


def summarise(rows: list[dict[str, Any]], show: int) -> None:
    for split in ("report", "tune", "all"):
        sel = [r for r in rows if split == "all" or r["split"] == split]
        label = {
            "report": "REPORT half (held out from calibration)",
            "tune": "TUNE half (used to calibrate)",
            "all": "ALL samples (tune half included)",
        }[split]
        print(f"\n=== {label}")
        fig = [r for r in sel if r["benchmark"] == "figstep"]
        if fig:
            flagged = sum(r["decision"] != "forward" for r in fig)
            print(
                f"FigStep    n={len(fig):3d}  flagged {pct(flagged, len(fig))}  "
                f"refused {pct(sum(r['decision'] == 'refuse' for r in fig), len(fig))}  "
                f"risk category identified {pct(sum(r['risk_identified'] for r in fig), len(fig))}"
            )
        mm = [r for r in sel if r["benchmark"] == "mm-vet"]
        if mm:
            print(
                f"MM-Vet     n={len(mm):3d}  "
                f"refused {pct(sum(r['decision'] == 'refuse' for r in mm), len(mm))}  "
                f"forwarded {pct(sum(r['decision'] == 'forward' for r in mm), len(mm))}  "
                f"reframed {pct(sum(r['decision'] == 'reframe' for r in mm), len(mm))}"
            )
        moss = [r for r in sel if r["benchmark"] == "mossbench" and r["has_image"]]
        if moss:
            print(
                f"MOSSBench  n={len(moss):3d}  "
                f"refused {pct(sum(r['decision'] == 'refuse' for r in moss), len(moss))}  "
                f"forwarded {pct(sum(r['decision'] == 'forward' for r in moss), len(moss))}  "
                f"reframed {pct(sum(r['decision'] == 'reframe' for r in moss), len(moss))}  (with images)"
            )
        text_only = [r for r in sel if r["benchmark"] == "mossbench" and not r["has_image"]]
        if text_only:
            print(
                f"MOSSBench  n={len(text_only):3d}  image missing, text only: "
                f"forwarded {pct(sum(r['decision'] == 'forward' for r in text_only), len(text_only))}"
            )
        for bench, label in (("vlguard-safe", "benign"), ("vlguard-unsafe", "harmful")):
            vg = [r for r in sel if r["benchmark"] == bench]
            if vg:
                print(
                    f"VLGuard    n={len(vg):3d}  {label} instructions, text only: "
                    f"refused {pct(sum(r['decision'] == 'refuse' for r in vg), len(vg))}  "
                    f"forwarded {pct(sum(r['decision'] == 'forward' for r in vg), len(vg))}  "
                    f"flagged {pct(sum(r['decision'] != 'forward' for r in vg), len(vg))}"
                )

    fig_all = [r for r in rows if r["benchmark"] == "figstep"]
    if fig_all:
        print("\nFigStep per category (all / report half): flagged, risk category identified, refused")
        by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in fig_all:
            by_cat[r["category"]].append(r)
        for cat, items in sorted(by_cat.items()):
            rep = [r for r in items if r["split"] == "report"]
            print(
                f"  {cat:22s} flagged {pct(sum(r['decision'] != 'forward' for r in items), len(items))} / "
                f"{pct(sum(r['decision'] != 'forward' for r in rep), len(rep))}  identified "
                f"{pct(sum(r['risk_identified'] for r in items), len(items))}  refused "
                f"{sum(r['decision'] == 'refuse' for r in items)}"
            )
        found = Counter(c for r in fig_all for c in r["categories"])
        print("  categories named on FigStep:", ", ".join(f"{c} {n}" for c, n in found.most_common()))
    for bench in ("mm-vet", "mossbench", "vlguard-safe"):
        items = [r for r in rows if r["benchmark"] == bench and r["decision"] != "forward"]
        if items:
            found = Counter(c for r in items for c in r["categories"])
            print(f"{bench} non-forward categories:", ", ".join(f"{c} {n}" for c, n in found.most_common()))

    if show:
        print("\nFailure cases")
        for bench, bad in (
            ("figstep", lambda r: r["decision"] == "forward"),
            ("mm-vet", lambda r: r["decision"] != "forward"),
            ("mossbench", lambda r: r["decision"] != "forward"),
            ("vlguard-safe", lambda r: r["decision"] != "forward"),
            ("vlguard-unsafe", lambda r: r["decision"] == "forward"),
        ):
            items = [r for r in rows if r["benchmark"] == bench and bad(r)]
            print(f"-- {bench}: {len(items)}")
            for r in items[:show]:
                print(
                    f"   [{r['split']}] #{r['id']} {r['decision']} {r['categories']} "
                    f"prompt={r['prompt'][:70]!r}"
                )
                if r["key_finding"]:
                    print(f"        {r['key_finding'][:160]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--limit", type=int, default=0, help="At most N samples per benchmark (0: all).")
    parser.add_argument("--benchmarks", default="figstep,mm-vet,mossbench")
    parser.add_argument("--split", choices=("report", "tune", "all"), default="all")
    parser.add_argument("--out", type=Path, default=None, help="Write one JSON line per sample here.")
    parser.add_argument("--show", type=int, default=15, help="Failure cases to list per benchmark.")
    args = parser.parse_args(argv)

    loaders = {"figstep": figstep, "mm-vet": mmvet, "mossbench": mossbench, "vlguard": vlguard_text}
    samples: list[Sample] = []
    for name in args.benchmarks.split(","):
        chosen = loaders[name](args.data, args.split, args.seed)
        tune = {s.id for s in loaders[name](args.data, "tune", args.seed)}
        for s in chosen:
            sample_split[s.benchmark, s.id] = "tune" if s.id in tune else "report"
        if args.limit:
            step = max(1, len(chosen) // args.limit)
            chosen = chosen[::step][: args.limit]
        samples.extend(chosen)

    t0 = time.perf_counter()
    from vlmguard.rewriter.evidence import EvidenceRewriter

    rewriter = EvidenceRewriter()
    rewriter.warmup()
    cold = time.perf_counter() - t0
    from vlmguard.images import load_image

    t1 = time.perf_counter()
    first = samples[0]
    rewriter.rewrite_sync(first.prompt, [load_image(first.image)] if first.image else [])
    first_s = time.perf_counter() - t1
    rewriter.perceiver.clear_cache()
    print(
        f"cold start: models loaded in {cold:.1f} s; first request {first_s:.2f} s; {len(samples)} samples",
        file=sys.stderr,
    )

    start = time.perf_counter()
    rows = run(samples, rewriter)
    total = time.perf_counter() - start
    rewriter.close()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        os.replace(fh.name, args.out)

    summarise(rows, args.show)
    # The headline latency is over the image benchmarks (VLGuard is text only, hence faster).
    lat = [r["latency_ms"] for r in rows if not r["benchmark"].startswith("vlguard")] or [
        r["latency_ms"] for r in rows
    ]
    print(
        f"\nLatency per sample (warm, {os.cpu_count()} cores, perception + tagging + injection): "
        f"median {statistics.median(lat):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, max {max(lat):.0f} ms "
        f"over {len(lat)} samples ({total:.0f} s in all)"
    )
    for bench in ("figstep", "mm-vet", "mossbench", "vlguard-safe", "vlguard-unsafe"):
        b = [r["latency_ms"] for r in rows if r["benchmark"] == bench]
        if b:
            print(f"  {bench:10s} median {statistics.median(b):.0f} ms, p95 {percentile(b, 0.95):.0f} ms")
    print(f"Cold start (all models loaded): {cold:.1f} s (+ first request {first_s:.2f} s)")
    print(f"Peak RSS: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
