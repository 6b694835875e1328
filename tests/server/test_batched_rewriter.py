"""The proxy's rewriter: the evidence rewriter gets micro-batched text encoders, others load as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from proxy_helpers import config

from vlmguard.errors import ConfigError
from vlmguard.perception.batching import BatchingEncoder
from vlmguard.perception.risk_model import HeadMeta, RiskHead
from vlmguard.rewriter.model import ModelRewriter
from vlmguard.server.batched_rewriter import load_proxy_rewriter
from vlmguard.server.config import proxy_thread_settings


def head(folder: Path) -> Path:
    d = 768
    arrays = {
        "language_basis": np.zeros((0, d), np.float32),
        "mean": np.zeros(d, np.float32),
        "scale": np.ones(d, np.float32),
        "harm_w": np.zeros(d, np.float32),
        "harm_b": np.zeros(1, np.float32),
        "cat_w": np.zeros((d, 1), np.float32),
        "cat_b": np.zeros(1, np.float32),
    }
    RiskHead(HeadMeta(encoders=["minilm", "e5"], categories=["a"], threshold=0.5), arrays).save(folder)
    return folder


def test_evidence_rewriter_gets_one_batching_encoder_per_head_encoder(tmp_path: Path) -> None:
    folder = head(tmp_path / "head")
    rewriter = load_proxy_rewriter(config(rewriter=f"evidence?risk_model={folder}&workers=2"))
    encoders = {name: rewriter.risk.encoder(name) for name in ("minilm", "e5")}  # type: ignore[attr-defined]
    assert all(isinstance(e, BatchingEncoder) for e in encoders.values())
    assert {e.inner.name for e in encoders.values()} == {"minilm", "e5"}
    assert rewriter.workers == 2  # type: ignore[attr-defined]
    assert rewriter.risk.folder == folder  # type: ignore[attr-defined]


def test_batching_off_or_other_rewriters_load_unchanged(tmp_path: Path) -> None:
    folder = head(tmp_path / "head")
    plain = load_proxy_rewriter(config(rewriter=f"evidence?risk_model={folder}", batching={"enabled": False}))
    assert not isinstance(plain.risk.encoder("minilm"), BatchingEncoder)  # type: ignore[attr-defined]
    assert isinstance(load_proxy_rewriter(config(rewriter="mock:echo")), ModelRewriter)
    with pytest.raises(ConfigError, match="not found"):
        load_proxy_rewriter(config(rewriter=f"evidence?risk_model={tmp_path / 'missing'}"))


def test_several_workers_run_each_model_call_on_one_thread(tmp_path: Path) -> None:
    folder = head(tmp_path / "head")
    one = load_proxy_rewriter(config(rewriter=f"evidence?risk_model={folder}"))
    two = load_proxy_rewriter(config(rewriter=f"evidence?risk_model={folder}", server={"workers": 2}))
    assert one.perceiver.threads == 2  # type: ignore[attr-defined]
    assert two.perceiver.threads == 1  # type: ignore[attr-defined]
    assert proxy_thread_settings(config(server={"workers": 2})).torch_threads == 1
