"""The proxy's rewriter, with the model calls of concurrent requests micro-batched.

For the evidence rewriter (``rewriter: evidence``, with or without options), every text encoder of
its risk model is wrapped in a :class:`~vlmguard.perception.batching.BatchingEncoder`: the texts of
requests analysed at the same time go through the encoder as one batch, so the guard's throughput
rises with concurrency instead of each request paying a forward pass of its own (measured in
``benchmarks/proxy_overhead.py``; a batch of 16 short texts costs MiniLM about a third of 16 single
calls). With several workers, each model call runs on one thread. The image models are not batched:
on CPU their cost per image is the same in a batch of 8 as alone, so batching would only add waiting.
Other rewriters are loaded as they are.
"""

from __future__ import annotations

from typing import Any

from vlmguard.registry import parse_named_spec
from vlmguard.rewriter.base import Rewriter
from vlmguard.server.config import ProxyConfig


def load_proxy_rewriter(config: ProxyConfig) -> Rewriter:
    """``config.rewriter``, with micro-batched text encoders when it is the evidence rewriter and
    ``config.batching.enabled``."""
    from vlmguard.rewriter.load import load_rewriter

    spec = config.rewriter
    name = spec.removeprefix("model:")
    if not config.batching.enabled or spec.startswith("model:") or ":" in name.partition("?")[0]:
        return load_rewriter(spec, policy=config.fail_policy)
    registered, options = parse_named_spec(name, "rewriter", "evidence?risk_model=./my-risk-model")
    if registered != "evidence":
        return load_rewriter(spec, policy=config.fail_policy)
    from vlmguard.rewriter.evidence import EvidenceRewriter

    risk = batched_risk_model(options.pop("risk_model", None), config)
    extra: dict[str, Any] = dict(options)
    if "workers" in extra:
        extra["workers"] = int(extra["workers"])
    if config.server.workers > 1:
        extra.update(single_threaded_models())
    rewriter: Rewriter = EvidenceRewriter(risk_model=risk, **extra)
    return rewriter


def single_threaded_models() -> dict[str, Any]:
    """The evidence rewriter's image perceiver with one ONNX Runtime thread per model call.

    With several workers on few cores, models that each start several threads per call contend for
    the same cores; one thread per call and the workers' concurrency fill the cores instead. torch's
    share (labels, injection) is process-wide: :func:`vlmguard.server.config.proxy_thread_settings`.
    """
    from vlmguard.perception.image_evidence import ImagePerceiver

    return {"perceiver": ImagePerceiver(threads=1)}


def batched_risk_model(folder: str | None, config: ProxyConfig) -> Any:
    """A :class:`~vlmguard.perception.risk_model.RiskModel` (``folder``, or the packaged head) whose
    encoders batch concurrent calls."""
    from pathlib import Path

    from vlmguard.errors import ConfigError
    from vlmguard.perception.batching import BatchingEncoder
    from vlmguard.perception.encoders import build_encoder
    from vlmguard.perception.risk_model import RiskModel

    if folder is not None and not Path(folder).is_dir():
        raise ConfigError(f"risk model folder not found: {folder}")
    names = RiskModel(folder).head.meta.encoders
    batching = config.batching
    encoders: dict[str, Any] = {
        n: BatchingEncoder(build_encoder(n), max_items=batching.max_items, max_wait_s=batching.max_wait_s)
        for n in names
    }
    return RiskModel(folder, encoders=encoders)
