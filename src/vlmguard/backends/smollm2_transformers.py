"""SmolLM2 through transformers: the engine that training and white-box work need.

``from_pretrained(dir, gguf_file=...)`` dequantises the GGUF weights to fp32; generation is greedy
(or sampled) with a KV cache. Chosen with ``smollm2:?engine=transformers``; the default engine is
llama.cpp (see :mod:`vlmguard.backends.smollm2`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vlmguard.types import GenerateConfig

END_TOKEN = "<|im_end|>"
DTYPES = ("auto", "float32", "bfloat16")
EngineResult = tuple[str, int, int, bool]
"""An engine's answer: text, prompt tokens, generated tokens, whether it ended at the end token."""


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively (AVX512-BF16 or AMX); Linux only, else False."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_dtype(dtype: str) -> str:
    """``auto``: ``bfloat16`` where the CPU has native bf16 (measured 17-18 tokens/s against
    9-13.5 in float32 on this project's 2-core machine, same greedy text), else ``float32``."""
    if dtype == "auto":
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    return dtype


def default_cache_dir() -> Path:
    """Where the converted model is kept: ``$VLMGUARD_CACHE`` or ``~/.cache/vlmguard``."""
    root = os.environ.get("VLMGUARD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vlmguard")
    return Path(root)


def converted_dir(path: Path, cache_dir: Path) -> Path:
    """The folder of the converted model of the GGUF at ``path`` inside ``cache_dir``."""
    stat = path.stat()
    return cache_dir / f"smollm2-135m-instruct-{stat.st_size}-{int(stat.st_mtime)}"


class TransformersEngine:
    """SmolLM2 through transformers (weights dequantised from the GGUF to fp32).

    Reading the GGUF (dequantising the weights, rebuilding the tokenizer from its vocabulary)
    takes 13 s on a quiet 2-core machine and much longer on a busy one. With a ``cache_dir``, the
    converted model and tokenizer are saved there once (safetensors, bf16 storage, ~270 MB;
    written to a temporary folder and renamed into place) and later loads read them instead.
    """

    name = "transformers"

    def __init__(
        self, path: Path, threads: int, cache_dir: Path | None = None, dtype: str = "float32"
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        converted = converted_dir(path, cache_dir) if cache_dir is not None else None
        if converted is not None and (converted / "config.json").is_file():
            self.tokenizer = AutoTokenizer.from_pretrained(str(converted))
            model = AutoModelForCausalLM.from_pretrained(str(converted), dtype=getattr(torch, dtype))
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
            # Loaded from GGUF the model is marked quantized; it is plain fp32 now.
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            setattr(model, "hf_quantizer", None)  # noqa: B010
            if converted is not None:
                self._save(model, converted)
            model = model.to(getattr(torch, dtype))
        model.eval()
        self.model: Any = model
        self.end_id = self.tokenizer.convert_tokens_to_ids(END_TOKEN)

    def _save(self, model: Any, target: Path) -> None:
        import shutil
        import tempfile

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
            try:
                model.to(self.torch.bfloat16).save_pretrained(str(tmp))
                self.tokenizer.save_pretrained(str(tmp))
                os.replace(tmp, target)
            finally:
                model.to(self.torch.float32)
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            return  # a read-only or full disk only costs the next load its conversion time

    def generate(self, prompt: str, max_new_tokens: int, config: GenerateConfig) -> EngineResult:
        """Generate up to ``max_new_tokens`` after ``prompt`` (a full ChatML prompt)."""
        torch = self.torch
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self.end_id,
            "pad_token_id": self.end_id,
            "use_cache": True,
            "repetition_penalty": 1.1,
        }
        if config.temperature > 0:
            if config.seed is not None:
                torch.manual_seed(config.seed)
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**ids, **kwargs)
        new = out[0, ids["input_ids"].shape[1] :]
        ended = bool(len(new) and int(new[-1]) == self.end_id)
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        return text, int(ids["input_ids"].shape[1]), len(new), ended
