"""Training throughput of the rewriter trainer: samples/s, tokens/s and peak memory.

CPU (default): the real trainer (``vlmguard.train.run_sft``) on a tiny random VLM built offline,
LoRA and full fine-tuning, on rows in the exact format the synthesis export writes (the full
rewriter prompt). Each mode runs in its own process, so peak memory is per mode::

    python benchmarks/train_speed.py                      # tiny idefics3, LoRA + full, 20 steps each
    python benchmarks/train_speed.py --kind llava --steps 10 --threads 2

GPU: a randomly initialised full-size Qwen2-VL configuration (no download: config only), trained on
synthetic batches (one 448x448 image = 256 image tokens + text per row, loss on the last 128
tokens) with LoRA and with full fine-tuning, in bf16. Reports tokens/s, peak GPU memory and the
fraction of the GPU's dense bf16 peak reached (model FLOPs: 6 N per token for full fine-tuning,
4 N per token for LoRA, where N is the language model's + vision tower's parameter count)::

    python benchmarks/train_speed.py --full-size qwen2-vl-2b --steps 20 --batch-size 4
    python benchmarks/train_speed.py --full-size qwen2-vl-7b --modes lora --gradient-checkpointing

``--full-size qwen2-vl-tiny`` runs the same GPU code path with a small configuration, on CPU too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}
"""Dense bf16 tensor-core peak (TFLOP/s) by GPU name fragment (SXM figures for H100/H200/A100)."""

QWEN2_VL = {
    # language model (Qwen2) and vision tower sizes of the released checkpoints
    "qwen2-vl-2b": {
        "hidden": 1536,
        "layers": 28,
        "heads": 12,
        "kv": 2,
        "inter": 8960,
        "vocab": 151936,
        "v_depth": 32,
        "v_embed": 1280,
        "v_heads": 16,
    },
    "qwen2-vl-7b": {
        "hidden": 3584,
        "layers": 28,
        "heads": 28,
        "kv": 4,
        "inter": 18944,
        "vocab": 152064,
        "v_depth": 32,
        "v_embed": 1280,
        "v_heads": 16,
    },
    "qwen2-vl-tiny": {
        "hidden": 64,
        "layers": 2,
        "heads": 4,
        "kv": 2,
        "inter": 128,
        "vocab": 1024,
        "v_depth": 2,
        "v_embed": 32,
        "v_heads": 2,
    },
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ CPU


def _write_rows(folder: Path, n: int) -> Path:
    """``n`` rows as the synthesis export writes them: the rewriter's full prompt, one image each."""
    import io

    from PIL import Image

    from vlmguard.backends.mock import MockVLM
    from vlmguard.images import load_image
    from vlmguard.rewriter.format import format_rewriter_output
    from vlmguard.rewriter.model import ModelRewriter
    from vlmguard.types import Decision, Finding, ImagePart, Modality, RiskReport, Severity

    rewriter = ModelRewriter(MockVLM.echo())
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (i * 37 % 256, 80, 200)).save(buf, format="PNG")
        (folder / "img" / f"{i}.png").write_bytes(buf.getvalue())
        prompt = f"What should I do with the thing in this picture? ({i})"
        if i % 2:
            report = RiskReport(
                findings=[
                    Finding(
                        modality=Modality.CROSS_MODAL,
                        evidence="asks how to misuse the object",
                        severity=Severity.MEDIUM,
                    )
                ],
                severity=Severity.MEDIUM,
                decision=Decision.REFRAME,
                analysis="misuse is possible",
            )
            target = format_rewriter_output(report, f"Explain safe, lawful uses of the object. ({i})")
        else:
            target = format_rewriter_output(RiskReport(analysis="benign"), prompt)
        messages = rewriter.build_messages(prompt, [load_image(folder / "img" / f"{i}.png")])
        rows = [
            {
                "role": m.role,
                "content": [
                    {"type": "image"} if isinstance(p, ImagePart) else {"type": "text", "text": p.text}
                    for p in m.content
                ],
            }
            for m in messages
        ]
        rows.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
        lines.append(json.dumps({"images": [f"img/{i}.png"], "messages": rows}))
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cpu_child(kind: str, method: str, steps: int, batch: int, threads: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    from vlmguard.testing.tiny import build_tiny_vlm
    from vlmguard.train.config import load_sft_config
    from vlmguard.train.trainer import run_sft

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny_vlm(kind, root / "model")
        train = _write_rows(root / "data", max(8, batch * 4))
        config = load_sft_config(
            None,
            [
                f"base_model={base}",
                f"train_file={train}",
                f"output_dir={root / 'run'}",
                f"method={method}",
                f"max_steps={steps}",
                f"batch_size={batch}",
                "grad_accumulation=1",
                "logging_steps=5",
                "save_steps=100000",
                "max_length=2048",
                "learning_rate=1e-3",
                "lr_scheduler=constant",
            ],
            environ={},
        )
        summary = run_sft(config)
        report = summary.data[0]
        queue.put(
            {
                "kind": kind,
                "method": method,
                "steps": summary.global_step,
                "batch": batch,
                "tokens_per_row": (report.prompt_tokens + report.target_tokens) / report.rows_kept,
                "samples_per_s": summary.train_samples_per_second,
                "tokens_per_s": summary.train_tokens_per_second,
                "runtime_s": summary.train_runtime_s,
                "trainable": summary.trainable_parameters,
                "total": summary.total_parameters,
                "peak_rss_mb": peak_rss_mb(),
                "loss": [summary.first_loss, summary.last_loss],
            }
        )


def run_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    results = []
    for method in args.modes:
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_cpu_child, args=(args.kind, method, args.steps, args.batch_size, args.threads, queue)
        )
        proc.start()
        result = queue.get()
        proc.join()
        results.append(result)
        print(
            f"[cpu] {args.kind} {method:4s}: {result['samples_per_s']:.2f} samples/s, "
            f"{result['tokens_per_s']:.0f} tokens/s ({result['tokens_per_row']:.0f} tokens/row, "
            f"batch {args.batch_size}, {result['steps']} steps in {result['runtime_s']:.1f} s), "
            f"peak RSS {result['peak_rss_mb']:.0f} MiB, "
            f"trainable {result['trainable']:,}/{result['total']:,}, "
            f"loss {result['loss'][0]:.3f} -> {result['loss'][1]:.3f}",
            flush=True,
        )
    return results


