"""Calibrate the text risk tagger's parameters on the *tune* half of public benchmarks.

Positives: FigStep SafeBench's harmful requests, both as the text read from the typographic image
(OCR) and as the plain question. Negatives: MM-Vet's and MOSSBench's benign questions and the text
read from their images. Only the tune half (see ``evidence_data.py``) is used; the report half is
left for ``evidence_quality.py``.

A grid over (top_k, benign_weight, structure_bonus) is searched; for each point the flag threshold
is the lowest score that keeps the false-positive rate on the tune negatives at or under
``--flag-fpr`` and the suspect threshold the one at ``--suspect-fpr``. The point with the highest
true-positive rate at the flag threshold wins (ties: at the suspect threshold). The result is
written to ``src/vlmguard/perception/data/text_risk_calibration.yaml`` (atomically).

    .venv/bin/python benchmarks/calibrate_text_risk.py [--data ../shared/data] [--ocr-cache FILE]

OCR text comes from the image perceiver (``vlmguard.perception``) and is cached in ``--ocr-cache``
(a JSON file) so re-running the calibration does not re-read every image.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence_data import SEED, Sample, default_data_dir, figstep, mmvet, mossbench

from vlmguard.perception.text_chunks import text_chunks
from vlmguard.perception.text_risk import TextRiskTagger
from vlmguard.perception.text_risk_types import TAGGED_CATEGORIES

CALIBRATION_FILE = (
    Path(__file__).resolve().parents[1] / "src/vlmguard/perception/data/text_risk_calibration.yaml"
)
DEFAULT_OCR_CACHE = Path.home() / ".cache" / "vlmguard" / "benchmark-ocr.json"
DEFAULT_EMBEDDING_CACHE = Path.home() / ".cache" / "vlmguard" / "benchmark-embeddings.npz"


def ocr_texts(samples: list[Sample], cache_path: Path) -> dict[str, str]:
    """OCR text of each sample's image (by path), from the cache or the image perceiver."""
    cache: dict[str, str] = {}
    if cache_path.is_file():
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    missing = [s.image for s in samples if s.image is not None and str(s.image) not in cache]
    if missing:
        from vlmguard.images import load_image
        from vlmguard.perception.image_evidence import ImagePerceiver

        perceiver = ImagePerceiver(labels=False, nudity=False)
        start = time.perf_counter()
        for i, path in enumerate(dict.fromkeys(missing)):
            assert path is not None
            cache[str(path)] = perceiver.perceive(load_image(path)).ocr_text
            if i % 50 == 0:
                print(f"  ocr {i}/{len(missing)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_path.parent, delete=False, encoding="utf-8") as fh:
            json.dump(cache, fh)
        os.replace(fh.name, cache_path)
    return {str(s.image): cache.get(str(s.image), "") for s in samples if s.image is not None}


class EmbeddingCache:
    """Sentence embeddings of benchmark texts, kept on disk between runs (keyed by the exact text)."""

    def __init__(self, tagger: TextRiskTagger, path: Path | None) -> None:
        self.tagger = tagger
        self.path = path
        self.vectors: dict[str, Any] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
        self.dirty = False

    def similarities(self, texts: list[str]) -> Any:
        self.tagger.warmup()
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            vectors = self.tagger._encode(missing)
            self.vectors.update(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            self.dirty = True
        matrix = np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)
        return matrix @ self.tagger._matrix.T

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.path.parent, suffix=".npz", delete=False) as fh:
            np.savez(fh, texts=np.array(list(self.vectors)), vectors=np.stack(list(self.vectors.values())))
        os.replace(fh.name, self.path)


class Features:
    """Per-text, per-chunk similarities, so the grid search needs one embedding pass."""

    def __init__(self, tagger: TextRiskTagger, texts: list[str], cache: EmbeddingCache) -> None:
        self.texts = texts
        self.chunks = [text_chunks(t) or [("", False)] for t in texts]
        flat = [c for chunks in self.chunks for c, _ in chunks]
        self.sims = cache.similarities(flat)
        owners = np.array([-1 if o is None else TAGGED_CATEGORIES.index(o) for o in tagger._owners])
        self.owners = owners
        self.asks = np.array([asks for chunks in self.chunks for _, asks in chunks], dtype=np.float32)
        self.row_text = np.repeat(np.arange(len(texts)), [len(c) for c in self.chunks])
        self.cue = np.zeros((len(texts), len(TAGGED_CATEGORIES)), dtype=np.float32)
        for i, text in enumerate(texts):
            for cue in tagger.cues(text):
                j = TAGGED_CATEGORIES.index(cue.category)
                self.cue[i, j] = min(1.0, self.cue[i, j] + cue.weight)
        self._topk: dict[int, tuple[Any, Any]] = {}

    def topk(self, k: int) -> tuple[Any, Any]:
        if k not in self._topk:
            cats = np.stack(
                [
                    np.sort(self.sims[:, self.owners == j], axis=1)[:, -k:].mean(axis=1)
                    for j in range(len(TAGGED_CATEGORIES))
                ],
                axis=1,
            )
            benign = np.sort(self.sims[:, self.owners == -1], axis=1)[:, -k:].mean(axis=1)
            self._topk[k] = (cats, benign)
        return self._topk[k]

    def scores(self, k: int, benign_weight: float, structure_bonus: float) -> Any:
        """Max score over categories per text."""
        cats, benign = self.topk(k)
        per_chunk = cats - benign_weight * benign[:, None] + structure_bonus * self.asks[:, None]
        per_text = np.full((len(self.texts), len(TAGGED_CATEGORIES)), -np.inf, dtype=np.float32)
        np.maximum.at(per_text, self.row_text, per_chunk)
        return (per_text + self.cue).max(axis=1)


