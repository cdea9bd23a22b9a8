"""Every test runs hermetic: no GPU_AUTOSCALER_* from the developer's shell, no kubeconfig, no in-cluster
service host, no node name, and a throwaway HOME, so no test can reach a real cluster by accident."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("GPU_AUTOSCALER_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("WVA_SCALE_TO_ZERO", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield
