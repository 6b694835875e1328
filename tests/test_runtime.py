"""Thread settings are options: applied only when asked, never overriding the environment."""

from __future__ import annotations

import os
import sys

import pytest

from vlmguard.runtime import OMP_WAIT_POLICY_ENV, ThreadSettings, apply_thread_settings
from vlmguard.server.config import ProxyConfig, proxy_thread_settings


def test_passive_is_set_when_unset_and_torch_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OMP_WAIT_POLICY_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    apply_thread_settings(ThreadSettings())
    assert os.environ[OMP_WAIT_POLICY_ENV] == "PASSIVE"


def test_environment_wins_and_inherit_leaves_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setenv(OMP_WAIT_POLICY_ENV, "ACTIVE")
    apply_thread_settings(ThreadSettings(openmp_wait_policy="passive"))
    assert os.environ[OMP_WAIT_POLICY_ENV] == "ACTIVE"
    monkeypatch.delenv(OMP_WAIT_POLICY_ENV)
    apply_thread_settings(ThreadSettings(openmp_wait_policy="inherit"))
    assert OMP_WAIT_POLICY_ENV not in os.environ


def test_torch_threads_are_set_only_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fake_torch = type(sys)("torch")
    fake_torch.set_num_threads = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    apply_thread_settings(ThreadSettings(openmp_wait_policy="inherit"))
    apply_thread_settings(ThreadSettings(openmp_wait_policy="inherit", torch_threads=3))
    assert calls == [3]


def test_proxy_uses_one_torch_thread_per_call_with_several_workers() -> None:
    one = ProxyConfig.from_dict({})
    several = ProxyConfig.from_dict({"server": {"workers": 4}})
    chosen = ProxyConfig.from_dict({"server": {"workers": 4}, "threads": {"torch_threads": 2}})
    assert proxy_thread_settings(one).torch_threads is None
    assert proxy_thread_settings(several).torch_threads == 1
    assert proxy_thread_settings(chosen).torch_threads == 2
    assert proxy_thread_settings(several).openmp_wait_policy == "passive"