# ------------------------------------------------------------------------------------------------ GPU


def _qwen2_vl_config(name: str) -> Any:
    from transformers import Qwen2VLConfig

    s = QWEN2_VL[name]
    head_dim = s["hidden"] // s["heads"]
    half = head_dim // 2  # temporal / height / width split of the rotary dims: [16, 24, 24] at head_dim 128
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    return Qwen2VLConfig(
        text_config={
            "vocab_size": s["vocab"],
            "hidden_size": s["hidden"],
            "intermediate_size": s["inter"],
            "num_hidden_layers": s["layers"],
            "num_attention_heads": s["heads"],
            "num_key_value_heads": s["kv"],
            "max_position_embeddings": 32768,
            "rope_scaling": {"type": "mrope", "mrope_section": section},
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "depth": s["v_depth"],
            "embed_dim": s["v_embed"],
            "hidden_size": s["hidden"],
            "num_heads": s["v_heads"],
            "mlp_ratio": 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=s["vocab"] - 3,
        video_token_id=s["vocab"] - 4,
        vision_start_token_id=s["vocab"] - 5,
        vision_end_token_id=s["vocab"] - 6,
    )


def _batch(config: Any, batch: int, seq: int, image_side: int, target: int, device: Any) -> dict[str, Any]:
    import torch

    grid = image_side // 14
    patches = grid * grid
    image_tokens = patches // 4
    ids = torch.randint(10, config.text_config.vocab_size - 10, (batch, seq), device=device)
    ids[:, 0] = config.vision_start_token_id
    ids[:, 1 : 1 + image_tokens] = config.image_token_id
    ids[:, 1 + image_tokens] = config.vision_end_token_id
    labels = ids.clone()
    labels[:, : seq - target] = -100
    pixel_values = torch.randn(batch * patches, 3 * 2 * 14 * 14, device=device, dtype=torch.bfloat16)
    grid_thw = torch.tensor([[1, grid, grid]] * batch, device=device)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "pixel_values": pixel_values,
        "image_grid_thw": grid_thw,
        "mm_token_type_ids": (ids == config.image_token_id).long(),
    }