def threshold_at_fpr(negatives: Any, fpr: float) -> float:
    """The lowest threshold whose false-positive rate on ``negatives`` is at most ``fpr``."""
    ordered = np.sort(negatives)[::-1]
    allowed = int(np.floor(fpr * len(ordered)))
    if allowed >= len(ordered):
        return float(ordered[-1])
    return float(ordered[allowed]) + 1e-4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--ocr-cache", type=Path, default=DEFAULT_OCR_CACHE)
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        default=DEFAULT_EMBEDDING_CACHE,
        help="Where to keep the benchmark texts' embeddings between runs.",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--flag-fpr", type=float, default=0.02)
    parser.add_argument("--suspect-fpr", type=float, default=0.08)
    parser.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    parser.add_argument("--dry-run", action="store_true", help="Print the result without writing it.")
    args = parser.parse_args(argv)

    fig = figstep(args.data, "tune", args.seed)
    benign = mmvet(args.data, "tune", args.seed) + mossbench(args.data, "tune", args.seed)
    ocr = ocr_texts(fig + benign, args.ocr_cache)
    pos_ocr = [ocr.get(str(s.image), "") or s.instruction for s in fig]
    pos_q = [s.question for s in fig]
    neg_q = [s.prompt for s in benign]
    neg_ocr = list(dict.fromkeys(t for s in benign if (t := ocr.get(str(s.image), "")).strip()))
    print(
        f"tune split (seed {args.seed}): {len(pos_ocr)} FigStep image texts + {len(pos_q)} FigStep "
        "questions; "
        f"{len(neg_q)} benign questions + {len(neg_ocr)} benign image texts (MM-Vet, MOSSBench)"
    )

    tagger = TextRiskTagger()
    start = time.perf_counter()
    cache = EmbeddingCache(tagger, args.embedding_cache)
    groups = {
        name: Features(tagger, texts, cache)
        for name, texts in {"pos_ocr": pos_ocr, "pos_q": pos_q, "neg_q": neg_q, "neg_ocr": neg_ocr}.items()
    }
    cache.save()
    print(f"embedded in {time.perf_counter() - start:.1f} s")

    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    grid = itertools.product((1, 2, 3), (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5), (0.0, 0.05, 0.1, 0.15, 0.2))
    for k, bw, sb in grid:
        s = {name: f.scores(k, bw, sb) for name, f in groups.items()}
        negatives = np.concatenate([s["neg_q"], s["neg_ocr"]])
        positives = np.concatenate([s["pos_ocr"], s["pos_q"]])
        flag = threshold_at_fpr(negatives, args.flag_fpr)
        suspect = min(flag, threshold_at_fpr(negatives, args.suspect_fpr))
        tpr_flag = float((positives >= flag).mean())
        tpr_suspect = float((positives >= suspect).mean())
        key = (round(tpr_flag, 4), round(tpr_suspect, 4))
        if best is None or key > best[0]:
            best = (
                key,
                {
                    "top_k": k,
                    "benign_weight": bw,
                    "structure_bonus": sb,
                    "flag_threshold": round(flag, 4),
                    "suspect_threshold": round(suspect, 4),
                    "metrics": {
                        "tune_figstep_image_text_flag_rate": round(float((s["pos_ocr"] >= flag).mean()), 4),
                        "tune_figstep_question_flag_rate": round(float((s["pos_q"] >= flag).mean()), 4),
                        "tune_figstep_image_text_suspect_rate": round(
                            float((s["pos_ocr"] >= suspect).mean()), 4
                        ),
                        "tune_benign_question_flag_rate": round(float((s["neg_q"] >= flag).mean()), 4),
                        "tune_benign_image_text_flag_rate": round(float((s["neg_ocr"] >= flag).mean()), 4),
                        "tune_benign_question_suspect_rate": round(float((s["neg_q"] >= suspect).mean()), 4),
                        "tune_benign_image_text_suspect_rate": round(
                            float((s["neg_ocr"] >= suspect).mean()), 4
                        ),
                    },
                },
            )
    assert best is not None
    result = best[1]
    result["tuned_on"] = (
        f"tune half (seed {args.seed}) of FigStep SafeBench (image text and questions) as positives and of "
        f"MM-Vet + MOSSBench (questions and image text) as negatives; flag at <= {args.flag_fpr:.0%} and "
        f"suspect at <= {args.suspect_fpr:.0%} false positives on those negatives"
    )
    print(json.dumps(result, indent=2))
    if args.dry_run:
        return 0
    import yaml

    header = (
        "# Calibrated parameters of the text risk tagger. Written by benchmarks/calibrate_text_risk.py;\n"
        "# do not edit by hand (re-run the script).\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, encoding="utf-8") as fh:
        fh.write(header + yaml.safe_dump(result, sort_keys=False, width=110))
    os.replace(fh.name, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
