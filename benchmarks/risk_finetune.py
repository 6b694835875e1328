"""Encoders for the risk model compared out of fold by source: frozen encoders with a linear head, a
fine-tuned encoder, and linear probes of the packaged LLM's hidden states.

All read the same rows (the text-safety pool without its evaluation sources, VLGuard's train
instructions, the everyday requests and the benign twins; no compositions, to keep the runs short)
and are scored the same way: five folds by source (a source's rows are never in the fold that
trains on them), the operating point chosen on the out-of-fold predictions as the training
procedure chooses it (:func:`~vlmguard.perception.risk_train.choose_threshold`), then per source the
share of harmful rows flagged and of benign rows flagged, with their means and worst source.

- ``frozen minilm`` / ``frozen e5``: the shipped recipe (:func:`~vlmguard.perception.risk_train.out_of_fold`).
- ``lora minilm``: all-MiniLM-L6-v2 fine-tuned with LoRA (rank 8 on the attention's query and value)
  and a linear head on its mean-pooled, normalised output, one epoch, the same sample weights. The
  multilingual e5 ships as a 4-bit inference engine and cannot be fine-tuned here.
- ``smollm2 L<k>``: the hidden state of SmolLM2-135M-Instruct (the packaged GGUF, dequantised by
  transformers) after layer ``k``, at the last token of its chat prompt (the request as the user
  turn, the assistant turn opened), read by the same linear head as the frozen encoders.
  ``e5+smollm2 L<k>`` joins it to the e5 embedding.

``xstest auc``: a head trained on all rows scores XSTest (evaluation only, never trained on).

Run: ``.venv/bin/python benchmarks/risk_finetune.py [--models frozen,lora,smollm2] [--epochs 1]
[--per-group 600] [--layers 8,16,24]`` (2 free cores, ``--per-group 300``, 6,194 rows: LoRA about 4
minutes per fold and epoch; SmolLM2's hidden states about 0.4 s per text).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalization_data import EmbeddingCache
from guard_generalization import first_window

from vlmguard.backends.smollm2 import gguf_path
from vlmguard.eval.benchmarks.vlguard import labelled_instructions
from vlmguard.perception.encoders import minilm_model_dir
from vlmguard.perception.risk_augment import augmented
from vlmguard.perception.risk_data import LabelledText, read_labelled
from vlmguard.perception.risk_sources import everyday_requests, read_pool
from vlmguard.perception.risk_train import (
    TrainOptions,
    choose_threshold,
    fit_head,
    out_of_fold,
    sample_weights,
    source_folds,
)

FOLDS = TrainOptions().folds


def load_rows(data: Path, per_group: int, seed: int = 0) -> list[LabelledText]:
    """The rows, at most ``per_group`` of each (source, label) group (a seeded sample)."""
    rows = read_pool(data / "textsafety") + labelled_instructions(data / "vlguard" / "train.json")
    rows += everyday_requests()
    rows += augmented(rows, headings=False, compositions=False)
    groups: dict[tuple[str, str], list[LabelledText]] = defaultdict(list)
    for row in rows:
        groups[(row.source, row.label)].append(row)
    rng = random.Random(seed)
    out: list[LabelledText] = []
    for key in sorted(groups):
        members = groups[key]
        out += rng.sample(members, per_group) if len(members) > per_group else members
    return out


class LoraClassifier:
    """MiniLM with LoRA adapters and a linear head, trained with weighted binary cross-entropy."""

    def __init__(self, epochs: int, lr: float = 1e-3, batch: int = 32, max_tokens: int = 64) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel, AutoTokenizer

        path = str(minilm_model_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        base = AutoModel.from_pretrained(path)
        self.model = get_peft_model(
            base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "value"])
        )
        self.head = torch.nn.Linear(base.config.hidden_size, 1)
        self.epochs, self.lr, self.batch, self.max_tokens = epochs, lr, batch, max_tokens

    def _embed(self, texts: list[str]) -> Any:
        import torch

        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def fit(self, texts: list[str], y: np.ndarray, w: np.ndarray) -> None:
        import torch

        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        w = w / w.mean()
        rng = np.random.default_rng(0)
        self.model.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), self.batch):
                idx = order[start : start + self.batch]
                logits = self.head(self._embed([texts[i] for i in idx]) * 10.0).squeeze(-1)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, torch.tensor(y[idx], dtype=torch.float32), weight=torch.tensor(w[idx])
                )
                opt.zero_grad()
                loss.backward()
                opt.step()

    def predict(self, texts: list[str]) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 128):
                logits = self.head(self._embed(texts[start : start + 128]) * 10.0).squeeze(-1)
                out.append(torch.sigmoid(logits).numpy())
        return np.concatenate(out)


def lora_out_of_fold(rows: Sequence[LabelledText], epochs: int, balance: float) -> np.ndarray:
    fold = source_folds(rows, FOLDS)  # the folds out_of_fold uses
    folds = np.array([fold[r.source] for r in rows])
    texts = first_window([r.text for r in rows])
    y = np.array([1.0 if r.harmful else 0.0 for r in rows])
    p = np.zeros(len(rows), dtype=np.float32)
    for k in range(FOLDS):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        start = time.perf_counter()
        model = LoraClassifier(epochs)
        train_rows = [rows[i] for i in train]
        model.fit([texts[i] for i in train], y[train], sample_weights(train_rows, balance))
        p[test] = model.predict([texts[i] for i in test])
        seconds = time.perf_counter() - start
        print(f"  lora fold {k + 1}/{FOLDS}: {seconds:.0f} s", file=sys.stderr, flush=True)
    return p


def smollm2_states(texts: Sequence[str], layers: Sequence[int], batch: int = 32) -> dict[int, np.ndarray]:
    """SmolLM2-135M-Instruct's hidden state after each of ``layers``, at the last token of the chat
    prompt of each text (texts batched by length, left-padded, positions counted from the first real
    token)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    states = {k: np.zeros((len(texts), model.config.hidden_size), dtype=np.float32) for k in layers}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            prompts = [f"<|im_start|>user\n{texts[i]}<|im_end|>\n<|im_start|>assistant\n" for i in idx]
            enc = tokenizer(prompts, return_tensors="pt", padding=True)
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            hidden = model.model(**enc, position_ids=positions, output_hidden_states=True).hidden_states
            for k in layers:
                states[k][idx] = hidden[k][:, -1].numpy()
    print(f"smollm2 hidden states: {len(texts):,} texts in {time.perf_counter() - start:.0f} s", flush=True)
    return states