def _gpu_peak_tflops(override: float | None) -> tuple[float | None, str]:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if override:
        return override, name
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in name:
            return value, name
    return None, name


def run_full_size(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from vlmguard.train.config import SFTConfig
    from vlmguard.train.families import family_for
    from vlmguard.train.model import apply_trainable

    cuda = torch.cuda.is_available()
    if not cuda and args.full_size != "qwen2-vl-tiny":
        sys.exit("--full-size needs a CUDA GPU (use --full-size qwen2-vl-tiny to check the code path on CPU)")
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    peak, gpu = _gpu_peak_tflops(args.peak_tflops)
    config = _qwen2_vl_config(args.full_size)
    results = []
    for method in args.modes:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        with torch.device(device):
            model: Any = Qwen2VLForConditionalGeneration(config).to(dtype)  # type: ignore[arg-type]
        n_params = sum(p.numel() for p in model.parameters())
        n_embed = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
        sft = SFTConfig(
            base_model="random",
            train_file="-",
            method=method,
            lora_r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            lora_dropout=0.0,
            gradient_checkpointing=args.gradient_checkpointing,
        )
        model = apply_trainable(model, sft, family_for("qwen2_vl"))
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(trainable, lr=1e-5, fused=cuda)
        batch = _batch(config, args.batch_size, args.seq_len, args.image_side, args.target_tokens, device)
        seq_tokens = args.batch_size * args.seq_len

        for _ in range(args.warmup):
            _train_step(model, optim, batch, device, dtype, cuda)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            _train_step(model, optim, batch, device, dtype, cuda)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        tokens_s = seq_tokens * args.steps / elapsed
        flops_per_token = (6 if method == "full" else 4) * (n_params - n_embed)
        achieved = flops_per_token * tokens_s / 1e12
        result = {
            "model": args.full_size,
            "method": method,
            "device": gpu,
            "batch": args.batch_size,
            "seq_len": args.seq_len,
            "tokens_per_s": tokens_s,
            "samples_per_s": args.batch_size * args.steps / elapsed,
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "model_tflops": achieved,
            "bf16_peak_tflops": peak,
            "fraction_of_peak": achieved / peak if peak and cuda else None,
            "params": n_params,
            "trainable": sum(p.numel() for p in trainable),
        }
        results.append(result)
        mem = f"{result['peak_gpu_mem_gib']:.1f} GiB" if cuda else "n/a (CPU)"
        frac = (
            f"{result['fraction_of_peak'] * 100:.1f}% of {peak:.0f}" if result["fraction_of_peak"] else "n/a"
        )
        print(
            f"[{gpu}] {args.full_size} {method:4s}: {tokens_s:,.0f} tokens/s, "
            f"{result['samples_per_s']:.2f} samples/s, peak GPU memory {mem}, "
            f"{achieved:.1f} model TFLOP/s ({frac} bf16 TFLOP/s), "
            f"trainable {result['trainable']:,}/{n_params:,}",
            flush=True,
        )
        del model, optim, batch
    return results


def _train_step(model: Any, optim: Any, batch: dict[str, Any], device: Any, dtype: Any, cuda: bool) -> None:
    import torch

    with torch.autocast(device.type, dtype=dtype, enabled=cuda):
        loss = model(**batch).loss
    loss.backward()
    optim.step()
    optim.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="idefics3", choices=["idefics3", "llava"], help="tiny CPU model")
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (full-size mode)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument(
        "--full-size",
        choices=sorted(QWEN2_VL),
        default=None,
        help="random full-size Qwen2-VL on the GPU instead of the tiny CPU run",
    )
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--image-side", type=int, default=448)
    parser.add_argument("--target-tokens", type=int, default=128)
    parser.add_argument("--lora-r", type=int, default=64)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's bf16 peak")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    results = run_full_size(args) if args.full_size else run_cpu(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