def xstest_auc(
    x: np.ndarray, rows: Sequence[LabelledText], x_eval: np.ndarray, eval_rows: Sequence[LabelledText]
) -> float:
    """AUC on ``eval_rows`` of a head trained on every row (the shipped procedure, all folds)."""
    from sklearn.metrics import roc_auc_score

    head = fit_head(x, rows, [], TrainOptions())
    p, _ = head.predict(x_eval)
    return float(roc_auc_score([r.harmful for r in eval_rows], p))


def summary(name: str, p: np.ndarray, rows: Sequence[LabelledText]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    threshold = choose_threshold(p, rows)
    rates: dict[tuple[str, str], float] = {}
    for source, label in sorted({(r.source, r.label) for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.source == source and r.label == label]
        rates[(source, label)] = float((p[idx] >= threshold).mean())
    recall = {k: v for k, v in rates.items() if k[1] == "harmful"}
    benign = {k: v for k, v in rates.items() if k[1] == "benign"}
    y = [r.harmful for r in rows]
    return {
        "name": name,
        "threshold": threshold,
        "auc": float(roc_auc_score(y, p)),
        "recall_mean": float(np.mean(list(recall.values()))),
        "recall_worst": min(recall.items(), key=lambda kv: kv[1]),
        "benign_mean": float(np.mean(list(benign.values()))),
        "benign_worst": max(benign.items(), key=lambda kv: kv[1]),
        "rates": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--per-group", type=int, default=600)
    parser.add_argument("--models", default="frozen,lora,smollm2", help="any of frozen, lora, smollm2")
    parser.add_argument("--layers", default="8,16,24", help="SmolLM2 layers to probe (1-30)")
    args = parser.parse_args()
    models = set(args.models.split(","))
    if not models or models - {"frozen", "lora", "smollm2"}:
        parser.error(f"--models: unknown {sorted(models - {'frozen', 'lora', 'smollm2'})}")
    layers = [int(k) for k in args.layers.split(",")]
    import torch

    torch.manual_seed(0)
    rows = load_rows(args.data, args.per_group)
    eval_rows = read_labelled(args.data / "textsafety" / "xstest.jsonl")
    print(f"{len(rows):,} rows from {len({r.source for r in rows})} sources, {FOLDS} folds by source")
    options = TrainOptions()
    results = []
    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    texts, eval_texts = first_window([r.text for r in rows]), first_window([r.text for r in eval_rows])
    if models & {"frozen", "smollm2"}:
        cache = EmbeddingCache(["e5"])
        features["frozen e5"] = (cache.embed(texts), cache.embed(eval_texts))
    if "frozen" in models:
        cache = EmbeddingCache(["minilm"])
        features["frozen minilm"] = (cache.embed(texts), cache.embed(eval_texts))
    if "smollm2" in models:
        states = smollm2_states([*texts, *eval_texts], layers)
        e5, e5_eval = features["frozen e5"]
        for k in layers:
            x, x_eval = states[k][: len(texts)], states[k][len(texts) :]
            features[f"smollm2 L{k}"] = (x, x_eval)
            features[f"e5+smollm2 L{k}"] = (np.hstack([e5, x]), np.hstack([e5_eval, x_eval]))
        if "frozen" not in models:
            del features["frozen e5"]
    for name, (x, x_eval) in features.items():
        results.append(summary(name, out_of_fold(x, rows, options), rows))
        results[-1]["xstest_auc"] = xstest_auc(x, rows, x_eval, eval_rows)
    if "lora" in models:
        start = time.perf_counter()
        results.append(summary("lora minilm", lora_out_of_fold(rows, args.epochs, options.balance), rows))
        print(f"lora minilm: {time.perf_counter() - start:.0f} s for {FOLDS} folds x {args.epochs} epoch(s)")

    print(
        "\n| model | AUC | harmful recall mean / worst | benign flagged mean / worst "
        "| threshold | xstest auc |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        (ws, _), wr = r["recall_worst"]
        (bs, _), br = r["benign_worst"]
        xs = f"{r['xstest_auc']:.3f}" if "xstest_auc" in r else "-"
        print(
            f"| {r['name']} | {r['auc']:.3f} | {r['recall_mean']:.1%} / {wr:.1%} ({ws}) "
            f"| {r['benign_mean']:.1%} / {br:.1%} ({bs}) | {r['threshold']:.3f} | {xs} |"
        )
    print("\nper source (flagged):")
    keys = sorted(results[0]["rates"])
    print(f"{'source':<30} {'label':<8} " + " ".join(f"{r['name']:>14}" for r in results))
    for key in keys:
        print(f"{key[0]:<30} {key[1]:<8} " + " ".join(f"{r['rates'][key]:>14.1%}" for r in results))


if __name__ == "__main__":
    main()
